"""The call graph of a trace, its critical path, and DOT / Mermaid / JSON / PNG / SVG renderings.

Node weight is a hop's latency (``latency_s``), edge weight the gap before the next hop starts
(``wait_s``: tool execution, CPU work, user think time). A session's makespan is the heaviest
path through its DAG, counting both.

Pictures (:func:`to_image`, :func:`call_graph_figure`) are drawn with matplotlib and networkx, no
Graphviz: :func:`lane_layout` puts hops in start order left to right and agents in lanes, an agent
reusing the lane of one that finished before it started; a session longer than ``max_columns``
hops is summarized, one node per agent and span of hops, not stretched.
"""

from __future__ import annotations

import io
import math
from dataclasses import dataclass
from itertools import pairwise
from typing import TYPE_CHECKING, Any, Literal

import networkx as nx
import orjson

from agentgraph.errors import TraceFormatError, UsageError
from agentgraph.model import MAIN_AGENT, EdgeKind, Hop, Trace

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

__all__ = [
    "IMAGE_FORMATS",
    "LaneLayout",
    "build_graph",
    "call_graph_figure",
    "critical_path",
    "draw_session",
    "figure_bytes",
    "json_bytes",
    "lane_layout",
    "session_critical_paths",
    "to_dot",
    "to_image",
    "to_json",
    "to_mermaid",
]

IMAGE_FORMATS = ("png", "svg")
MAX_COLUMNS = 80  # hops drawn one by one up to this; longer sessions get one node per agent and span
MAX_PANELS = 12  # sessions in one picture; --session picks one of the rest
MAX_SIDE_IN = 21.0  # 2,310 px at the 110 dpi of to_image
LANE_GAP = 3  # columns left free before an agent reuses a lane (room for its label)
_DARK, _GREY, _CRITICAL = "#1e293b", "#64748b", "#c2410c"
_EDGE_STYLE: dict[EdgeKind, Literal["solid", "dashed", "dotted"]] = {
    EdgeKind.SEQUENCE: "solid", EdgeKind.SPAWN: "dashed", EdgeKind.JOIN: "dotted"}


def build_graph(trace: Trace) -> nx.DiGraph[str]:
    """One node per hop (its fields as attributes, and ``agent_name`` from
    :meth:`Trace.agent_names`), one edge per dependency."""
    g: nx.DiGraph[str] = nx.DiGraph(block_size=trace.block_size)
    names = trace.agent_names()
    for h in trace.hop_list:
        g.add_node(
            h.hop_id, session_id=h.session_id, agent_id=h.agent_id,
            agent_name=names[h.session_id, h.agent_id], index=h.index, model=h.model,
            start_s=h.start_s, end_s=h.end_s, latency_s=h.latency_s,
            prompt_tokens=h.prompt_tokens, new_tokens=h.new_tokens,
            shared_prefix_tokens=h.shared_prefix_tokens, output_tokens=h.output_tokens,
            tools=[t.name for t in h.tool_calls], tool_wait_s=h.tool_wait_s,
        )
    for e in trace.edges:
        g.add_edge(e.src, e.dst, kind=e.kind.value, wait_s=e.wait_s, added_tokens=e.added_tokens)
    return g


def critical_path(g: nx.DiGraph[str]) -> tuple[list[str], float]:
    """The heaviest path (hop latency + edge wait) and its length in seconds.

    Ties are broken by node order, so the result is deterministic.

    >>> g = nx.DiGraph()
    >>> g.add_node("a", latency_s=1.0); g.add_node("b", latency_s=2.0); g.add_node("c", latency_s=0.5)
    >>> g.add_edge("a", "b", wait_s=3.0); g.add_edge("a", "c", wait_s=0.0)
    >>> critical_path(g)
    (['a', 'b'], 6.0)
    """
    best: dict[str, tuple[float, str | None]] = {}
    try:
        order = list(nx.lexicographical_topological_sort(g))
    except nx.NetworkXUnfeasible:
        cycle = " -> ".join(a for a, _ in nx.find_cycle(g))
        raise TraceFormatError(f"the call graph has a cycle ({cycle}); edges must go forward") from None
    for node in order:
        own = float(g.nodes[node].get("latency_s", 0.0))
        length, via = own, None
        for pred in sorted(g.predecessors(node)):
            cand = best[pred][0] + float(g.edges[pred, node].get("wait_s", 0.0)) + own
            if cand > length:
                length, via = cand, pred
        best[node] = (length, via)
    if not best:
        return [], 0.0
    end = max(sorted(best), key=lambda n: best[n][0])
    path: list[str] = []
    cursor: str | None = end
    while cursor is not None:
        path.append(cursor)
        cursor = best[cursor][1]
    return path[::-1], best[end][0]


def session_critical_paths(trace: Trace, g: nx.DiGraph[str] | None = None) -> dict[str, tuple[list[str], float]]:
    """The critical path and makespan of each session (``g``: the trace's graph, if built)."""
    g = build_graph(trace) if g is None else g
    by_session: dict[str, list[str]] = {sid: [] for sid in trace.sessions()}
    for hop in trace.hop_list:
        by_session[hop.session_id].append(hop.hop_id)
    return {sid: critical_path(g.subgraph(nodes)) for sid, nodes in by_session.items()}


def _label(d: dict[str, Any], node: str) -> str:
    tools = ",".join(d["tools"]) or "-"
    return (f"{d['agent_name']}#{d['index']} {d['prompt_tokens']} tok "
            f"(+{d['new_tokens']}) -> {tools}")


def to_dot(trace: Trace) -> str:
    """Graphviz DOT; critical-path nodes and edges are drawn bold red, one cluster per session."""
    g = build_graph(trace)
    crit = _critical_sets(session_critical_paths(trace, g))
    lines = ["digraph agentgraph {", "  rankdir=TB;", '  node [shape=box, fontsize=10];']
    for i, sid in enumerate(trace.sessions()):
        lines.append(f"  subgraph cluster_{i} {{")
        lines.append(f"    label={_q('session ' + sid)};")
        for n, d in g.nodes(data=True):
            if d["session_id"] == sid:
                style = ', color=red, penwidth=2' if n in crit[0] else ""
                lines.append(f"    {_q(n)} [label={_q(_label(d, n))}{style}];")
        lines.append("  }")
    for a, b, d in g.edges(data=True):
        style = ", color=red, penwidth=2" if (a, b) in crit[1] else ""
        dash = ", style=dashed" if d["kind"] != "sequence" else ""
        label = _q(f"{d['kind']} {d['wait_s']:.2f}s")
        lines.append(f"  {_q(a)} -> {_q(b)} [label={label}{dash}{style}];")
    lines.append("}")
    return "\n".join(lines) + "\n"


def to_mermaid(trace: Trace) -> str:
    """Mermaid flowchart; critical-path nodes get the ``critical`` class."""
    g = build_graph(trace)
    crit = _critical_sets(session_critical_paths(trace, g))
    ids = {n: f"h{i}" for i, n in enumerate(g.nodes)}
    lines = ["flowchart TD"]
    for i, sid in enumerate(trace.sessions()):
        lines.append(f"  subgraph s{i}[\"session {sid}\"]")
        for n, d in g.nodes(data=True):
            if d["session_id"] == sid:
                lines.append(f"    {ids[n]}[\"{_label(d, n)}\"]")
        lines.append("  end")
    for a, b, d in g.edges(data=True):
        arrow = "-->" if d["kind"] == "sequence" else "-.->"
        lines.append(f"  {ids[a]} {arrow}|{d['kind']} {d['wait_s']:.2f}s| {ids[b]}")
    lines.append("  classDef critical stroke:#d00,stroke-width:3px;")
    marked = [ids[n] for n in g.nodes if n in crit[0]]
    if marked:
        lines.append(f"  class {','.join(marked)} critical;")
    return "\n".join(lines) + "\n"


def to_json(trace: Trace) -> dict[str, Any]:
    """Nodes, edges and per-session critical paths as one JSON-ready object."""
    g = build_graph(trace)
    paths = session_critical_paths(trace, g)
    crit = _critical_sets(paths)
    return {
        "block_size": trace.block_size,
        "nodes": [{"id": n, **d, "critical": n in crit[0]} for n, d in g.nodes(data=True)],
        "edges": [{"src": a, "dst": b, **d, "critical": (a, b) in crit[1]}
                  for a, b, d in g.edges(data=True)],
        "sessions": {sid: {"critical_path": p, "makespan_s": m} for sid, (p, m) in paths.items()},
    }


def json_bytes(trace: Trace) -> bytes:
    return orjson.dumps(to_json(trace), option=orjson.OPT_INDENT_2) + b"\n"


def _critical_sets(paths: dict[str, tuple[list[str], float]]) -> tuple[set[str], set[tuple[str, str]]]:
    nodes: set[str] = set()
    edges: set[tuple[str, str]] = set()
    for path, _ in paths.values():
        nodes.update(path)
        edges.update(pairwise(path))
    return nodes, edges


def _q(text: str) -> str:
    return '"' + text.replace("\\", "\\\\").replace('"', '\\"') + '"'


# --------------------------------------------------------------------------- pictures


@dataclass(frozen=True, slots=True)
class LaneLayout:
    """Where one session's hops are drawn (:func:`lane_layout`).

    ``members`` maps each drawn node to the hops it stands for, in start order: the hop itself when
    ``hops_per_column`` is 1 (the node id is then the hop id), else one agent's hops within a span
    of ``hops_per_column`` consecutive hops of the session (node id ``agent@column``). ``pos`` is
    (column, -lane); ``lanes`` gives each agent's lane, ``first`` the column of its first node.
    """

    session_id: str
    hops_per_column: int
    columns: int
    members: dict[str, tuple[Hop, ...]]
    pos: dict[str, tuple[float, float]]
    lanes: dict[str, int]
    first: dict[str, int]

    @property
    def lane_count(self) -> int:
        return max(self.lanes.values()) + 1


def _session_hops(trace: Trace, session_id: str) -> list[Hop]:
    hops = sorted((h for h in trace.hop_list if h.session_id == session_id), key=lambda h: (h.start_s, h.hop_id))
    if not hops:
        raise UsageError(f"no session {session_id!r} in the trace")
    return hops


def lane_layout(trace: Trace, session_id: str, max_columns: int = MAX_COLUMNS) -> LaneLayout:
    """Lay one session out: column = position in start order (a span of hops when the session has
    more than ``max_columns``), lane = the agent's: ``main`` (else the first agent) on lane 0, every
    other agent, in order of its first hop, on the lowest lane free since ``LANE_GAP`` columns
    before its first hop.

    >>> from agentgraph.model import Hop
    >>> hop = lambda i, a, t: Hop(i, "s", a, 0, "m", t, t + 1, 10, 1, 0, ())
    >>> t = Trace((hop("a", "main", 0), hop("b", "sub1", 1), hop("c", "sub2", 9), hop("d", "main", 10)))
    >>> layout = lane_layout(t, "s")
    >>> layout.pos["b"], layout.pos["c"], layout.lanes
    ((1.0, -1.0), (2.0, -2.0), {'main': 0, 'sub1': 1, 'sub2': 2})
    """
    hops = _session_hops(trace, session_id)
    width = max(1, math.ceil(len(hops) / max_columns))
    members: dict[str, list[Hop]] = {}
    column: dict[str, int] = {}
    for i, h in enumerate(hops):
        node = h.hop_id if width == 1 else f"{h.agent_id}@{i // width}"
        members.setdefault(node, []).append(h)
        column.setdefault(node, i // width)
    span: dict[str, list[int]] = {}
    for node, group in members.items():
        span.setdefault(group[0].agent_id, []).append(column[node])
    lanes: dict[str, int] = {}
    busy_until: list[int] = []  # per lane: the last column used
    for agent, cols in sorted(span.items(), key=lambda kv: kv[0] != MAIN_AGENT):  # main first, stable
        lane = 0 if not lanes else next(
            (k for k in range(1, len(busy_until)) if busy_until[k] + LANE_GAP < min(cols)), len(busy_until))
        if lane == len(busy_until):
            busy_until.append(-1)
        busy_until[lane] = max(busy_until[lane], max(cols))
        lanes[agent] = lane
    pos = {node: (float(column[node]), -float(lanes[g[0].agent_id])) for node, g in members.items()}
    return LaneLayout(session_id, width, math.ceil(len(hops) / width), {n: tuple(g) for n, g in members.items()},
                      pos, lanes, {a: min(c) for a, c in span.items()})


def _panel_size(layout: LaneLayout) -> tuple[float, float]:
    return min(MAX_SIDE_IN, max(5.0, 0.42 * layout.columns + 2.0)), min(MAX_SIDE_IN, 0.85 * layout.lane_count + 1.5)


def draw_session(ax: Axes, trace: Trace, layout: LaneLayout, path: list[str], width_in: float) -> None:
    """Draw ``layout`` on ``ax``: edges by kind (solid sequence, dashed spawn, dotted join), the
    critical ``path`` (hop ids) heavier, node area by mean prompt, agent names
    (:meth:`Trace.agent_names`) at their first node."""
    node_of = {h.hop_id: node for node, group in layout.members.items() for h in group}
    kinds: dict[tuple[str, str], EdgeKind] = {}
    for e in trace.edges:
        u, v = node_of.get(e.src), node_of.get(e.dst)
        if u is not None and v is not None and u != v:
            kinds.setdefault((u, v), e.kind)
    critical = {(node_of[a], node_of[b]) for a, b in pairwise(path) if node_of[a] != node_of[b]}
    g: nx.DiGraph[str] = nx.DiGraph()
    g.add_nodes_from(layout.pos)
    g.add_edges_from(kinds)
    spacing_pt = 72 * (width_in - 1.0) / (layout.columns + 2.5)
    diameter = max(4.0, min(22.0, 0.8 * spacing_pt))
    prompt = {n: sum(h.prompt_tokens for h in grp) / len(grp) for n, grp in layout.members.items()}
    top = max(prompt.values()) or 1
    sizes = {n: (diameter * (0.45 + 0.55 * math.sqrt(p / top))) ** 2 for n, p in prompt.items()}
    nodes = list(layout.pos)
    for kind, style in _EDGE_STYLE.items():
        edges = {uv for uv, k in kinds.items() if k is kind}
        for group, lw, color in ((edges - critical, 1.0, _GREY), (edges & critical, 2.4, _CRITICAL)):
            if group:
                nx.draw_networkx_edges(g, layout.pos, edgelist=sorted(group), ax=ax, style=style, width=lw,
                                       edge_color=color, arrows=True, arrowsize=max(5.0, diameter / 2),
                                       connectionstyle="arc3,rad=0.08", nodelist=nodes,
                                       node_size=[sizes[n] for n in nodes])
    nx.draw_networkx_nodes(g, layout.pos, nodelist=nodes, ax=ax, node_color="white", edgecolors=_DARK,
                           node_size=[sizes[n] for n in nodes], linewidths=0.8)
    if layout.hops_per_column == 1 and diameter >= 12:
        nx.draw_networkx_labels(g, layout.pos, labels={n: str(layout.members[n][0].index) for n in nodes},
                                ax=ax, font_size=7)
    names = trace.agent_names()
    for agent, lane in layout.lanes.items():
        ax.text(layout.first[agent] - 0.25, -lane + 0.22, names[layout.session_id, agent], ha="left",
                va="bottom", fontsize=7, color=_DARK)
    ax.set_xlim(-1.0, layout.columns + 0.5)
    ax.set_ylim(-layout.lane_count + 0.5, 0.75)
    ax.axis("off")
    n_hops = sum(len(m) for m in layout.members.values())
    summary = "" if layout.hops_per_column == 1 else f"; a node = one agent's hops among {layout.hops_per_column}"
    ax.set_title(f"session {layout.session_id[:8]}: {n_hops} hops, {len(layout.lanes)} agent(s){summary}",
                 fontsize=9)


def call_graph_figure(trace: Trace, session_ids: list[str] | None = None,
                      max_columns: int = MAX_COLUMNS) -> Figure:
    """The call graphs of ``session_ids`` (default: every session, at most ``MAX_PANELS``, a note
    in the title when there are more), one panel each, as one matplotlib figure."""
    from matplotlib.figure import Figure
    from matplotlib.lines import Line2D

    ids = trace.sessions() if session_ids is None else session_ids
    shown = ids[:MAX_PANELS]
    layouts = [lane_layout(trace, sid, max_columns) for sid in shown]
    paths = session_critical_paths(trace)
    ncols = 1 if len(layouts) <= 2 else 2 if len(layouts) <= 8 else 3
    rows = [layouts[i:i + ncols] for i in range(0, len(layouts), ncols)]
    panel_w = min(MAX_SIDE_IN / ncols, max(_panel_size(lo)[0] for lo in layouts))
    heights = [max(_panel_size(lo)[1] for lo in row) for row in rows]
    scale = min(1.0, MAX_SIDE_IN / (sum(heights) + 0.6))
    width = max(panel_w * ncols, (sum(heights) * scale + 0.6) / 2.8)
    height = max(sum(heights) * scale + 0.6, width / 2.8)
    fig = Figure(figsize=(width, height), layout="constrained")
    grid = fig.add_gridspec(len(rows), ncols, height_ratios=heights)
    for k, layout in enumerate(layouts):
        ax = fig.add_subplot(grid[k // ncols, k % ncols])
        draw_session(ax, trace, layout, paths[layout.session_id][0], width / ncols)
    more = f" (the first {len(shown)}; --session picks one)" if len(ids) > len(shown) else ""
    what = "Call graph" if len(ids) == 1 else f"Call graphs of {len(ids)} sessions"
    fig.suptitle(f"{what}{more}: one lane per agent, hops in start order, node area ~ prompt", fontsize=10)
    fig.legend(handles=[Line2D([], [], color=_GREY, linestyle=s, label=k.value) for k, s in _EDGE_STYLE.items()]
               + [Line2D([], [], color=_CRITICAL, linewidth=2.4, label="critical path")],
               fontsize=8, loc="outside lower center", ncols=4, frameon=False)
    return fig


def figure_bytes(fig: Figure, fmt: str = "png", dpi: int = 110) -> bytes:
    """``fig`` as PNG or SVG bytes without software/date metadata, so equal figures are equal bytes."""
    import matplotlib

    if fmt not in IMAGE_FORMATS:
        raise UsageError(f"unknown image format {fmt!r}; choose from {', '.join(IMAGE_FORMATS)}")
    out = io.BytesIO()
    metadata: dict[str, Any] = {"Software": None} if fmt == "png" else {"Creator": None, "Date": None}
    with matplotlib.rc_context({"svg.hashsalt": "agentgraph"}):  # SVG element ids from a fixed salt
        fig.savefig(out, format=fmt, dpi=dpi, metadata=metadata)
    return out.getvalue()


def to_image(trace: Trace, fmt: str = "png") -> bytes:
    """The call graph of every session (at most ``MAX_PANELS``) as PNG or SVG bytes; no Graphviz."""
    return figure_bytes(call_graph_figure(trace), fmt)
