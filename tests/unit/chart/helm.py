"""Running the pinned helm on the chart: rendering it (no cluster) and, for the e2e tests,
installing it with a kubeconfig. Helm's own config, cache and data folders are kept in a
temporary folder so no user setting (repositories, plugins, registry logins) leaks in."""

from __future__ import annotations

import json
import os
import subprocess
import tempfile
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from tests.cluster import binaries

REPO_ROOT = Path(__file__).resolve().parents[3]
CHART = REPO_ROOT / "charts" / "continuable-operator"
TOP_LEVEL_CRD = REPO_ROOT / "crds" / "continuable.dev_continuablejobs.yaml"
CHART_CRD = CHART / "crds" / TOP_LEVEL_CRD.name
PYPROJECT = REPO_ROOT / "pyproject.toml"

Manifest = dict[str, Any]


class HelmError(RuntimeError):
    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        self.stderr = result.stderr
        super().__init__(f"helm {' '.join(args)} exited {result.returncode}: {result.stderr}")


def find_helm() -> Path:
    """The pinned helm; raises binaries.BinariesMissing (with the fix) when it is not built."""
    return binaries.binary("helm")


# Fixed and empty of settings: helm only keeps its (regenerable) caches there.
_HOME = Path(tempfile.gettempdir()) / f"continuable-helm-home-{os.getuid()}"


def _environment(kubeconfig: Path | None) -> dict[str, str]:
    env = {
        key: value
        for key, value in os.environ.items()
        if not key.startswith("HELM_") and key != "KUBECONFIG"
    }
    env.update(
        HELM_CONFIG_HOME=f"{_HOME}/config",
        HELM_CACHE_HOME=f"{_HOME}/cache",
        HELM_DATA_HOME=f"{_HOME}/data",
    )
    if kubeconfig is not None:
        env["KUBECONFIG"] = str(kubeconfig)
    return env


def set_flags(values: Mapping[str, Any]) -> list[str]:
    """`--set-json key=value` for each dotted key: exact JSON types, no --set string guessing."""
    return [
        arg for key, value in values.items() for arg in ("--set-json", f"{key}={json.dumps(value)}")
    ]


@dataclass(frozen=True)
class Helm:
    executable: Path
    kubeconfig: Path | None = None
    extra_env: Mapping[str, str] = field(default_factory=dict)

    @classmethod
    def pinned(cls, kubeconfig: Path | None = None) -> Helm:
        return cls(find_helm(), kubeconfig)

    def run(
        self, *args: str, check: bool = True, timeout: float = 120.0
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.executable), *args]
        if self.kubeconfig is not None:
            argv.append(f"--kubeconfig={self.kubeconfig}")
        result = subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
            env={**_environment(self.kubeconfig), **self.extra_env},
        )
        if check and result.returncode != 0:
            raise HelmError(list(args), result)
        return result

    def template(
        self,
        values: Mapping[str, Any] | None = None,
        *,
        release: str = "rel",
        namespace: str = "ops",
        extra: Iterable[str] = (),
    ) -> list[Manifest]:
        """The chart's rendered objects (CRDs excluded, as `helm template` does by default)."""
        out = self.run(
            "template",
            release,
            str(CHART),
            "--namespace",
            namespace,
            *set_flags(values or {}),
            *extra,
        ).stdout
        return [doc for doc in yaml.safe_load_all(out) if doc]


def kind_name(obj: Manifest) -> str:
    return f"{obj['kind']}/{obj['metadata'].get('namespace', '')}/{obj['metadata']['name']}"


def find(objects: Iterable[Manifest], kind: str, name: str | None = None) -> list[Manifest]:
    return [
        o for o in objects if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)
    ]


def one(objects: Iterable[Manifest], kind: str, name: str | None = None) -> Manifest:
    found = find(objects, kind, name)
    assert len(found) == 1, (
        f"expected one {kind} {name or ''}, found {[kind_name(o) for o in found]}"
    )
    return found[0]


def grants(rules: Iterable[Mapping[str, Any]]) -> set[tuple[str, str, str]]:
    """Every (apiGroup, resource, verb) the rules allow, spelled out."""
    return {
        (group, resource, verb)
        for rule in rules
        for group in rule.get("apiGroups", [])
        for resource in rule.get("resources", [])
        for verb in rule.get("verbs", [])
    }
