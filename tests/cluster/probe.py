"""Plain HTTPS probes of health endpoints, with no Kubernetes client in the way."""

from __future__ import annotations

import ssl
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path


@dataclass(frozen=True)
class ClientTLS:
    ca_file: Path | None
    cert_file: Path | None = None
    key_file: Path | None = None

    def context(self) -> ssl.SSLContext:
        if self.ca_file is None:
            # The controller-manager and scheduler serve with self-signed certs they make
            # themselves; only their health matters here, not who they are.
            ctx = ssl.create_default_context()
            ctx.check_hostname = False
            ctx.verify_mode = ssl.CERT_NONE
        else:
            ctx = ssl.create_default_context(cafile=str(self.ca_file))
        if self.cert_file is not None:
            ctx.load_cert_chain(str(self.cert_file), str(self.key_file) if self.key_file else None)
        return ctx


def get(url: str, tls: ClientTLS | None = None, timeout: float = 5.0) -> tuple[int, str]:
    """(status, body); status 0 when nothing answered."""
    context = tls.context() if tls is not None and url.startswith("https") else None
    try:
        with urllib.request.urlopen(url, timeout=timeout, context=context) as resp:
            return resp.status, resp.read().decode(errors="replace")
    except urllib.error.HTTPError as err:
        return err.code, err.read().decode(errors="replace")
    except (urllib.error.URLError, OSError) as err:
        return 0, str(err)


def is_ok(url: str, tls: ClientTLS | None = None, timeout: float = 5.0) -> bool:
    status, body = get(url, tls, timeout)
    # Kubernetes components answer "ok"; etcd's /health answers {"health":"true",...}.
    return status == 200 and (body.strip() == "ok" or '"health":"true"' in body)
