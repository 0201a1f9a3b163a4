"""The replay against published numbers and the strategy claims (issue #5, points 5 and 7)."""

from __future__ import annotations

from dataclasses import replace

import pytest

from agentgraph.model import Trace
from schedulers.cluster import DEFAULT_CLUSTER
from schedulers.simulator import replay
from schedulers.strategies import BASELINES
from schedulers.workloads import replicate, with_shared_prefix


def test_one_unlimited_node_reuses_what_the_mooncake_paper_reports(mooncake_synthetic: Trace) -> None:
    """Mooncake FAST'25 synthetic trace on one node that never evicts: 65.1 % of prompt tokens
    are a cached leading run (the paper's cache ratio for this trace: 66 %; our import: 65.04 %
    with full blocks only, 65.12 % if partial tail blocks were cached too)."""
    spec = replace(DEFAULT_CLUSTER, nodes=1, kv_capacity_tokens="unlimited")
    s = replay(mooncake_synthetic, spec, "round_robin").summary
    assert s["hit_rate"] == pytest.approx(0.651, abs=0.002)
    assert s["cached_tokens"] == 39_802_880
    assert s["prompt_tokens"] == 61_194_628
    assert s["transferred_tokens"] == 0


@pytest.fixture(scope="module")
def shared_block_0(mooncake_synthetic: Trace) -> dict[str, dict[str, float]]:
    trace = with_shared_prefix(mooncake_synthetic, blocks=1)
    return {n: replay(trace, DEFAULT_CLUSTER, n).summary
            for n in ("longest_prefix", "session_affinity", "topology_aware")}


def test_longest_prefix_concentrates_load_when_every_request_shares_block_0(
        shared_block_0: dict[str, dict[str, float]]) -> None:
    """The known trap: 8 nodes, every request shares block 0; prefix-only routing sends the
    load to one node."""
    assert shared_block_0["longest_prefix"]["max_mean_load"] >= 4


def test_topology_aware_balances_the_shared_prefix_trace(shared_block_0: dict[str, dict[str, float]]) -> None:
    """Same trace: max/mean load ≤ 1.3, hit rate within 10 % of session affinity (or above)."""
    ours, sticky = shared_block_0["topology_aware"], shared_block_0["session_affinity"]
    assert ours["max_mean_load"] <= 1.3
    assert ours["hit_rate"] >= 0.9 * sticky["hit_rate"]


def test_topology_aware_against_every_baseline_on_agent_sessions(replays_trace: Trace) -> None:
    """The recorded sessions (40 copies, shared prompts kept) arriving at 1 session/s on the
    default cluster (about half busy), seeds 0-4: topology_aware has a lower session p99 than
    every baseline on every seed while keeping at least 95 % of the best baseline's hit rate.
    (Seeds 5-14, not tuned on: lower on 9, equal on 1; see docs/strategies.md.)"""
    trace = replicate(replays_trace, 40)
    for seed in range(5):
        base = {n: replay(trace, DEFAULT_CLUSTER, n, rate=1.0, seed=seed).summary for n in BASELINES}
        ours = replay(trace, DEFAULT_CLUSTER, "topology_aware", rate=1.0, seed=seed).summary
        assert 0.35 <= ours["busy_fraction_mean"] <= 0.65  # moderate load
        assert ours["session_e2e_p99_s"] < min(s["session_e2e_p99_s"] for s in base.values()), seed
        assert ours["hit_rate"] >= 0.95 * max(s["hit_rate"] for s in base.values()), seed
