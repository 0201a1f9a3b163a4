"""The public API is explicit: a sorted __all__ whose names all exist."""

from __future__ import annotations

import importlib

import pytest


@pytest.mark.parametrize("module", [
    "agentgraph.record", "agentgraph.serving", "agentgraph.sources.recording", "agentgraph.units",
    "agentgraph", "agentgraph.emulator", "agentgraph.frames", "agentgraph.graph", "agentgraph.model",
    "agentgraph.sources", "agentgraph.sources.mooncake", "agentgraph.tokens", "agentgraph.traceio",
    "agentgraph.validation", "agentgraph.validation.fastpath", "agentgraph.validation.exact",
    "agentgraph.validation.report", "agentgraph.costs", "agentgraph.schemas", "agentgraph.outputs",
    "agentgraph.capture", "agentgraph.usage",
    "schedulers", "schedulers.cache", "schedulers.cluster", "schedulers.engine", "schedulers.metrics",
    "schedulers.simulator", "schedulers.strategies", "schedulers.strategies.base", "schedulers.timing",
    "schedulers.workloads", "schedulers.cli", "schedulers.gate", "schedulers.sweep", "schedulers.demo",
    "schedulers.plots",
    *(f"agentgraph.sources.claude_code{m}" for m in ("", ".current", ".discovery", ".hops", ".importer", ".legacy",
                                                       ".lines", ".linking", ".records", ".sizing")),
])
def test_all_is_sorted_and_complete(module: str) -> None:
    """__all__ is sorted (constants, classes, functions) and every name in it is importable."""
    mod = importlib.import_module(module)
    # ruff's RUF022 order: CONSTANTS, then Classes, then functions, each alphabetical
    assert list(mod.__all__) == sorted(mod.__all__, key=lambda n: (not n.isupper(), not n[0].isupper(), n))
    for name in mod.__all__:
        assert hasattr(mod, name), name
