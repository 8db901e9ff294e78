"""Where the pinned control-plane binaries live, and a clear error when they are missing."""

from __future__ import annotations

import os
import warnings
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class Pins:
    kubernetes: str
    etcd: str
    helm: str

    @property
    def folder_name(self) -> str:
        # The cache folder carries every pin, so changing one builds afresh beside the old build.
        return f"k8s-{self.kubernetes}-etcd-{self.etcd}-helm-{self.helm}"


# Must match K8S_VERSION / ETCD_VERSION / HELM_VERSION in build_binaries.sh.
PINS = Pins(kubernetes="v1.36.3", etcd="v3.5.21", helm="v4.3.1")

BINARY_NAMES: tuple[str, ...] = (
    "kube-apiserver",
    "kube-controller-manager",
    "kube-scheduler",
    "kubectl",
    "etcd",
    "helm",
)

BUILD_SCRIPT = Path(__file__).resolve().parent / "build_binaries.sh"


class BinariesMissing(RuntimeError):
    pass


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "continuable"


def cache_bin_dir() -> Path:
    return cache_root() / PINS.folder_name / "bin"


def _missing(folder: Path) -> list[str]:
    return [name for name in BINARY_NAMES if not os.access(folder / name, os.X_OK)]


def bin_dir() -> Path:
    """The folder holding all pinned binaries; raises BinariesMissing with the fix if none does."""
    override = os.environ.get("CONTINUABLE_K8S_BIN")
    problem = ""
    if override:
        missing = _missing(Path(override))
        if not missing:
            return Path(override)
        problem = f"CONTINUABLE_K8S_BIN={override} lacks {', '.join(missing)}"
    folder = cache_bin_dir()
    # .complete is written last by the build script: without it the folder is a partial build.
    if (folder / ".complete").is_file() and not _missing(folder):
        if problem:
            # Same choice as build_binaries.sh: a broken override falls back to the pinned build.
            warnings.warn(f"{problem}; using {folder}", stacklevel=2)
        return folder
    raise BinariesMissing(
        (f"{problem}; " if problem else "")
        + f"the pinned Kubernetes binaries ({PINS.kubernetes}, etcd {PINS.etcd}, helm {PINS.helm}) "
        f"are not built in {folder}; run `make k8s-bin` (or `bash {BUILD_SCRIPT}`), "
        "about 10 minutes the first time"
    )


def binary(name: str, folder: Path | None = None) -> Path:
    if name not in BINARY_NAMES:
        raise ValueError(f"unknown binary {name!r}; known: {', '.join(BINARY_NAMES)}")
    return (folder or bin_dir()) / name
