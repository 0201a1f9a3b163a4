"""Every strategy: the registry-wide contract, then each published rule on a StaticView."""

from __future__ import annotations

from collections import Counter

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgraph.errors import UsageError
from agentgraph.model import Hop, Trace
from schedulers.cluster import ClusterSpec
from schedulers.metrics import SUMMARY_KEYS
from schedulers.simulator import replay
from schedulers.strategies import BASELINES, STRATEGIES, make_strategy
from schedulers.strategies.base import Placement, Request, StaticView, Strategy


def request(blocks: tuple[int, ...], session: str = "s", prompt: int | None = None, output: int = 1,
            prev: int | None = None, parent: int | None = None) -> Request:
    tokens = 64 * len(blocks) if prompt is None else prompt
    return Request(Hop("h", session, "main", 0, "m", 0.0, 1.0, tokens, output, 0, blocks), blocks, prev, parent)


def make(name: str, n: int, seed: int = 0) -> Strategy:
    return make_strategy(name, n, np.random.default_rng(seed))


# --------------------------------------------------------------------------- the whole registry

views = st.builds(
    lambda n, data: StaticView(
        cached=[set(data.draw(st.lists(st.integers(0, 6), max_size=6))) for _ in range(n)],
        waiting_=data.draw(st.lists(st.integers(0, 200), min_size=n, max_size=n)),
        running_=data.draw(st.lists(st.integers(0, 200), min_size=n, max_size=n)),
        active_blocks_=data.draw(st.lists(st.integers(0, 5000), min_size=n, max_size=n)),
        kv_usage_=data.draw(st.lists(st.floats(0, 1), min_size=n, max_size=n)),
        backlog_s_=data.draw(st.lists(st.floats(0, 100), min_size=n, max_size=n)),
        decode_left_=data.draw(st.lists(st.lists(st.floats(0, 500), max_size=4), min_size=n, max_size=n)),
        step_s_per_request=data.draw(st.floats(0, 1e-2)),
        racks=[i // 2 for i in range(n)]),
    st.integers(1, 9), st.data())


@pytest.mark.parametrize("name", sorted(STRATEGIES))
@settings(max_examples=60, deadline=None)
@given(view=views, blocks=st.lists(st.integers(0, 6), max_size=6, unique=True), prev=st.integers(0, 8))
def test_every_strategy_returns_a_valid_placement(name: str, view: StaticView, blocks: list[int], prev: int) -> None:
    """Any view, any request: a node in range; a fetch names another node and a positive count."""
    s = make(name, view.n_nodes)
    for session in ("a", "b", "a"):
        p = s.place(request(tuple(blocks), session, prev=prev % view.n_nodes), view)
        assert isinstance(p, Placement) and 0 <= p.node < view.n_nodes
        assert p.fetch_from is None or (p.fetch_from != p.node and p.fetch_blocks > 0)


@pytest.mark.parametrize("name", sorted(STRATEGIES))
def test_every_strategy_replays_the_bundled_sessions(name: str, replays_trace: Trace) -> None:
    """A full replay: every hop placed and finished, token classes partition each prompt,
    cached tokens never exceed what the trace could share."""
    r = replay(replays_trace, ClusterSpec(nodes=4, kv_capacity_tokens=50_000), name, seed=1, rate=1.0)
    h = r.hops
    assert h.height == 72 and h["end_s"].min() > 0  # type: ignore[operator]
    parts = h["cached_tokens"] + h["transferred_tokens"] + h["reprefill_tokens"] + h["cold_tokens"]
    assert (parts == h["prompt_tokens"]).all()
    assert (h["first_token_s"] >= h["prefill_start_s"]).all() and (h["end_s"] >= h["first_token_s"]).all()
    assert r.nodes["hops"].sum() == 72
    assert tuple(r.summary) == SUMMARY_KEYS and r.summary["strategy"] == name
    assert set(r.sessions["session_id"]) == set(replays_trace.sessions())


def test_unknown_strategy_lists_the_valid_names() -> None:
    """A typo fails with every valid name, sorted."""
    with pytest.raises(UsageError) as err:
        make("round-robin", 2)
    assert str(err.value) == ("unknown strategy 'round-robin'; choose from: " + ", ".join(sorted(STRATEGIES)))


def test_registry_has_the_nine_baselines_and_ours() -> None:
    """Nine published baselines, then topology_aware."""
    assert BASELINES == ("round_robin", "random", "least_loaded", "longest_prefix", "session_affinity",
                         "dynamo_kv", "llmd_weighted", "sglang_cache_aware", "mooncake_ttft")
    assert list(STRATEGIES)[-1] == "topology_aware"


# --------------------------------------------------------------------------- each rule

def test_round_robin_cycles() -> None:
    """0, 1, 2, 0, ... whatever the cache holds."""
    s, v = make("round_robin", 3), StaticView(cached=[{1}, set(), set()])
    assert [s.place(request((1,)), v).node for _ in range(5)] == [0, 1, 2, 0, 1]


def test_random_is_seeded() -> None:
    """The same seed gives the same picks; every node gets some."""
    v = StaticView(cached=[set()] * 4)
    a = [make("random", 4, seed=5).place(request(()), v).node for _ in range(1)]
    picks = [make("random", 4, seed=5), make("random", 4, seed=5)]
    seq = [[p.place(request(()), v).node for _ in range(200)] for p in picks]
    assert seq[0] == seq[1] and set(seq[0]) == {0, 1, 2, 3} and a[0] == seq[0][0]


def test_least_loaded_counts_queued_and_running() -> None:
    """Fewest requests in flight wins; lowest index on ties."""
    s = make("least_loaded", 3)
    assert s.place(request(()), StaticView([set()] * 3, waiting_=[1, 0, 0], running_=[0, 2, 1])).node == 0
    assert s.place(request(()), StaticView([set()] * 3, waiting_=[2, 0, 0], running_=[0, 2, 1])).node == 2


def test_longest_prefix_has_no_load_term_and_falls_into_the_trap() -> None:
    """All nodes hold the shared block 0: the tie goes to node 0 even when it is swamped."""
    s = make("longest_prefix", 3)
    v = StaticView([{0}, {0}, {0}], waiting_=[500, 0, 0], backlog_s_=[60.0, 0, 0])
    assert s.place(request((0, 7)), v).node == 0
    assert s.place(request((0, 7)), StaticView([{0}, {0, 7}, {0}])).node == 1


def test_session_affinity_is_sticky_and_spreads_sessions() -> None:
    """A session always lands on the same node, whatever the load; 4,000 sessions spread over 8
    nodes within ±40 % of an even share (64 ring points per node)."""
    s = make("session_affinity", 8)
    busy = StaticView([set()] * 8, waiting_=[100] * 8)
    first = s.place(request((), "sess-42"), StaticView([set()] * 8)).node
    assert all(s.place(request((), "sess-42"), busy).node == first for _ in range(5))
    counts = Counter(s.place(request((), f"s{i}"), busy).node for i in range(4000))
    assert len(counts) == 8 and all(300 <= c <= 700 for c in counts.values())
    # consistent: adding a ninth node moves only the sessions the new node takes
    s9 = make("session_affinity", 9)
    moved = [i for i in range(4000)
             if s9.place(request((), f"s{i}"), busy).node not in (s.place(request((), f"s{i}"), busy).node, 8)]
    assert moved == []


def test_dynamo_kv_minimizes_prefill_blocks_plus_decode_blocks() -> None:
    """cost = 1 × (request blocks − overlap) + (active blocks + request blocks); argmin; ties to
    the smaller cache tree."""
    s = make("dynamo_kv", 3)
    blocks = tuple(range(10))
    v = StaticView([set(range(2)), set(range(5)), set(range(8))], active_blocks_=[2, 5, 7])
    # costs: 8 + 12 = 20, 5 + 15 = 20, 2 + 17 = 19
    assert s.place(request(blocks), v).node == 2
    v2 = StaticView([set(range(2)), set(range(5)) | {99}, set(range(8))], active_blocks_=[2, 5, 8])
    # costs 20, 20, 20: node 0 has the smallest tree (2 blocks)
    assert s.place(request(blocks), v2).node == 0


def test_llmd_weighted_scores_prefix_3_queue_2_kv_2() -> None:
    """Node 0 has the whole prefix (3.0) but the longest queue (0) and a full cache (0): 3.0.
    Node 1: no prefix, shortest queue (2.0), empty cache (2.0): 4.0 wins."""
    s = make("llmd_weighted", 2)
    v = StaticView([{1, 2}, set()], waiting_=[9, 1], kv_usage_=[1.0, 0.0])
    assert s.place(request((1, 2)), v).node == 1
    v.kv_usage_ = [0.4, 0.0]  # node 0: 3 + 0 + 1.2 = 4.2 > 4.0
    assert s.place(request((1, 2)), v).node == 0


def test_sglang_cache_aware_rule() -> None:
    """Balanced: best match if it covers > 30 %, else the smallest tree. Imbalanced (max − min
    > 64 and max > 1.5 × min): the least loaded, whatever the match."""
    s = make("sglang_cache_aware", 3)
    idle = StaticView([set()] * 3)
    assert s.place(request((1, 2, 3, 4)), idle).node == 0  # all trees empty: smallest is node 0
    assert s.place(request((9,)), idle).node == 1  # no match: smallest tree
    assert s.place(request((1, 2, 5, 6)), idle).node == 0  # 2 of 4 blocks matched on node 0: 50 %
    assert s.place(request((1, 7, 8, 9)), idle).node == 2  # 25 %: not enough, smallest tree (node 2)
    swamped = StaticView([set()] * 3, waiting_=[100, 30, 10], running_=[0, 0, 0])
    assert s.place(request((1, 2, 3, 4)), swamped).node == 2  # 100 − 10 > 64 and 100 > 15


def test_mooncake_ttft_fetches_a_remote_prefix_to_an_idle_node() -> None:
    """Node 0 holds the 8-block prefix but has 5 s of queue; node 1 is idle: fetching the prefix
    (8 × 64 × 10 µs = 5 ms) then prefilling 128 tokens beats waiting."""
    s = make("mooncake_ttft", 2)
    v = StaticView([set(range(8)), set()], backlog_s_=[5.0, 0.0])
    assert s.place(request(tuple(range(10))), v) == Placement(1, fetch_from=0, fetch_blocks=8)
    v.backlog_s_ = [0.0, 0.0]
    assert s.place(request(tuple(range(10))), v) == Placement(0)


def test_topology_aware_predicts_completion() -> None:
    """The finish time decides: a warm idle node wins; a swamped warm node loses to an idle one
    that fetches the prefix when fetching is cheaper than recomputing."""
    s = make("topology_aware", 3)
    blocks = tuple(range(20))
    v = StaticView([set(range(20)), set(), set()])
    assert s.place(request(blocks), v) == Placement(0)
    v.backlog_s_ = [3.0, 0.0, 0.0]
    assert s.place(request(blocks), v) == Placement(1, fetch_from=0, fetch_blocks=20)
    v.transfer_s_per_token = 1.0  # fetching is slower than recomputing: recompute on node 1
    assert s.place(request(blocks), v) == Placement(1)


def test_topology_aware_keeps_agents_where_they_were_and_sub_agents_near_their_parent() -> None:
    """Within the slack the previous node wins over a slightly faster one; a sub-agent's first
    hop prefers its parent's node, then its parent's rack."""
    s = make("topology_aware", 4)
    v = StaticView([set()] * 4, backlog_s_=[0.0, 0.03, 0.0, 0.0], racks=[0, 0, 1, 1])
    assert s.place(request((1,), prev=1), v).node == 1  # 0.03 s later than node 0, still preferred
    v.backlog_s_ = [0.0, 5.0, 0.0, 0.0]
    assert s.place(request((1,), prev=1), v).node == 0  # far too busy now
    v.backlog_s_ = [0.0, 0.0, 0.0, 0.0]
    assert s.place(request((1,), parent=3), v).node == 3
    v.backlog_s_ = [0.0, 0.0, 0.0, 1.0]
    assert s.place(request((1,), parent=3), v).node == 2  # the parent's rack


def test_topology_aware_charges_the_slowdown_it_inflicts_on_other_decodes() -> None:
    """Both nodes would finish this hop's 100 decode steps alike (1.164 s), but on node 0 it slows
    two running decodes by 1 ms a step for min(100, 50) + min(100, 500) = 150 steps: 0.15 s more,
    beyond the slack, so even the agent's previous node loses. A decode with 5 steps left costs
    5 ms: within the slack, so the previous node keeps it."""
    s = make("topology_aware", 2)
    v = StaticView([set(), set()], step_s_per_request=1e-3, decode_left_=[[50.0, 500.0], []])
    assert s.place(request((1,), output=101, prev=0), v).node == 1
    v.decode_left_ = [[5.0], []]
    assert s.place(request((1,), output=101, prev=0), v).node == 0


def test_topology_aware_prices_the_tokens_a_node_would_miss() -> None:
    """Node 0 holds the 20-block prefix (1,280 tokens); node 1 could fetch it in 12.8 ms. Each
    token node 1 lacks costs LOCALITY_S_PER_TOKEN (10 µs): 25.6 ms in all, so node 0 wins while
    its backlog is 20 ms and loses at 30 ms."""
    s = make("topology_aware", 2)
    blocks = tuple(range(20))
    v = StaticView([set(blocks), set()], backlog_s_=[0.02, 0.0])
    assert s.place(request(blocks), v) == Placement(0)
    v.backlog_s_ = [0.03, 0.0]
    assert s.place(request(blocks), v) == Placement(1, fetch_from=0, fetch_blocks=20)


def test_strategies_see_a_consistent_view_during_a_replay(replays_trace: Trace) -> None:
    """Cache-aware strategies reach a higher hit rate than cache-blind ones on agent sessions."""
    spec = ClusterSpec(nodes=4)
    hit = {n: replay(replays_trace, spec, n, seed=0, rate=0.5).summary["hit_rate"]
           for n in ("round_robin", "session_affinity", "dynamo_kv", "topology_aware")}
    assert hit["session_affinity"] > hit["round_robin"] and hit["dynamo_kv"] > hit["round_robin"]
    assert hit["topology_aware"] > hit["round_robin"]
