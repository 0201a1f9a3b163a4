"""Plots: each figure draws exactly the data it is given, and PNGs are reproducible bytes."""

from __future__ import annotations

import struct
from itertools import pairwise
from pathlib import Path

import numpy as np
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


def big_session(hops: int = 1000, agents: int = 12, seed: int = 14) -> Trace:
    """A deterministic session of ``hops`` hops and ``agents`` agents, sized like a real Claude Code
    session: prompts of 40K-180K tokens growing by heavy-tailed (Pareto) tool results, compacted
    back to ~40K when they would pass 180K; hop latencies of seconds, gaps of seconds (tools) or,
    one in ten, minutes to hours (the user); each sub-agent spawned from a main hop and joined into
    the first main hop after its last one, so several run in parallel with main."""
    rng = np.random.default_rng(seed)
    sub_len = [int(x) for x in rng.integers(20, 60, agents - 1)]
    main_len = hops - sum(sub_len)
    out: list[Hop] = []
    edges: list[Edge] = []

    def chain(agent: str, n: int, t: float) -> list[Hop]:
        made: list[Hop] = []
        prompt = int(rng.integers(40_000, 48_000))
        for i in range(n):
            grow = int(min(60_000, 300 * (rng.pareto(1.2) + 1)))
            compacted = prompt + grow > 180_000
            prompt, shared = (int(rng.integers(40_000, 46_000)), 0) if compacted else (prompt + grow, prompt)
            latency = float(rng.uniform(2.0, 25.0))
            made.append(Hop(f"{agent}-{i:04d}", "big", agent, i, "claude", t, t + latency, prompt,
                            int(rng.lognormal(5.5, 1.0)) + 1, shared if i else 0, ()))
            t += latency + float(rng.exponential(900.0) if rng.random() < 0.1 else rng.exponential(3.0))
        edges.extend(Edge(x.hop_id, y.hop_id, EdgeKind.SEQUENCE, y.start_s - x.end_s) for x, y in pairwise(made))
        return made

    main = chain("main", main_len, 0.0)
    out += main
    for k, at in enumerate(sorted(int(x) for x in rng.choice(main_len - 150, agents - 1, replace=False))):
        sub = chain(f"agent-{k:02d}-{at:04d}", sub_len[k], main[at].end_s + 0.2)
        out += sub
        edges.append(Edge(main[at].hop_id, sub[0].hop_id, EdgeKind.SPAWN, 0.2))
        joined = next((m for m in main[at + 1:] if m.start_s >= sub[-1].end_s), None)
        if joined is not None:
            edges.append(Edge(sub[-1].hop_id, joined.hop_id, EdgeKind.JOIN, joined.start_s - sub[-1].end_s))
    return Trace(tuple(sorted(out, key=lambda h: (h.start_s, h.hop_id))), tuple(edges))


BIG = big_session()


def png_size(png: bytes) -> tuple[int, int]:
    assert png[:8] == b"\x89PNG\r\n\x1a\n" and png[12:16] == b"IHDR"
    width, height = struct.unpack(">II", png[16:24])
    return width, height


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
    assert fig.axes[0].get_ylabel() == "fraction of sessions"


def test_latency_cdf_reads_a_column_from_the_frame_that_has_it() -> None:
    """A replay result's column is found in its turns, sessions or hops frame; the y label says which."""
    from schedulers.metrics import ReplayResult

    res = ReplayResult(pl.DataFrame({"ttft_s": [0.5, 0.2]}), pl.DataFrame({"session_e2e_s": [9.0]}),
                       pl.DataFrame(), {})
    fig = latency_cdf({"a": res}, column="ttft_s", title="TTFT")
    assert fig.axes[0].get_ylabel() == "fraction of hops"
    assert list(fig.axes[0].get_lines()[0].get_xdata()) == [0.2, 0.5]
    with pytest.raises(UsageError, match="no column 'turn_e2e_s'"):
        latency_cdf({"a": res}, column="turn_e2e_s")


def test_ten_strategies_are_told_apart_and_ticks_are_plain_numbers(tmp_path: Path) -> None:
    """Every series differs from every other in colour, dash or marker; latencies from 0.1 s to
    two days get tick labels like 10 or 100,000, never 10^5 or 2x10^0."""
    rng = np.random.default_rng(0)
    frames = {f"s{i}": pl.DataFrame({"session_e2e_s": rng.lognormal(3, 2, 300)}) for i in range(10)}
    fig = latency_cdf(frames)  # type: ignore[arg-type]
    save_png(fig, tmp_path / "cdf.png")  # draws, so the tick labels exist
    lines = [ln for ln in fig.axes[0].get_lines() if ln.get_label() in frames]
    looks = {(ln.get_color(), ln.get_linestyle(), ln.get_marker()) for ln in lines}
    assert len(looks) == 10 and len({ln.get_marker() for ln in lines}) == 10
    labels = [t.get_text() for t in fig.axes[0].get_xticklabels() if t.get_text()]
    assert "100,000" in labels and "10" in labels
    assert all(set(t) <= set("0123456789.,") for t in labels), labels


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
    output = fig.axes[1].get_lines()[0]  # on its own (right) axis, in tokens
    assert list(output.get_ydata()) == [10, 20, 30, 40]


def test_context_growth_bins_a_long_session() -> None:
    """1,000 hops: 200 bars of 5 consecutive hops each, every bar the mean of its hops."""
    fig = context_growth(BIG, "big")
    shared = bars(fig)[:200]
    assert len(bars(fig)) == 400
    hops = sorted(BIG.hop_list, key=lambda h: (h.start_s, h.hop_id))
    assert shared[0][3] == pytest.approx(sum(h.shared_prefix_tokens for h in hops[:5]) / 5000)
    assert shared[0][2] == pytest.approx(0.85 * 5)


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


def test_big_session_is_realistic() -> None:
    """The generated session: 1,000 hops, 12 agents, prompts of 40K-180K tokens, every edge forward."""
    assert len(BIG) == 1000 and len({h.agent_id for h in BIG}) == 12
    assert min(h.prompt_tokens for h in BIG) >= 40_000 and max(h.prompt_tokens for h in BIG) <= 180_000
    start = {h.hop_id: h.start_s for h in BIG}
    assert all(start[e.src] < start[e.dst] for e in BIG.edges)
    assert big_session() == BIG  # deterministic


@pytest.mark.parametrize("name", ["latency_cdf", "hit_rate", "context_growth", "call_graph"])
def test_every_figure_stays_readable_for_1000_hops_and_12_agents(name: str, tmp_path: Path) -> None:
    """Rendered from the 1,000-hop session (and ten strategies): aspect ratio within 1:3..3:1,
    at most 2,400 px a side (the PNGs are in tmp_path for a look)."""
    rng = np.random.default_rng(1)
    names = [f"strategy_{i}" for i in range(9)] + ["topology_aware"]
    figures = {
        "latency_cdf": lambda: latency_cdf({n: pl.DataFrame({"session_e2e_s": rng.lognormal(6, 1.5, 400)})
                                            for n in names}),  # type: ignore[misc]
        "hit_rate": lambda: hit_rates({n: {"hit_rate": 0.5, "transferred_tokens": 5, "prompt_tokens": 100}
                                       for n in names}),
        "context_growth": lambda: context_growth(BIG, "big"),
        "call_graph": lambda: call_graph(BIG, "big"),
    }
    width, height = png_size(save_png(figures[name](), tmp_path / f"{name}.png").read_bytes())
    assert max(width, height) <= 2400 and 1 / 3 <= width / height <= 3, (width, height)
