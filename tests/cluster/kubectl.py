"""Running the pinned kubectl against one kubeconfig, with transient apiserver errors retried."""

from __future__ import annotations

import json
import shutil
import subprocess
from dataclasses import dataclass
from pathlib import Path

from . import binaries
from .waiting import is_transient, wait_for


class KubectlError(RuntimeError):
    def __init__(self, args: list[str], result: subprocess.CompletedProcess[str]) -> None:
        self.result = result
        super().__init__(
            f"kubectl {' '.join(args)} exited {result.returncode}: {result.stderr.strip()}"
        )


def find_kubectl() -> Path:
    """The pinned kubectl; for an external cluster without a local build, whatever is on PATH."""
    try:
        return binaries.binary("kubectl")
    except binaries.BinariesMissing:
        found = shutil.which("kubectl")
        if found is None:
            raise
        return Path(found)


@dataclass(frozen=True)
class Kubectl:
    kubeconfig: Path
    executable: Path

    @classmethod
    def for_kubeconfig(cls, kubeconfig: Path, executable: Path | None = None) -> Kubectl:
        return cls(kubeconfig, executable or find_kubectl())

    def run(
        self,
        *args: str,
        input: str | None = None,
        check: bool = True,
        timeout: float = 60.0,
    ) -> subprocess.CompletedProcess[str]:
        argv = [str(self.executable), f"--kubeconfig={self.kubeconfig}", *args]
        result = subprocess.run(
            argv, input=input, capture_output=True, text=True, timeout=timeout, check=False
        )
        if check and result.returncode != 0:
            raise KubectlError(list(args), result)
        return result

    def __call__(self, *args: str, input: str | None = None, timeout: float = 60.0) -> str:
        """stdout of a command that must succeed."""
        return self.run(*args, input=input, timeout=timeout).stdout

    def retrying(
        self,
        *args: str,
        input: str | None = None,
        timeout: float = 60.0,
    ) -> str:
        """Like __call__, but retries while the apiserver answers with a transient error
        (429 "storage is (re)initializing" after a start, discovery lagging a new CRD, ...)."""
        last: list[str] = [""]

        def attempt() -> str | None:
            result = self.run(*args, input=input, check=False, timeout=timeout)
            if result.returncode == 0:
                return result.stdout
            if not is_transient(result.stderr):
                raise KubectlError(list(args), result)
            last[0] = result.stderr.strip()
            return None

        return wait_for(
            attempt,
            timeout=timeout,
            what=f"kubectl {' '.join(args)}",
            interval=0.2,
            detail=lambda: f"last error: {last[0]}",
        )

    def with_token(self, token: str, path: Path) -> Kubectl:
        """The same cluster as another identity: a kubeconfig written to `path` (mode 0600)
        whose only credential is `token`, e.g. a service account's from `kubectl create token`."""
        view = json.loads(self("config", "view", "--raw", "--minify", "-o", "json"))
        config = {
            "apiVersion": "v1",
            "kind": "Config",
            "clusters": [{"name": "cluster", "cluster": view["clusters"][0]["cluster"]}],
            "users": [{"name": "token", "user": {"token": token}}],
            "contexts": [{"name": "token", "context": {"cluster": "cluster", "user": "token"}}],
            "current-context": "token",
        }
        path.touch(mode=0o600, exist_ok=True)
        path.chmod(0o600)
        path.write_text(json.dumps(config))
        return Kubectl(path, self.executable)
