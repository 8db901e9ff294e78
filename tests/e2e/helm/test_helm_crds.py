"""Upgrading the CRD the way the chart's README says: Helm installs `crds/` once and never
upgrades them, so after a chart upgrade the user applies them; the README's command must work on
a CRD that Helm installed (Helm 4 applies it server-side, as field manager `helm`)."""

from __future__ import annotations

import json
import shlex
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.cluster.session import Cluster
from tests.unit.chart.helm import CHART, CHART_CRD, Helm

pytestmark = pytest.mark.e2e


def readme_crd_command() -> list[str]:
    """The README's `kubectl apply ... crds/` line, as arguments after `kubectl`."""
    lines = [
        line.strip()
        for line in (CHART / "README.md").read_text().splitlines()
        if line.strip().startswith("kubectl apply") and "crds/" in line
    ]
    assert len(lines) == 1, lines
    return shlex.split(lines[0])[1:]


def renamed_crd(group: str, max_resumptions: str | None = None) -> dict[str, Any]:
    """The chart's CRD under another group, so the session's ContinuableJob CRD is not touched;
    `max_resumptions` replaces one description, to tell an old CRD from the new one."""
    crd: dict[str, Any] = yaml.safe_load(CHART_CRD.read_text())
    crd["spec"]["group"] = group
    crd["metadata"]["name"] = f"{crd['spec']['names']['plural']}.{group}"
    # Neither `cjob` nor the `all` category: they would mix with the session's CRD.
    del crd["spec"]["names"]["shortNames"], crd["spec"]["names"]["categories"]
    if max_resumptions is not None:
        max_resumptions_field(crd)["description"] = max_resumptions
    return crd


def max_resumptions_field(crd: dict[str, Any]) -> dict[str, Any]:
    schema = crd["spec"]["versions"][0]["schema"]["openAPIV3Schema"]
    field: dict[str, Any] = schema["properties"]["spec"]["properties"]["maxResumptions"]
    return field


def test_the_readme_command_upgrades_a_crd_helm_installed(
    crds: Cluster, namespace: str, tmp_path: Path
) -> None:
    group = f"{namespace}.e2e.continuable.dev"
    old = renamed_crd(group, max_resumptions="The old chart's description.")
    new = renamed_crd(group)
    name = old["metadata"]["name"]
    chart = tmp_path / "old-chart"
    (chart / "crds").mkdir(parents=True)
    (chart / "Chart.yaml").write_text(
        yaml.safe_dump({"apiVersion": "v2", "name": "crd-only", "version": "0.1.0"})
    )
    (chart / "crds" / CHART_CRD.name).write_text(yaml.safe_dump(old))
    upgraded = tmp_path / "continuable-operator" / "crds"
    upgraded.mkdir(parents=True)
    (upgraded / CHART_CRD.name).write_text(yaml.safe_dump(new))

    helm = Helm.pinned(crds.kubeconfig)
    helm.run("install", "crd-only", str(chart), "-n", namespace)
    try:
        command = readme_crd_command()
        folder = command.index("-f") + 1
        assert command[folder] == "continuable-operator/crds/"
        command[folder] = f"{upgraded}/"
        result = crds.kubectl.run(*command, check=False)
        assert result.returncode == 0, result.stderr
        served = json.loads(crds.kubectl("get", "crd", name, "-o", "json"))
        assert max_resumptions_field(served) == max_resumptions_field(new)
    finally:
        helm.run("uninstall", "crd-only", "-n", namespace, check=False)
        crds.kubectl.run("delete", "crd", name, "--ignore-not-found", check=False)
