"""Applying the repo's CRDs and waiting until the apiserver really serves them."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import yaml

from .kubectl import Kubectl

REPO_ROOT = Path(__file__).resolve().parents[2]
CRD_DIR = REPO_ROOT / "crds"


@dataclass(frozen=True)
class CrdInfo:
    name: str  # <plural>.<group>
    kind: str
    path: Path


def crd_files(crd_dir: Path = CRD_DIR) -> list[Path]:
    if not crd_dir.is_dir():
        return []
    return sorted(p for p in crd_dir.iterdir() if p.suffix in (".yaml", ".yml"))


def read_crds(files: list[Path]) -> list[CrdInfo]:
    found: list[CrdInfo] = []
    for path in files:
        for doc in yaml.safe_load_all(path.read_text()):
            if isinstance(doc, dict) and doc.get("kind") == "CustomResourceDefinition":
                found.append(CrdInfo(doc["metadata"]["name"], doc["spec"]["names"]["kind"], path))
    return found


def apply_crds(kubectl: Kubectl, crd_dir: Path = CRD_DIR, timeout: float = 60.0) -> list[CrdInfo]:
    """Apply every CRD in crd_dir, wait for Established, then until a list of each succeeds."""
    files = crd_files(crd_dir)
    crds = read_crds(files)
    for path in files:
        # Server-side apply: a CRD with a full pod-template schema outgrows the 256 KiB
        # last-applied annotation that client-side apply would write.
        kubectl.retrying(
            "apply",
            "--server-side",
            "--force-conflicts",
            "--field-manager=continuable-tests",
            "-f",
            str(path),
            timeout=timeout,
        )
    for crd in crds:
        kubectl.retrying(
            "wait",
            "--for=condition=Established",
            f"crd/{crd.name}",
            f"--timeout={int(timeout)}s",
            timeout=timeout + 10,
        )
        # Established is not the end: the first lists can still get 429 "storage is
        # (re)initializing" while the new resource's watch cache fills.
        kubectl.retrying("get", crd.name, "--all-namespaces", "-o", "name", timeout=timeout)
    return crds
