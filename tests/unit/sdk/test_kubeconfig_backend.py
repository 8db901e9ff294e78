"""The kubeconfig client of a job run outside a cluster."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import yaml
from kubernetes import client

from continuable.backends.kubeconfig import KubeconfigJobApi


@pytest.fixture(autouse=True)
def _default_configuration() -> Iterator[None]:
    """load_kube_config sets the client's process-wide default: put it back afterwards."""
    saved = client.Configuration.get_default_copy()
    yield
    client.Configuration.set_default(saved)


def test_the_kubeconfig_named_when_the_client_is_made_is_the_one_read(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """KUBECONFIG set after the kubernetes package was imported (a program that starts its own
    cluster, as `bench/checkpoint.py` does) still counts: the package fixes its default path
    when it is imported."""
    path = tmp_path / "kubeconfig"
    path.write_text(
        yaml.safe_dump(
            {
                "apiVersion": "v1",
                "kind": "Config",
                "clusters": [{"name": "c", "cluster": {"server": "https://127.0.0.1:6553"}}],
                "users": [{"name": "u", "user": {"token": "t"}}],
                "contexts": [{"name": "x", "context": {"cluster": "c", "user": "u"}}],
                "current-context": "x",
            }
        )
    )
    monkeypatch.setenv("KUBECONFIG", str(path))
    api = KubeconfigJobApi("report", "batch")
    assert api._client.configuration.host == "https://127.0.0.1:6553"
