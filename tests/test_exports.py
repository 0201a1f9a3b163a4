"""The public API is explicit: a sorted __all__ whose names all exist."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module", ["agentgraph", "agentgraph.sources", "schedulers"])
def test_all_is_sorted_and_complete(module: str) -> None:
    """__all__ is sorted and every name in it is importable."""
    mod = importlib.import_module(module)
    assert list(mod.__all__) == sorted(mod.__all__)
    for name in mod.__all__:
        assert hasattr(mod, name), name
