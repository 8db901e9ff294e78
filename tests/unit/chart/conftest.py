from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from typing import Any

import pytest

from tests.cluster.binaries import BinariesMissing

from .helm import Helm, Manifest

Render = Callable[..., list[Manifest]]


@pytest.fixture(scope="session")
def helm() -> Helm:
    """The pinned helm, or a skip that says how to build it (CI always has it)."""
    try:
        return Helm.pinned()
    except BinariesMissing as err:
        pytest.skip(f"the chart tests need the pinned helm: {err}")


@pytest.fixture(scope="session")
def render(helm: Helm) -> Render:
    """`helm template` of the chart with some values (`--set-json` keys), cached per value set."""
    cache: dict[str, list[Manifest]] = {}

    def rendered(values: Mapping[str, Any] | None = None, **options: Any) -> list[Manifest]:
        key = json.dumps([values or {}, options], sort_keys=True)
        if key not in cache:
            cache[key] = helm.template(values, **options)
        return cache[key]

    return rendered
