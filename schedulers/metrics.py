"""Replay metrics (DESIGN §7): per-hop, per-session and per-node frames and the summary.

Token classes partition every hop's prompt: ``cached_tokens`` (leading blocks hit on the chosen
node's GPUs) + ``transferred_tokens`` (warm blocks fetched from another node or the host tier) +
``reprefill_tokens`` (computed earlier somewhere in this replay, computed again here) +
``cold_tokens`` (computed for the first time) = ``prompt_tokens``. Percentiles are nearest-rank
(:func:`percentile`). Exact definitions: ``docs/metrics.md``.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import polars as pl

from agentgraph.frames import Schema, frame

if TYPE_CHECKING:
    from schedulers.simulator import Simulator

__all__ = [
    "CACHE_READ_MULTIPLIER",
    "CACHE_WRITE_MULTIPLIER",
    "HOPS_SCHEMA",
    "NODES_SCHEMA",
    "SESSIONS_SCHEMA",
    "SUMMARY_KEYS",
    "SUMMARY_SCHEMA",
    "ReplayResult",
    "build_result",
    "percentile",
    "summary_frame",
    "without_wall",
]

CACHE_READ_MULTIPLIER = 0.1
"""Price of a cached (or fetched) input token relative to the input price (seed 002)."""
CACHE_WRITE_MULTIPLIER = 1.25
"""Price of a computed input token, which is written to the cache (seed 002)."""

_TOKENS = ("prompt_tokens", "cached_tokens", "transferred_tokens", "reprefill_tokens", "cold_tokens",
           "output_tokens")

HOPS_SCHEMA: Schema = {
    "hop_id": pl.String,
    "session_id": pl.String,
    "agent_id": pl.String,
    "node": pl.Int64,
    "rack": pl.Int64,
    **{k: pl.Int64 for k in _TOKENS},
    "ready_s": pl.Float64,
    "dispatch_s": pl.Float64,
    "prefill_start_s": pl.Float64,
    "first_token_s": pl.Float64,
    "end_s": pl.Float64,
    "cpu_s": pl.Float64,
    "transfer_s": pl.Float64,
    "queue_s": pl.Float64,
    "prefill_s": pl.Float64,
    "ttft_s": pl.Float64,
    "hop_latency_s": pl.Float64,
    "cost_usd": pl.Float64,
}
"""One row per hop, in trace order."""

SESSIONS_SCHEMA: Schema = {
    "session_id": pl.String,
    "hops": pl.Int64,
    "agents": pl.Int64,
    "nodes_used": pl.Int64,
    **{k: pl.Int64 for k in _TOKENS},
    "hit_rate": pl.Float64,
    "arrival_s": pl.Float64,
    "end_s": pl.Float64,
    "session_e2e_s": pl.Float64,
    "cost_usd": pl.Float64,
}
"""One row per session, in order of first appearance in the trace."""

NODES_SCHEMA: Schema = {
    "node": pl.Int64,
    "rack": pl.Int64,
    "hops": pl.Int64,
    "load": pl.Float64,
    "prompt_tokens": pl.Int64,
    "cached_tokens": pl.Int64,
    "hit_rate": pl.Float64,
    "busy_s": pl.Float64,
    "busy_fraction": pl.Float64,
    "evicted_blocks": pl.Int64,
    "expired_blocks": pl.Int64,
    "peak_blocks": pl.Int64,
    "capacity_blocks": pl.Int64,
}
"""One row per node; ``load`` is the node's hops over the mean hops per node."""

SUMMARY_KEYS = (
    "strategy", "seed", "cluster", "nodes", "sessions", "hops", *_TOKENS, "hit_rate",
    "ttft_p50_s", "ttft_p90_s", "ttft_p99_s", "hop_latency_p50_s", "hop_latency_p90_s", "hop_latency_p99_s",
    "session_e2e_p50_s", "session_e2e_p90_s", "session_e2e_p99_s", "max_mean_load", "busy_fraction_mean",
    "busy_fraction_max", "evicted_blocks", "cost_usd", "cost_per_session_usd", "makespan_s", "wall_s",
)
"""The summary's keys, in order (a CLI contract: ``replay --json``, ``compare --json``)."""

_TEXT_KEYS, _INT_KEYS = ("strategy", "cluster"), ("seed", "nodes", "sessions", "hops", *_TOKENS, "evicted_blocks")
SUMMARY_SCHEMA: Schema = {
    k: pl.String if k in _TEXT_KEYS else pl.Int64 if k in _INT_KEYS else pl.Float64 for k in SUMMARY_KEYS}
"""The summary as a frame row (:func:`summary_frame`); percentiles are null when nothing was measured."""


def without_wall(summary: Mapping[str, Any]) -> dict[str, Any]:
    """``summary`` minus ``wall_s``, its only machine-dependent value (what files keep byte-identical)."""
    return {k: v for k, v in summary.items() if k != "wall_s"}


def summary_frame(summaries: Iterable[Mapping[str, Any]]) -> pl.DataFrame:
    """One row per summary (e.g. ``[r.summary for r in compare(...).values()]``), SUMMARY_SCHEMA.

    >>> summary_frame([dict.fromkeys(SUMMARY_KEYS, 0) | {"strategy": "a", "cluster": "c"}])["strategy"].to_list()
    ['a']
    """
    return frame([tuple(s[k] for k in SUMMARY_KEYS) for s in summaries], SUMMARY_SCHEMA)


@dataclass(frozen=True, slots=True)
class ReplayResult:
    """A replay's frames and summary. ``summary["wall_s"]`` is the only machine-dependent value."""

    hops: pl.DataFrame
    sessions: pl.DataFrame
    nodes: pl.DataFrame
    summary: dict[str, Any]


def percentile(values: Sequence[float], q: float) -> float | None:
    """Nearest-rank percentile: the smallest value with at least ``q`` % of the values ≤ it.

    >>> percentile([4.0, 1.0, 3.0, 2.0], 50), percentile([4.0, 1.0, 3.0, 2.0], 99), percentile([], 50)
    (2.0, 4.0, None)
    """
    return _ranked(sorted(values), q)


def _ranked(ordered: Sequence[float], q: float) -> float | None:
    """:func:`percentile` of values already sorted ascending."""
    if not ordered:
        return None
    return float(ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1])


def _cost(spec_in: float, spec_out: float, t: dict[str, int]) -> float:
    read = (t["cached_tokens"] + t["transferred_tokens"]) * CACHE_READ_MULTIPLIER
    write = (t["reprefill_tokens"] + t["cold_tokens"]) * CACHE_WRITE_MULTIPLIER
    return ((read + write) * spec_in + t["output_tokens"] * spec_out) / 1e6


def build_result(sim: Simulator) -> ReplayResult:
    """The frames and summary of a finished simulator run."""
    spec, racks = sim.spec, sim.topology.racks
    p_in, p_out = spec.price_input_per_mtok, spec.price_output_per_mtok
    hop_rows: list[tuple[object, ...]] = []
    per_session: list[dict[str, Any]] = [
        {"hops": 0, "agents": set(), "nodes": set(), "end_s": a, **dict.fromkeys(_TOKENS, 0), "cost_usd": 0.0}
        for a in sim.arrivals
    ]
    node_tokens = [[0, 0] for _ in sim.nodes]  # prompt, cached
    for r in sim.runs:
        h = r.hop
        node_tokens[r.node][0] += h.prompt_tokens
        node_tokens[r.node][1] += r.cached_tokens
        toks = {"prompt_tokens": h.prompt_tokens, "cached_tokens": r.cached_tokens,
                "transferred_tokens": r.transferred_tokens, "reprefill_tokens": r.reprefill_tokens,
                "cold_tokens": r.cold_tokens, "output_tokens": h.output_tokens}
        cost = _cost(p_in, p_out, toks)
        queue = r.prefill_start_s - r.dispatch_s - r.transfer_s
        hop_rows.append((h.hop_id, h.session_id, h.agent_id, r.node, racks[r.node], *toks.values(), r.ready_s,
                         r.dispatch_s, r.prefill_start_s, r.first_token_s, r.end_s, r.cpu_s, r.transfer_s,
                         max(0.0, queue), r.prefill_s, r.first_token_s - r.dispatch_s, r.end_s - r.dispatch_s, cost))
        s = per_session[r.session_index]
        s["hops"] += 1
        s["agents"].add(h.agent_id)
        s["nodes"].add(r.node)
        s["end_s"] = max(s["end_s"], r.done_s)  # the last hop's parse + validate CPU included
        s["cost_usd"] += cost
        for k, v in toks.items():
            s[k] += v
    session_rows = [
        (sid, s["hops"], len(s["agents"]), len(s["nodes"]), *(s[k] for k in _TOKENS),
         s["cached_tokens"] / s["prompt_tokens"] if s["prompt_tokens"] else 0.0,
         sim.arrivals[i], s["end_s"], s["end_s"] - sim.arrivals[i], s["cost_usd"])
        for i, (sid, s) in enumerate(zip(sim.session_ids, per_session, strict=True))
    ]
    makespan = max((r.done_s for r in sim.runs), default=0.0)
    mean_hops = len(sim.runs) / len(sim.nodes)
    node_rows = []
    for n, (prompt, cached) in zip(sim.nodes, node_tokens, strict=True):
        node_rows.append((n.index, racks[n.index], n.hops, n.hops / mean_hops if mean_hops else 0.0, prompt, cached,
                          cached / prompt if prompt else 0.0, n.busy_s, n.busy_s / makespan if makespan else 0.0,
                          n.cache.evictions, n.cache.expired, n.cache.peak_blocks, n.cache.capacity_blocks))
    hops = frame(hop_rows, HOPS_SCHEMA)
    sessions = frame(session_rows, SESSIONS_SCHEMA)
    nodes = frame(node_rows, NODES_SCHEMA)
    return ReplayResult(hops, sessions, nodes, _summary(sim, hops, sessions, node_rows, makespan))


def _summary(sim: Simulator, hops: pl.DataFrame, sessions: pl.DataFrame, node_rows: list[tuple[Any, ...]],
             makespan: float) -> dict[str, Any]:
    node_col = _columns(NODES_SCHEMA)
    totals = {k: int(v) for k, v in zip(_TOKENS, hops.select(_TOKENS).sum().row(0), strict=True)}
    loads = [row[node_col["load"]] for row in node_rows]
    busy = [row[node_col["busy_fraction"]] for row in node_rows]
    cost = sum(hops["cost_usd"].to_list())
    out: dict[str, Any] = {
        "strategy": sim.strategy_name, "seed": sim.seed, "cluster": sim.spec.name, "nodes": len(sim.nodes),
        "sessions": sessions.height, "hops": hops.height, **totals,
        "hit_rate": totals["cached_tokens"] / totals["prompt_tokens"] if totals["prompt_tokens"] else 0.0,
    }
    for name, values in (("ttft", hops["ttft_s"]), ("hop_latency", hops["hop_latency_s"]),
                         ("session_e2e", sessions["session_e2e_s"])):
        ordered = values.sort().to_list()
        for q in (50, 90, 99):
            out[f"{name}_p{q}_s"] = _ranked(ordered, q)
    out.update({
        "max_mean_load": max(loads, default=0.0),
        "busy_fraction_mean": sum(busy) / len(busy) if busy else 0.0,
        "busy_fraction_max": max(busy, default=0.0),
        "evicted_blocks": sum(row[node_col["evicted_blocks"]] for row in node_rows),
        "cost_usd": cost,
        "cost_per_session_usd": cost / sessions.height if sessions.height else 0.0,
        "makespan_s": makespan,
        "wall_s": sim.wall_s,
    })
    assert tuple(out) == SUMMARY_KEYS, "summary keys drifted from SUMMARY_KEYS"
    return out


def _columns(schema: Schema) -> dict[str, int]:
    """Column name → position in a row of ``schema``."""
    return {name: i for i, name in enumerate(schema)}
