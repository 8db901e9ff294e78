"""A real Kubernetes control plane on loopback for the e2e tests, `make demo` and `make cluster-up`.

The binaries come from `build_binaries.sh` (`make k8s-bin`); see DESIGN.md, "The local control
plane". Start with `ControlPlane` (a context manager) or `python -m tests.cluster up`.
"""

from __future__ import annotations

from .binaries import PINS, BinariesMissing, bin_dir
from .controlplane import ControlPlane, ControlPlaneError
from .crds import apply_crds
from .kubectl import Kubectl, KubectlError

__all__ = [
    "PINS",
    "BinariesMissing",
    "ControlPlane",
    "ControlPlaneError",
    "Kubectl",
    "KubectlError",
    "apply_crds",
    "bin_dir",
]
