"""`import continuable` stays light: no Kubernetes client, no pydantic, no operator."""

from __future__ import annotations

import subprocess
import sys


def test_import_loads_no_heavy_modules() -> None:
    code = (
        "import sys, continuable\n"
        "heavy = [m for m in ('kubernetes', 'pydantic', 'aiohttp', 'prometheus_client', "
        "'continuable.api', 'continuable_operator', 'yaml') if m in sys.modules]\n"
        "print(','.join(heavy))"
    )
    output = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout
    assert output.strip() == ""
