"""Loading the examples as the cluster would see them (their YAML) and as a test can run them
(their job function, imported from the script without running it)."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType
from typing import Any

import yaml

ROOT = Path(__file__).resolve().parents[3]
EXAMPLES = ROOT / "examples"
NAMES = ["ai-report", "order-batch"]


def manifest(name: str) -> dict[str, Any]:
    document: dict[str, Any] = yaml.safe_load((EXAMPLES / name / "job.yaml").read_text())
    return document


def script(name: str) -> ModuleType:
    path = EXAMPLES / name / "job.py"
    spec = importlib.util.spec_from_file_location(f"example_{name.replace('-', '_')}", path)
    assert spec is not None
    assert spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    # Dataclasses look their module up in sys.modules while the script is being executed.
    sys.modules[spec.name] = module
    spec.loader.exec_module(module)
    return module
