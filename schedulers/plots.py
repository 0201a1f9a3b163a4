"""Plots of replays and traces: matplotlib figures for reports (PNG) and notebooks (inline).

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (no global
figure state, nothing to close); a notebook cell that ends with one renders it inline, and
:func:`save_png` writes it byte-identically for the same inputs.

    >>> from schedulers.plots import hit_rates
    >>> fig = hit_rates({"a": {"hit_rate": 0.5, "transferred_tokens": 0, "prompt_tokens": 10}})
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['a']
"""

from __future__ import annotations

import io
import itertools
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

import networkx as nx
import polars as pl
from matplotlib.figure import Figure
from matplotlib.lines import Line2D
from matplotlib.patches import Patch

from agentgraph.errors import UsageError
from agentgraph.graph import session_critical_paths
from agentgraph.model import EdgeKind, Hop, Trace
from agentgraph.outputs import write_output
from schedulers.metrics import ReplayResult

__all__ = ["call_graph", "context_growth", "hit_rates", "latency_cdf", "save_png"]

OURS = "topology_aware"
MAX_WIDTH_IN = 40.0  # a 1,000-hop session still gives a PNG a browser can show (4,400 px at 110 dpi)
_OURS_COLOR, _OTHER_COLOR, _LIGHT = "#c2410c", "#64748b", "#cbd5e1"
_EDGE_STYLE: dict[EdgeKind, Literal["solid", "dashed", "dotted"]] = {
    EdgeKind.SEQUENCE: "solid", EdgeKind.SPAWN: "dashed", EdgeKind.JOIN: "dotted"}


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG without the software/date metadata, so equal figures are equal bytes
    (through :func:`agentgraph.outputs.write_output`: a symlink is followed, a FIFO fed)."""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi, metadata={"Software": None})
    return write_output(path, png.getvalue())


def latency_cdf(results: Mapping[str, ReplayResult | pl.DataFrame], column: str = "session_e2e_s",
                title: str = "Session end-to-end latency") -> Figure:
    """Empirical CDF of ``column`` (a column of the sessions frame, or of the hops frame such as
    ``ttft_s``) per strategy, log-scaled seconds; the dotted line marks p99."""
    fig = Figure(figsize=(8, 4.8), layout="constrained")
    ax = fig.add_subplot()
    styles = ["solid", "dashed", "dashdot", "dotted"]
    for i, (name, res) in enumerate(results.items()):
        frame = res if isinstance(res, pl.DataFrame) else (
            res.sessions if column in res.sessions.columns else res.hops)
        values = frame[column].drop_nulls().sort().to_list()
        if not values:
            continue
        n = len(values)
        ys = [(k + 1) / n for k in range(n)]
        ours = name == OURS
        ax.step([max(v, 1e-3) for v in values], ys, where="post", label=name,
                linewidth=2.4 if ours else 1.2, color=_OURS_COLOR if ours else None,
                linestyle="solid" if ours else styles[i % len(styles)], zorder=3 if ours else 2)
    ax.axhline(0.99, color=_OTHER_COLOR, linestyle="dotted", linewidth=0.8)
    ax.text(1.0, 0.99, "p99 ", transform=ax.get_yaxis_transform(), ha="right", va="bottom",
            fontsize=8, color=_OTHER_COLOR)
    ax.set_xscale("log")
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"{column} (seconds, log scale)")
    ax.set_ylabel("fraction of sessions" if column.startswith("session") else "fraction")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", ncols=2)
    return fig


def hit_rates(summaries: Mapping[str, Mapping[str, Any]]) -> Figure:
    """Prefix-cache hit rate per strategy (``hit_rate``), with the share of prompt tokens
    fetched from another node (``transferred_tokens``) stacked after it in a lighter shade."""
    names = list(summaries)
    fig = Figure(figsize=(8, 0.45 * len(names) + 1.8), layout="constrained")
    ax = fig.add_subplot()
    ys = list(range(len(names)))[::-1]
    hits = [float(summaries[n]["hit_rate"]) for n in names]
    moved = [summaries[n]["transferred_tokens"] / summaries[n]["prompt_tokens"]
             if summaries[n]["prompt_tokens"] else 0.0 for n in names]
    colors = [_OURS_COLOR if n == OURS else _OTHER_COLOR for n in names]
    ax.barh(ys, hits, color=colors)
    ax.barh(ys, moved, left=hits, color=_LIGHT)
    for y, h, m in zip(ys, hits, moved, strict=True):
        ax.text(h + m + 0.008, y, f"{h:.3f}" + (f" + {m:.3f}" if m >= 0.0005 else ""), va="center", fontsize=8)
    ax.set_yticks(ys, names)
    ax.set_xlim(0, 1)
    ax.set_xlabel("share of prompt tokens")
    ax.set_title("Prefix-cache hit rate per strategy")
    ax.legend(handles=[Patch(color=_OTHER_COLOR, label="hit on the chosen node (hit_rate)"),
                       Patch(color=_LIGHT, label="fetched from another node")],
              fontsize=8, loc="upper center", bbox_to_anchor=(0.5, -0.16), ncols=2, frameon=False)
    return fig


def _session_hops(trace: Trace, session_id: str) -> list[Hop]:
    hops = sorted((h for h in trace.hop_list if h.session_id == session_id), key=lambda h: (h.start_s, h.hop_id))
    if not hops:
        raise UsageError(f"no session {session_id!r} in the trace")
    return hops


def context_growth(trace: Trace, session_id: str) -> Figure:
    """Prompt tokens of each hop of one session, split into the prefix it shares with its agent's
    previous hop and the tokens that are new (tool results, user turns, the previous output)."""
    hops = _session_hops(trace, session_id)
    fig = Figure(figsize=(min(MAX_WIDTH_IN, max(6.0, 0.42 * len(hops) + 2)), 4.4), layout="constrained")
    ax = fig.add_subplot()
    xs = list(range(len(hops)))
    shared = [h.shared_prefix_tokens / 1000 for h in hops]
    new = [h.new_tokens / 1000 for h in hops]
    ax.bar(xs, shared, color=_LIGHT, label="prefix shared with the agent's previous hop")
    ax.bar(xs, new, bottom=shared, color=_OURS_COLOR, label="new tokens")
    ax.plot(xs, [h.output_tokens / 1000 for h in hops], color="#1e293b", marker=".", linewidth=1,
            label="output tokens")
    ax.set_xticks(xs, [f"{h.agent_id[:6]}\n{h.index}" for h in hops], fontsize=7)
    ax.set_xlabel("hop (agent, index), in start order")
    ax.set_ylabel("thousand tokens")
    ax.set_title(f"Context growth per hop, session {session_id[:8]}")
    ax.legend(fontsize=8, loc="upper left")
    return fig


def call_graph(trace: Trace, session_id: str) -> Figure:
    """The call graph of one session: one lane per agent, hops in start order, marker area
    proportional to the prompt; edges solid (sequence), dashed (spawn), dotted (join); the
    critical path (the session's makespan) in a heavier line."""
    hops = _session_hops(trace, session_id)
    ids = {h.hop_id for h in hops}
    agents = list(dict.fromkeys(h.agent_id for h in hops))
    pos = {h.hop_id: (float(i), -float(agents.index(h.agent_id))) for i, h in enumerate(hops)}
    g: nx.DiGraph[str] = nx.DiGraph()
    g.add_nodes_from(pos)
    kinds = {}
    for e in trace.edges:
        if e.src in ids and e.dst in ids:
            g.add_edge(e.src, e.dst)
            kinds[(e.src, e.dst)] = e.kind
    path, _ = session_critical_paths(trace).get(session_id, ([], 0.0))
    critical = set(itertools.pairwise(path))
    fig = Figure(figsize=(min(MAX_WIDTH_IN, max(6.0, 0.55 * len(hops) + 2)),
                          min(MAX_WIDTH_IN, 1.1 * len(agents) + 1.8)), layout="constrained")
    ax = fig.add_subplot()
    for kind, style in _EDGE_STYLE.items():
        edges = [uv for uv in g.edges if kinds[uv] is kind]
        for group, width, color in ((set(edges) - critical, 1.0, _OTHER_COLOR),
                                    (set(edges) & critical, 2.4, _OURS_COLOR)):
            if group:
                nx.draw_networkx_edges(g, pos, edgelist=sorted(group), ax=ax, style=style, width=width,
                                       edge_color=color, arrows=True, arrowsize=10,
                                       connectionstyle="arc3,rad=0.08", node_size=300)
    by_id = {h.hop_id: h for h in hops}
    nx.draw_networkx_nodes(g, pos, nodelist=list(pos), ax=ax, node_color="white", edgecolors="#1e293b",
                           node_size=[80 + by_id[n].prompt_tokens / 60 for n in pos])
    nx.draw_networkx_labels(g, pos, labels={n: str(by_id[n].index) for n in pos}, ax=ax, font_size=7)
    for lane, agent in enumerate(agents):
        ax.text(-0.8, -lane, agent[:14], ha="right", va="center", fontsize=8)
    ax.set_xlim(-3.2, len(hops) - 0.4)
    ax.set_ylim(-len(agents) + 0.4, 0.6)
    ax.axis("off")
    ax.set_title(f"Call graph, session {session_id[:8]}: {len(hops)} hops, {len(agents)} agent(s)")
    ax.legend(handles=[Line2D([], [], color=_OTHER_COLOR, linestyle=s, label=k.value)
                       for k, s in _EDGE_STYLE.items()]
              + [Line2D([], [], color=_OURS_COLOR, linewidth=2.4, label="critical path")],
              fontsize=8, loc="lower right", ncols=4)
    return fig
