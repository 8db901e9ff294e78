"""The CLI's libraries load only with the CLI, and the Kubernetes client only on first use."""

from __future__ import annotations

import subprocess
import sys


def loaded_after(statement: str, modules: tuple[str, ...]) -> list[str]:
    code = f"import sys\n{statement}\nprint(','.join(m for m in {modules!r} if m in sys.modules))"
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.strip()
    return output.split(",") if output else []


def test_the_sdk_does_not_load_the_cli() -> None:
    assert loaded_after("import continuable", ("typer", "rich", "continuable.cli")) == []


def test_the_cli_loads_the_kubernetes_client_only_when_it_connects() -> None:
    assert loaded_after("import continuable.cli", ("kubernetes", "continuable.api")) == []
