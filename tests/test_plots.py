"""Plots: each figure draws exactly the data it is given, and PNGs are reproducible bytes."""

from __future__ import annotations

from pathlib import Path

import polars as pl
import pytest
from matplotlib.collections import LineCollection
from matplotlib.patches import FancyArrowPatch, Rectangle

from agentgraph.errors import UsageError
from agentgraph.model import Edge, EdgeKind, Hop, Trace
from schedulers.plots import call_graph, context_growth, hit_rates, latency_cdf, save_png


def hop(hop_id: str, agent: str, index: int, start: float, prompt: int, shared: int, output: int) -> Hop:
    return Hop(hop_id, "s", agent, index, "m", start, start + 1.0, prompt, output, shared, ())


# main: h0 -> (spawn) sub: h1 -> h2 -> (join) main: h3; main h0 -> h3 in sequence
TRACE = Trace(
    (hop("h0", "main", 0, 0.0, 1000, 0, 10), hop("h1", "sub", 0, 1.0, 400, 0, 20),
     hop("h2", "sub", 1, 3.0, 700, 400, 30), hop("h3", "main", 1, 6.0, 1600, 1000, 40)),
    edges=(Edge("h0", "h1", EdgeKind.SPAWN, 0.1), Edge("h1", "h2", EdgeKind.SEQUENCE, 1.0),
           Edge("h2", "h3", EdgeKind.JOIN, 2.0), Edge("h0", "h3", EdgeKind.SEQUENCE, 5.0)),
)


def bars(fig: object) -> list[tuple[float, float, float]]:
    """(x or y, start, length) of every bar of the first axes."""
    ax = fig.axes[0]  # type: ignore[attr-defined]
    out = []
    for p in ax.patches:
        if isinstance(p, Rectangle):
            out.append((round(p.get_x(), 6), round(p.get_y(), 6), round(p.get_width(), 6), round(p.get_height(), 6)))
    return out  # type: ignore[return-value]


def test_latency_cdf_steps_through_the_sorted_values() -> None:
    """One step line per strategy: x the sorted latencies, y = k/n."""
    frames = {"a": pl.DataFrame({"session_e2e_s": [3.0, 1.0, 2.0]}), "topology_aware": pl.DataFrame(
        {"session_e2e_s": [5.0, None]})}
    fig = latency_cdf(frames)  # type: ignore[arg-type]
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_label() in frames]
    assert [ln.get_label() for ln in lines] == ["a", "topology_aware"]
    assert list(lines[0].get_xdata()) == [1.0, 2.0, 3.0]
    assert list(lines[0].get_ydata()) == pytest.approx([1 / 3, 2 / 3, 1.0])
    assert list(lines[1].get_xdata()) == [5.0] and lines[1].get_linewidth() > lines[0].get_linewidth()
    assert fig.axes[0].get_xscale() == "log"


def test_hit_rates_stack_hits_and_fetches() -> None:
    """A bar of hit_rate per strategy, then the fetched share after it, top to bottom in order."""
    fig = hit_rates({"a": {"hit_rate": 0.5, "transferred_tokens": 100, "prompt_tokens": 1000},
                     "b": {"hit_rate": 0.8, "transferred_tokens": 0, "prompt_tokens": 1000}})
    assert [t.get_text() for t in fig.axes[0].get_yticklabels()] == ["a", "b"]
    # barh: (x, y - height / 2, width, height); "a" is on top (y = 1)
    assert [(x, w) for x, _, w, _ in bars(fig)] == [(0.0, 0.5), (0.0, 0.8), (0.5, 0.1), (0.8, 0.0)]
    assert [t.get_text() for t in fig.axes[0].texts] == ["0.500 + 0.100", "0.800"]


def test_context_growth_splits_each_prompt_into_shared_and_new() -> None:
    """Bars in start order: shared prefix (thousands), then new tokens on top of it."""
    fig = context_growth(TRACE, "s")
    got = bars(fig)
    shared, new = got[:4], got[4:]
    assert [h for _, _, _, h in shared] == [0.0, 0.0, 0.4, 1.0]
    assert [(y, h) for _, y, _, h in new] == [(0.0, 1.0), (0.0, 0.4), (0.4, 0.3), (1.0, 0.6)]
    output = fig.axes[0].get_lines()[0]
    assert list(output.get_ydata()) == [0.01, 0.02, 0.03, 0.04]


def test_call_graph_draws_every_edge_with_its_kind_and_the_critical_path() -> None:
    """Four edges; the critical path h0 -> h1 -> h2 -> h3 (0.1 + 1 + 1 + 2 s of waits and hops
    beats the 5 s sequence edge) is drawn heavier; lanes: main above sub."""
    fig = call_graph(TRACE, "s")
    ax = fig.axes[0]
    arrows = [p for p in ax.patches if isinstance(p, FancyArrowPatch)]
    assert len(arrows) == 4
    assert sorted(a.get_linewidth() for a in arrows) == pytest.approx([1.0, 2.4, 2.4, 2.4])
    assert [t.get_text() for t in ax.texts if t.get_text() in ("main", "sub")] == ["main", "sub"]
    nodes = next(c for c in ax.collections if not isinstance(c, LineCollection))
    assert [tuple(xy) for xy in nodes.get_offsets()] == [(0.0, 0.0), (1.0, -1.0), (2.0, -1.0), (3.0, 0.0)]
    with pytest.raises(UsageError, match="no session 'nope'"):
        call_graph(TRACE, "nope")


def test_save_png_is_reproducible(tmp_path: Path) -> None:
    """The same figure twice: the same bytes (no software or date metadata)."""
    a = save_png(context_growth(TRACE, "s"), tmp_path / "a.png").read_bytes()
    b = save_png(context_growth(TRACE, "s"), tmp_path / "b.png").read_bytes()
    assert a == b and a[:4] == b"\x89PNG" and b"matplotlib" not in a
