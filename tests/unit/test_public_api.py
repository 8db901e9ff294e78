"""`__all__` of every public package lists exactly its public names."""

from __future__ import annotations

import importlib
import types

import pytest


@pytest.mark.parametrize("package", ["continuable", "continuable.api"])
def test_all_is_complete_and_exists(package: str) -> None:
    module = importlib.import_module(package)
    public = {
        name
        for name, value in vars(module).items()
        if not name.startswith("_")
        and not isinstance(value, types.ModuleType)
        and getattr(value, "__module__", package).startswith(package)
    }
    assert set(module.__all__) >= public
    assert [name for name in module.__all__ if not hasattr(module, name)] == []
