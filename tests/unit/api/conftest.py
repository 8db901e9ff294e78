from __future__ import annotations

import copy
from typing import Any

import pytest

MINIMAL: dict[str, Any] = {
    "apiVersion": "continuable.dev/v1alpha1",
    "kind": "ContinuableJob",
    "metadata": {"name": "nightly-report", "namespace": "default"},
    "spec": {
        "template": {
            "spec": {"containers": [{"name": "job", "image": "python:3.11", "command": ["x"]}]}
        }
    },
}


@pytest.fixture
def minimal() -> dict[str, Any]:
    return copy.deepcopy(MINIMAL)
