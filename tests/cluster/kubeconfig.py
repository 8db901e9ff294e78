"""Kubeconfig files with the certificates embedded, so one file is all a client needs."""

from __future__ import annotations

import base64
from pathlib import Path

import yaml

from .certificates import KeyPair


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def kubeconfig_dict(
    *,
    server: str,
    ca_pem: bytes,
    client: KeyPair,
    user: str,
    cluster_name: str = "continuable-local",
) -> dict[str, object]:
    context = f"{user}@{cluster_name}"
    return {
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [
            {
                "name": cluster_name,
                "cluster": {"server": server, "certificate-authority-data": _b64(ca_pem)},
            }
        ],
        "users": [
            {
                "name": user,
                "user": {
                    "client-certificate-data": _b64(client.cert_pem),
                    "client-key-data": _b64(client.key_pem),
                },
            }
        ],
        "contexts": [{"name": context, "context": {"cluster": cluster_name, "user": user}}],
        "current-context": context,
    }


def write_kubeconfig(
    path: Path,
    *,
    server: str,
    ca_pem: bytes,
    client: KeyPair,
    user: str,
    cluster_name: str = "continuable-local",
) -> Path:
    config = kubeconfig_dict(
        server=server, ca_pem=ca_pem, client=client, user=user, cluster_name=cluster_name
    )
    path.parent.mkdir(parents=True, exist_ok=True)
    # It holds a private key: readable by its owner only, from the first byte written.
    tmp = path.with_name(path.name + ".tmp")
    tmp.touch(mode=0o600, exist_ok=True)
    tmp.chmod(0o600)
    tmp.write_text(yaml.safe_dump(config, sort_keys=False))
    tmp.replace(path)
    return path
