"""Plots of replays and traces: matplotlib figures for reports (PNG) and notebooks (inline).

Every function returns a :class:`matplotlib.figure.Figure` built without ``pyplot`` (no global
figure state, nothing to close); a notebook cell that ends with one renders it inline, and
:func:`save_png` writes it byte-identically for the same inputs. Every figure keeps a readable
size for sessions of 1,000 hops and a dozen agents: long sessions are summarized (hops binned,
at most ``MAX_BINS`` bars; call-graph nodes per agent and span of hops), never stretched.

    >>> from schedulers.plots import hit_rates
    >>> fig = hit_rates({"a": {"hit_rate": 0.5, "transferred_tokens": 0, "prompt_tokens": 10}})
    >>> [t.get_text() for t in fig.axes[0].get_yticklabels()]
    ['a']
"""

from __future__ import annotations

import io
import math
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import polars as pl
from matplotlib.figure import Figure
from matplotlib.patches import Patch
from matplotlib.ticker import FuncFormatter, LogLocator, MaxNLocator, NullFormatter

from agentgraph.errors import UsageError
from agentgraph.graph import call_graph_figure
from agentgraph.model import Hop, Trace
from agentgraph.outputs import write_output
from schedulers.metrics import ReplayResult

__all__ = ["call_graph", "context_growth", "hit_rates", "latency_cdf", "plain_number", "save_png"]

OURS = "topology_aware"
MAX_BINS = 200  # context growth: a longer session is shown as this many bins of consecutive hops
_OURS_COLOR, _OTHER_COLOR, _LIGHT, _DARK = "#c2410c", "#64748b", "#cbd5e1", "#1e293b"
# ten strategies must stay apart in print and for colour-blind readers: colour, dash and marker all vary
_COLORS = ("#1f77b4", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf", "#bcbd22", "#7f7f7f",
           "#d62728", "#ff7f0e")
_DASHES = ("solid", "dashed", "dashdot", "dotted")
_MARKERS = ("s", "^", "v", "D", "P", "X", "<", ">", "*", "h")
_FRAMES = ("turns", "sessions", "hops")  # where latency_cdf looks for a column, in this order


def save_png(fig: Figure, path: str | Path, dpi: int = 110) -> Path:
    """Write ``fig`` as PNG without the software/date metadata, so equal figures are equal bytes
    (through :func:`agentgraph.outputs.write_output`: a symlink is followed, a FIFO fed)."""
    png = io.BytesIO()
    fig.savefig(png, format="png", dpi=dpi, metadata={"Software": None})
    return write_output(path, png.getvalue())


def plain_number(value: float, _pos: object = None) -> str:
    """A tick label without exponents: ``0.05``, ``2``, ``1,500``, ``100,000``.

    >>> [plain_number(v) for v in (0.005, 0.2, 2.0, 20.0, 1500.0, 1e5)]
    ['0.005', '0.2', '2', '20', '1,500', '100,000']
    """
    if value >= 1000:
        return f"{value:,.0f}"
    return f"{value:.3g}"


def _frame(res: ReplayResult | pl.DataFrame, column: str) -> pl.DataFrame:
    if isinstance(res, pl.DataFrame):
        return res
    for name in _FRAMES:  # a ReplayResult that grows a turns frame is read without a change here
        frame = getattr(res, name, None)
        if isinstance(frame, pl.DataFrame) and column in frame.columns:
            return frame
    raise UsageError(f"no column {column!r} in the replay's frames")


def _unit(column: str) -> str:
    return next((u for u in ("turn", "session") if column.startswith(u)), "hop")


def latency_cdf(results: Mapping[str, ReplayResult | pl.DataFrame], column: str = "session_e2e_s",
                title: str = "Session end-to-end latency") -> Figure:
    """Empirical CDF of ``column`` per strategy, log-scaled seconds with plain-number ticks; the
    dotted line marks p99, each curve's marker its p50 and p99. ``column`` is looked up in a
    result's turns frame (once replays have one: ``turn_e2e_s`` becomes the headline), then its
    sessions frame, then its hops frame (``ttft_s``)."""
    fig = Figure(figsize=(9, 5.4), layout="constrained")
    ax = fig.add_subplot()
    low, high = float("inf"), 0.0
    for i, (name, res) in enumerate(results.items()):
        values = [max(v, 1e-3) for v in _frame(res, column)[column].drop_nulls().sort().to_list()]
        if not values:
            continue
        n = len(values)
        low, high = min(low, values[0]), max(high, values[-1])
        ours = name == OURS
        ax.step(values, [(k + 1) / n for k in range(n)], where="post", label=name,
                linewidth=2.6 if ours else 1.3, color=_OURS_COLOR if ours else _COLORS[i % len(_COLORS)],
                linestyle="solid" if ours else _DASHES[i % len(_DASHES)], zorder=3 if ours else 2,
                marker="o" if ours else _MARKERS[i % len(_MARKERS)], markersize=6 if ours else 5,
                markevery=sorted({(n - 1) // 2, max(0, -(-99 * n // 100) - 1)}))
    ax.axhline(0.99, color=_OTHER_COLOR, linestyle="dotted", linewidth=0.8)
    ax.text(1.0, 0.99, "p99 ", transform=ax.get_yaxis_transform(), ha="right", va="bottom",
            fontsize=8, color=_OTHER_COLOR)
    ax.set_xscale("log")
    decades = math.log10(high / low) if high > 0 else 0.0
    subs = (1.0,) if decades > 4 else (1.0, 2.0, 5.0) if decades > 2 else (1.0, 2.0, 3.0, 5.0) if decades > 0.7 \
        else tuple(float(k) for k in range(1, 10))
    ax.xaxis.set_major_locator(LogLocator(10, subs=subs))
    ax.xaxis.set_major_formatter(FuncFormatter(plain_number))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.set_ylim(0, 1.02)
    ax.set_xlabel(f"{column} (seconds, log scale)")
    ax.set_ylabel(f"fraction of {_unit(column)}s")
    ax.set_title(title)
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize=8, loc="lower right", ncols=2, title="strategy (markers: p50, p99)", title_fontsize=8)
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


def hop_bins(hops: Sequence[Hop], max_bins: int = MAX_BINS) -> list[Sequence[Hop]]:
    """Consecutive hops in at most ``max_bins`` bins of equal width (the last may be shorter).

    A hook: once hops carry their turn (issue #14), a per-turn summary groups by ``Hop.turn``
    here instead, and :func:`context_growth` draws one bar per turn.

    >>> [len(b) for b in hop_bins(list(range(7)), 3)]  # type: ignore[arg-type]
    [3, 3, 1]
    """
    width = max(1, -(-len(hops) // max_bins))
    return [hops[i:i + width] for i in range(0, len(hops), width)]


def _mean(values: Sequence[float]) -> float:
    return sum(values) / len(values)


def context_growth(trace: Trace, session_id: str, max_bins: int = MAX_BINS) -> Figure:
    """Prompt tokens of each hop of one session, in start order, split into the prefix it shares
    with its agent's previous hop and the tokens that are new (tool results, user turns, the
    previous output); output tokens per hop on their own axis (right). A session of more than
    ``max_bins`` hops is binned: each bar is the mean of consecutive hops, a line their largest
    prompt."""
    hops = _session_hops(trace, session_id)
    bins = hop_bins(hops, max_bins)
    width = len(bins[0])
    fig = Figure(figsize=(10, 4.8), layout="constrained")
    ax = fig.add_subplot()
    starts = [0]
    for b in bins[:-1]:
        starts.append(starts[-1] + len(b))
    xs = [s + (len(b) + 1) / 2 for s, b in zip(starts, bins, strict=True)]  # hop numbers from 1
    shared = [_mean([h.shared_prefix_tokens / 1000 for h in b]) for b in bins]
    new = [_mean([h.new_tokens / 1000 for h in b]) for b in bins]
    bar_w = [0.85 * len(b) for b in bins]
    ax.bar(xs, shared, width=bar_w, color=_LIGHT, label="prefix shared with the agent's previous hop")
    ax.bar(xs, new, width=bar_w, bottom=shared, color=_OURS_COLOR, label="new tokens")
    if width > 1:
        ax.plot(xs, [max(h.prompt_tokens for h in b) / 1000 for b in bins], color=_OURS_COLOR, linewidth=0.8,
                alpha=0.7, label=f"largest prompt in the bin of {width} hops")
    ax.set_ylabel("prompt, thousand tokens")
    ax.yaxis.set_major_formatter(FuncFormatter(plain_number))
    out = ax.twinx()
    out.plot(xs, [_mean([h.output_tokens for h in b]) for b in bins], color=_DARK, linewidth=1,
             marker="." if len(bins) <= 60 else None, label="output tokens (right axis)")
    out.set_ylim(bottom=0)
    out.set_ylabel("output tokens per hop")
    out.yaxis.set_major_formatter(FuncFormatter(plain_number))
    if len(hops) <= 40:
        ax.set_xticks(xs, [f"{h.agent_id[:6]}\n{h.index}" for h in hops], fontsize=7)
        ax.set_xlabel("hop (agent, index), in start order")
    else:
        ax.xaxis.set_major_locator(MaxNLocator(12, integer=True))
        ax.xaxis.set_major_formatter(FuncFormatter(plain_number))
        ax.set_xlabel("hop number in start order" + ("" if width == 1 else f" (bars: mean of {width} hops)"))
    ax.set_xlim(0.5 - (bar_w[0] - 0.85) / 2 - 0.1, len(hops) + 0.5)
    ax.set_title(f"Context growth per hop, session {session_id[:8]}: {len(hops)} hops")
    handles = ax.get_legend_handles_labels()[0] + out.get_legend_handles_labels()[0]
    ax.legend(handles=handles, fontsize=8, loc="upper left")
    return fig


def call_graph(trace: Trace, session_id: str) -> Figure:
    """The call graph of one session (:func:`agentgraph.graph.call_graph_figure`): agents in lanes
    (an agent reuses the lane of one that had finished), hops in start order, node area by prompt;
    edges solid (sequence), dashed (spawn), dotted (join); the critical path (the session's
    makespan) heavier. A session of more than 80 hops draws one node per agent and span of hops."""
    return call_graph_figure(trace, [session_id])
