"""Replay metrics (DESIGN §7): per-hop, per-session and per-node frames and the summary.

Token classes partition every hop's prompt: ``cached_tokens`` (leading blocks hit on the chosen
node's GPUs) + ``transferred_tokens`` (warm blocks fetched from another node or the host tier) +
``reprefill_tokens`` (computed earlier somewhere in this replay, computed again here) +
``cold_tokens`` (computed for the first time) = ``prompt_tokens``. Percentiles are nearest-rank
(:func:`percentile`, numpy's ``inverted_cdf``). Exact definitions: ``docs/metrics.md``.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
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

_QS = (50, 90, 99)  # the summary's percentiles: ..._p50_s, ..._p90_s, ..._p99_s

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
    """Nearest-rank percentile: the smallest value with at least ``q`` % of the values ≤ it
    (numpy's ``method="inverted_cdf"``, Hyndman & Fan's definition 1); None for no values.

    >>> percentile([4.0, 1.0, 3.0, 2.0], 50), percentile([4.0, 1.0, 3.0, 2.0], 99), percentile([], 50)
    (2.0, 4.0, None)
    """
    return _percentiles(values, (q,))[0]


def _percentiles(values: Sequence[float] | np.ndarray[Any, Any], qs: Sequence[float]) -> list[float | None]:
    if len(values) == 0:
        return [None] * len(qs)
    found = np.percentile(np.asarray(values, dtype=np.float64), qs, method="inverted_cdf")
    return [float(v) for v in found]


def build_result(sim: Simulator) -> ReplayResult:
    """The frames and summary of a finished simulator run.

    The hop frame is built column by column from the runs' attributes (one list per column, no row
    tuples), its derived columns vectorized: a third of the time of building row tuples for the
    Mooncake trace, a fifth for ten copies of it (``docs/performance.md``)."""
    runs, racks, spec = sim.runs, sim.topology.racks, sim.spec
    hops = [r.hop for r in runs]
    node = [r.node for r in runs]
    cols: dict[str, list[Any]] = {
        "hop_id": [h.hop_id for h in hops], "session_id": [h.session_id for h in hops],
        "agent_id": [h.agent_id for h in hops], "node": node, "rack": [racks[n] for n in node],
        "prompt_tokens": [h.prompt_tokens for h in hops], "cached_tokens": [r.cached_tokens for r in runs],
        "transferred_tokens": [r.transferred_tokens for r in runs],
        "reprefill_tokens": [r.reprefill_tokens for r in runs], "cold_tokens": [r.cold_tokens for r in runs],
        "output_tokens": [h.output_tokens for h in hops], "ready_s": [r.ready_s for r in runs],
        "dispatch_s": [r.dispatch_s for r in runs], "prefill_start_s": [r.prefill_start_s for r in runs],
        "first_token_s": [r.first_token_s for r in runs], "end_s": [r.end_s for r in runs],
        "cpu_s": [r.cpu_s for r in runs], "transfer_s": [r.transfer_s for r in runs],
        "prefill_s": [r.prefill_s for r in runs],
    }
    hop_frame = pl.DataFrame(cols, schema={k: HOPS_SCHEMA[k] for k in cols})
    t = {k: hop_frame[k].to_numpy() for k in _TOKENS}
    read = (t["cached_tokens"] + t["transferred_tokens"]) * CACHE_READ_MULTIPLIER
    write = (t["reprefill_tokens"] + t["cold_tokens"]) * CACHE_WRITE_MULTIPLIER
    # numpy, not a polars expression: polars divides by a scalar through its reciprocal (inexact)
    cost = ((read + write) * spec.price_input_per_mtok + t["output_tokens"] * spec.price_output_per_mtok) / 1e6
    c = pl.col
    hop_frame = hop_frame.with_columns(
        queue_s=pl.max_horizontal(0.0, c("prefill_start_s") - c("dispatch_s") - c("transfer_s")),
        ttft_s=c("first_token_s") - c("dispatch_s"),
        hop_latency_s=c("end_s") - c("dispatch_s"),
        cost_usd=pl.Series(cost, dtype=pl.Float64),
    ).select(list(HOPS_SCHEMA))
    costs = cost.tolist()
    sessions = _sessions(sim, hop_frame, [r.session_index for r in runs], [r.done_s for r in runs], costs)
    makespan = max((r.done_s for r in runs), default=0.0)
    nodes = _nodes(sim, hop_frame, makespan)
    return ReplayResult(hop_frame, sessions, nodes, _summary(sim, hop_frame, sessions, nodes, makespan, sum(costs)))


def _sessions(sim: Simulator, hops: pl.DataFrame, index: list[int], done: list[float],
              costs: list[float]) -> pl.DataFrame:
    """Per session, in order of first appearance; float sums run in trace order (deterministic)."""
    arrivals = sim.arrivals
    end, cost = list(arrivals), [0.0] * len(arrivals)
    for i, d, usd in zip(index, done, costs, strict=True):
        if d > end[i]:
            end[i] = d  # the last hop's parse + validate CPU included
        cost[i] += usd
    per = (hops.select("agent_id", "node", *_TOKENS).with_columns(i=pl.Series(index, dtype=pl.Int64))
           .group_by("i").agg(pl.len().cast(pl.Int64).alias("hops"), pl.col("agent_id").n_unique().cast(pl.Int64),
                              pl.col("node").n_unique().cast(pl.Int64), pl.col(_TOKENS).sum()))
    out = pl.DataFrame({"i": range(len(arrivals)), "session_id": sim.session_ids}, schema={"i": pl.Int64,
                       "session_id": pl.String}).join(per, on="i", how="left").sort("i")
    c = pl.col
    return out.select(
        "session_id", "hops", c("agent_id").alias("agents"), c("node").alias("nodes_used"), *_TOKENS,
        pl.when(c("prompt_tokens") > 0).then(c("cached_tokens") / c("prompt_tokens")).otherwise(0.0).alias("hit_rate"),
        pl.Series("arrival_s", arrivals, dtype=pl.Float64), pl.Series("end_s", end, dtype=pl.Float64),
        pl.Series("session_e2e_s", [e - a for e, a in zip(end, arrivals, strict=True)], dtype=pl.Float64),
        pl.Series("cost_usd", cost, dtype=pl.Float64),
    )


def _nodes(sim: Simulator, hops: pl.DataFrame, makespan: float) -> pl.DataFrame:
    per = dict.fromkeys(range(len(sim.nodes)), (0, 0))
    per |= {n: (p, k) for n, p, k in hops.group_by("node").agg(pl.col("prompt_tokens", "cached_tokens").sum())
            .iter_rows()}
    racks, mean_hops = sim.topology.racks, len(sim.runs) / len(sim.nodes)
    rows = []
    for n in sim.nodes:
        prompt, cached = per[n.index]
        rows.append((n.index, racks[n.index], n.hops, n.hops / mean_hops if mean_hops else 0.0, prompt, cached,
                     cached / prompt if prompt else 0.0, n.busy_s, n.busy_s / makespan if makespan else 0.0,
                     n.cache.evictions, n.cache.expired, n.cache.peak_blocks, n.cache.capacity_blocks))
    return frame(rows, NODES_SCHEMA)


def _summary(sim: Simulator, hops: pl.DataFrame, sessions: pl.DataFrame, nodes: pl.DataFrame,
             makespan: float, cost: float) -> dict[str, Any]:
    totals = {k: int(v) for k, v in zip(_TOKENS, hops.select(_TOKENS).sum().row(0), strict=True)}
    loads, busy = nodes["load"].to_list(), nodes["busy_fraction"].to_list()
    out: dict[str, Any] = {
        "strategy": sim.strategy_name, "seed": sim.seed, "cluster": sim.spec.name, "nodes": len(sim.nodes),
        "sessions": sessions.height, "hops": hops.height, **totals,
        "hit_rate": totals["cached_tokens"] / totals["prompt_tokens"] if totals["prompt_tokens"] else 0.0,
    }
    for name, values in (("ttft", hops["ttft_s"]), ("hop_latency", hops["hop_latency_s"]),
                         ("session_e2e", sessions["session_e2e_s"])):
        for q, value in zip(_QS, _percentiles(values.to_numpy(), _QS), strict=True):
            out[f"{name}_p{q}_s"] = value
    out.update({
        "max_mean_load": max(loads, default=0.0),
        "busy_fraction_mean": sum(busy) / len(busy) if busy else 0.0,
        "busy_fraction_max": max(busy, default=0.0),
        "evicted_blocks": int(nodes["evicted_blocks"].sum()),
        "cost_usd": cost,
        "cost_per_session_usd": cost / sessions.height if sessions.height else 0.0,
        "makespan_s": makespan,
        "wall_s": sim.wall_s,
    })
    assert tuple(out) == SUMMARY_KEYS, "summary keys drifted from SUMMARY_KEYS"
    return out

