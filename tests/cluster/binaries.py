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
    "kubelet",
    "kube-proxy",
    "etcd",
    "helm",
)

BUILD_SCRIPT = Path(__file__).resolve().parent / "build_binaries.sh"


class BinariesMissing(RuntimeError):
    pass


def cache_root() -> Path:
    base = os.environ.get("XDG_CACHE_HOME") or str(Path.home() / ".cache")
    return Path(base) / "continuable"


@dataclass(frozen=True)
class BinarySet:
    """Binaries one build script makes, and how to find them: the folder in `env` when it holds
    them all, else the script's complete build in the cache, else `error` naming the fix.

    Shared by these Kubernetes binaries and prometheus.py's, so both look alike to a caller and
    follow the same rules as building.sh, which both build scripts source.
    """

    names: tuple[str, ...]
    env: str  # e.g. CONTINUABLE_K8S_BIN: a prebuilt folder that wins when complete
    folder_name: str  # the cache folder the build script builds into; it carries the pins
    description: str  # what is missing, for the error: "the pinned ... binaries (<pins>)"
    make_target: str
    build_script: Path
    minutes: int  # how long the first build takes, for the error
    error: type[BinariesMissing] = BinariesMissing

    def cache_bin_dir(self) -> Path:
        # Looked up on each call: XDG_CACHE_HOME may change (tests set it).
        return cache_root() / self.folder_name / "bin"

    def missing(self, folder: Path) -> list[str]:
        return [name for name in self.names if not os.access(folder / name, os.X_OK)]

    def bin_dir(self, *, stacklevel: int = 1) -> Path:
        """The folder holding every binary; raises `error` with the fix if none does.

        A warning about a broken override is attributed `stacklevel` frames above this call.
        """
        override = os.environ.get(self.env)
        problem = ""
        if override:
            missing = self.missing(Path(override))
            if not missing:
                return Path(override)
            problem = f"{self.env}={override} lacks {', '.join(missing)}"
        folder = self.cache_bin_dir()
        # .complete is written last by the build script: without it the folder is a partial build.
        if (folder / ".complete").is_file() and not self.missing(folder):
            if problem:
                # Same choice as the build script: a broken override falls back to the pinned build.
                warnings.warn(f"{problem}; using {folder}", stacklevel=stacklevel + 1)
            return folder
        raise self.error(
            (f"{problem}; " if problem else "")
            + f"{self.description} are not built in {folder}; run `make {self.make_target}` "
            f"(or `bash {self.build_script}`), about {self.minutes} minutes the first time"
        )

    def binary(self, name: str, folder: Path | None = None, *, stacklevel: int = 1) -> Path:
        if name not in self.names:
            raise ValueError(f"unknown binary {name!r}; known: {', '.join(self.names)}")
        return (folder or self.bin_dir(stacklevel=stacklevel + 1)) / name


KUBERNETES = BinarySet(
    names=BINARY_NAMES,
    env="CONTINUABLE_K8S_BIN",
    folder_name=PINS.folder_name,
    description=(
        f"the pinned Kubernetes binaries ({PINS.kubernetes}, etcd {PINS.etcd}, helm {PINS.helm})"
    ),
    make_target="k8s-bin",
    build_script=BUILD_SCRIPT,
    minutes=10,
)


def cache_bin_dir() -> Path:
    return KUBERNETES.cache_bin_dir()


def bin_dir() -> Path:
    """The folder holding all pinned binaries; raises BinariesMissing with the fix if none does."""
    return KUBERNETES.bin_dir(stacklevel=2)


def binary(name: str, folder: Path | None = None) -> Path:
    return KUBERNETES.binary(name, folder, stacklevel=2)
