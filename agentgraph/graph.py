"""The call graph of a trace, its critical path, and DOT / Mermaid / JSON renderings.

Node weight is a hop's latency (``latency_s``), edge weight the gap before the next hop starts
(``wait_s``: tool execution, CPU work, user think time). A session's makespan is the heaviest
path through its DAG, counting both.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import networkx as nx
import orjson

from agentgraph.errors import TraceFormatError
from agentgraph.model import Trace

__all__ = [
    "build_graph",
    "critical_path",
    "json_bytes",
    "session_critical_paths",
    "to_dot",
    "to_json",
    "to_mermaid",
]


def build_graph(trace: Trace) -> nx.DiGraph[str]:
    """One node per hop (its fields as attributes), one edge per dependency."""
    g: nx.DiGraph[str] = nx.DiGraph(block_size=trace.block_size)
    for h in trace.hop_list:
        g.add_node(
            h.hop_id, session_id=h.session_id, agent_id=h.agent_id, index=h.index, model=h.model,
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
    return (f"{d['agent_id']}#{d['index']} {d['prompt_tokens']} tok "
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
