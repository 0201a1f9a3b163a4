"""The replay simulator on small hand-checked traces, with FixedTiming so every time is exact."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import polars as pl
import pytest
from polars.testing import assert_frame_equal

from agentgraph.model import Edge, EdgeKind, Hop, Trace
from schedulers.cluster import ClusterSpec
from schedulers.metrics import CACHE_READ_MULTIPLIER, CACHE_WRITE_MULTIPLIER, HOPS_SCHEMA, NODES_SCHEMA, SESSIONS_SCHEMA
from schedulers.simulator import replay
from schedulers.strategies import STRATEGIES
from schedulers.strategies.base import ClusterView, Placement, Request
from schedulers.timing import FixedTiming

MS = FixedTiming(prefill_per_token_s=0.001, decode_step=0.01)  # 1 ms per new token, 10 ms per step
ONE = ClusterSpec(nodes=1, kv_capacity_tokens="unlimited")


def hop(hop_id: str, session: str, prompt: int, blocks: tuple[int, ...], output: int = 1, *, agent: str = "main",
        index: int = 0, start: float = 0.0, cpu: tuple[float | None, float | None, float | None] = (None, None, None),
        ) -> Hop:
    return Hop(hop_id, session, agent, index, "m", start, start + 1.0, prompt, output, 0, blocks,
               parse_us=cpu[0], validate_us=cpu[1], assemble_us=cpu[2])


def test_golden_two_hop_session() -> None:
    """Hop 0 prefills 256 tokens (0.256 s) and decodes 2 more tokens (0.02 s); after its 2 s tool
    the next hop finds its 4 blocks cached and prefills only the 64 new tokens."""
    trace = Trace((hop("a", "s", 256, (1, 2, 3, 4), output=3), hop("b", "s", 320, (1, 2, 3, 4, 5), index=1)),
                  (Edge("a", "b", EdgeKind.SEQUENCE, wait_s=2.0),), block_size=64)
    r = replay(trace, ONE, "round_robin", timing=MS)
    cols = ["hop_id", "node", "cached_tokens", "cold_tokens", "ready_s", "prefill_start_s", "first_token_s", "end_s",
            "ttft_s", "hop_latency_s"]
    expected = pl.DataFrame(
        [("a", 0, 0, 256, 0.0, 0.0, 0.256, 0.276, 0.256, 0.276),
         ("b", 0, 256, 64, 2.276, 2.276, 2.34, 2.34, 0.064, 0.064)],
        schema={c: r.hops.schema[c] for c in cols}, orient="row")
    assert_frame_equal(r.hops.select(cols), expected, abs_tol=1e-9)
    s = r.summary
    assert (s["prompt_tokens"], s["cached_tokens"], s["cold_tokens"], s["reprefill_tokens"]) == (576, 256, 320, 0)
    assert s["hit_rate"] == pytest.approx(256 / 576)
    assert s["session_e2e_p50_s"] == pytest.approx(2.34)
    assert r.sessions["session_e2e_s"].to_list() == pytest.approx([2.34])


def test_prefill_is_fifo_per_node_and_decode_is_batched() -> None:
    """Two requests at t=0 on one node: the second waits for the first's prefill; both decode
    in one batch (a step serves every member)."""
    trace = Trace((hop("a", "s1", 100, (1,), output=51), hop("b", "s2", 200, (2,), output=51)), block_size=64)
    r = replay(trace, ONE, "round_robin", timing=MS)
    rows = r.hops.select("queue_s", "prefill_start_s", "first_token_s", "end_s").rows()
    assert rows[0] == pytest.approx((0.0, 0.0, 0.1, 0.6))
    assert rows[1] == pytest.approx((0.1, 0.1, 0.3, 0.8))  # decoding alongside a, not after it


def test_partial_last_block_is_never_cached() -> None:
    """Only full blocks are cached: 100 tokens at block 64 keep one block; the 36-token tail is
    recomputed by an identical request and counts as re-prefill."""
    trace = Trace((hop("a", "s1", 100, (1, 2)), hop("b", "s2", 100, (1, 2), start=5.0)), block_size=64)
    r = replay(trace, ONE, "round_robin", timing=MS)
    assert r.hops.select("cached_tokens", "reprefill_tokens", "cold_tokens").rows() == [(0, 0, 100), (64, 36, 0)]


def test_reprefill_counts_what_another_node_computed() -> None:
    """Round robin on two nodes: the second session computes the same prefix again elsewhere."""
    trace = Trace((hop("a", "s1", 128, (1, 2)), hop("b", "s2", 128, (1, 2), start=1.0),
                   hop("c", "s3", 128, (1, 2), start=2.0)), block_size=64)
    r = replay(trace, replace(ONE, nodes=2), "round_robin", timing=MS)
    assert r.hops.select("node", "cached_tokens", "reprefill_tokens", "cold_tokens").rows() == [
        (0, 0, 0, 128), (1, 0, 128, 0), (0, 128, 0, 0)]


def test_sub_agents_join_and_the_sequence_wait_is_replaced_by_them() -> None:
    """The parent's next hop waits for the simulated sub-agent (join + its wait), not for the
    sequence edge's recorded wait, which contained the sub-agent's recorded run."""
    hops = (hop("p0", "s", 100, (1,)), hop("a0", "s", 100, (9,), agent="sub"), hop("p1", "s", 100, (1,), index=1))
    edges = (Edge("p0", "a0", EdgeKind.SPAWN, wait_s=0.5), Edge("p0", "p1", EdgeKind.SEQUENCE, wait_s=30.0),
             Edge("a0", "p1", EdgeKind.JOIN, wait_s=0.25))
    r = replay(Trace(hops, edges, block_size=64), ONE, "round_robin", timing=MS)
    ready = dict(r.hops.select("hop_id", "ready_s").rows())
    assert ready["a0"] == pytest.approx(0.1 + 0.5)
    assert ready["p1"] == pytest.approx(0.6 + 0.1 + 0.25)


def test_cpu_work_queues_on_a_finite_pool() -> None:
    """Building each request costs 1 s of CPU: with one core the second waits for the first."""
    hops = (hop("a", "s1", 64, (1,), cpu=(None, None, 1e6)), hop("b", "s2", 64, (2,), cpu=(None, None, 1e6)),
            hop("c", "s3", 64, (3,), cpu=(5e5, 5e5, None)))
    r = replay(Trace(hops, block_size=64), replace(ONE, cpu_cores=1), "round_robin", timing=MS)
    dispatch = dict(r.hops.select("hop_id", "dispatch_s").rows())
    assert (dispatch["a"], dispatch["b"], dispatch["c"]) == pytest.approx((1.0, 2.0, 0.0))
    cpu = dict(r.hops.select("hop_id", "cpu_s").rows())
    # c ends at 0.064; its parse + validate (1 s) queues behind a's and b's assembly: 2 s -> 3 s
    assert cpu == pytest.approx({"a": 1.0, "b": 2.0, "c": 3.0 - 0.064})


def test_pinning_keeps_a_session_prefix_through_its_tool_call() -> None:
    """A 4-block cache: while session A's tool runs, session B needs all 4 blocks. Without
    pinning A's prefix is evicted; with pinning it survives and B keeps only what fits."""
    hops = (hop("a0", "A", 128, (1, 2)), hop("b0", "B", 256, (7, 8, 9, 10), start=1.0),
            hop("a1", "A", 192, (1, 2, 3), index=1))
    trace = Trace(hops, (Edge("a0", "a1", EdgeKind.SEQUENCE, wait_s=5.0),), block_size=64)
    spec = replace(ONE, kv_capacity_tokens=256)
    plain = replay(trace, spec, "round_robin", timing=MS).hops
    pinned = replay(trace, replace(spec, pin_during_tools=True), "round_robin", timing=MS).hops
    assert plain.filter(pl.col("hop_id") == "a1")["cached_tokens"].item() == 0
    assert pinned.filter(pl.col("hop_id") == "a1")["cached_tokens"].item() == 128
    assert replay(trace, spec, "round_robin", timing=MS).nodes["evicted_blocks"].item() == 2 + 3


class FetchFromZero:
    """Test strategy: first hop on node 0; later hops on node 1, fetching node 0's prefix."""

    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        self.calls = 0

    def place(self, req: Request, view: ClusterView) -> Placement:
        self.calls += 1
        return Placement(0) if self.calls == 1 else Placement(1, fetch_from=0, fetch_blocks=len(req.blocks))


def test_fetched_prefix_counts_as_transferred_and_delays_the_prefill(monkeypatch: pytest.MonkeyPatch) -> None:
    """A fetch moves the warm blocks over the topology before the prefill, which then computes
    only the rest; the fetched tokens are transferred, not cached."""
    monkeypatch.setitem(STRATEGIES, "fetch_test", FetchFromZero)  # type: ignore[arg-type]
    trace = Trace((hop("a", "s", 128, (1, 2)), hop("b", "s", 192, (1, 2, 3), index=1)),
                  (Edge("a", "b", EdgeKind.SEQUENCE, wait_s=1.0),), block_size=64)
    spec = replace(ONE, nodes=2)
    r = replay(trace, spec, "fetch_test", timing=MS)
    b = r.hops.filter(pl.col("hop_id") == "b").row(0, named=True)
    move = 128 * spec.kv_bytes_per_token / 50e9 + 2 * 5e-6
    assert (b["node"], b["cached_tokens"], b["transferred_tokens"], b["cold_tokens"]) == (1, 0, 128, 64)
    assert b["transfer_s"] == pytest.approx(move)
    assert b["first_token_s"] - b["dispatch_s"] == pytest.approx(move + 0.064)


def test_poisson_arrivals_are_seeded_and_time_scale_stretches_the_trace() -> None:
    """--rate draws session arrivals from the seed; --time-scale multiplies trace offsets."""
    trace = Trace(tuple(hop(f"h{i}", f"s{i}", 64, (i,), start=10.0 * i) for i in range(5)), block_size=64)
    by_trace = replay(trace, ONE, "round_robin", timing=MS).sessions["arrival_s"].to_list()
    assert by_trace == [0.0, 10.0, 20.0, 30.0, 40.0]
    half = replay(trace, ONE, "round_robin", timing=MS, time_scale=0.5).sessions["arrival_s"].to_list()
    assert half == [0.0, 5.0, 10.0, 15.0, 20.0]
    a = replay(trace, ONE, "round_robin", timing=MS, rate=2.0, seed=7).sessions["arrival_s"].to_list()
    b = replay(trace, ONE, "round_robin", timing=MS, rate=2.0, seed=7).sessions["arrival_s"].to_list()
    c = replay(trace, ONE, "round_robin", timing=MS, rate=2.0, seed=8).sessions["arrival_s"].to_list()
    assert a == b != c and a[0] == 0.0 and a == sorted(a)


@pytest.mark.parametrize("strategy", sorted(STRATEGIES))
def test_same_inputs_and_seed_give_identical_frames(strategy: str, replays_trace: Trace) -> None:
    """Determinism: two runs, the same frames and summary (wall_s aside)."""
    spec = ClusterSpec(nodes=3, kv_capacity_tokens=20_000)
    a = replay(replays_trace, spec, strategy, seed=3, rate=2.0)
    b = replay(replays_trace, spec, strategy, seed=3, rate=2.0)
    for x, y in ((a.hops, b.hops), (a.sessions, b.sessions), (a.nodes, b.nodes)):
        assert_frame_equal(x, y)
    assert {k: v for k, v in a.summary.items() if k != "wall_s"} == {
        k: v for k, v in b.summary.items() if k != "wall_s"}


def test_bad_rate_is_a_usage_error() -> None:
    """Rates and time scales must be positive."""
    from agentgraph.errors import UsageError

    with pytest.raises(UsageError, match="rate must be > 0"):
        replay(Trace(()), ONE, rate=0.0)
    with pytest.raises(UsageError, match="unknown strategy 'nope'; choose from: dynamo_kv, "):
        replay(Trace(()), ONE, "nope")


def test_host_tier_returns_evicted_blocks_over_pcie() -> None:
    """Blocks the GPU evicted wait in host memory; a later hop reads them back over PCIe 5
    (transferred, not cached) and computes only the rest."""
    from schedulers.cluster import HostTier

    hops = (hop("a0", "A", 128, (1, 2)), hop("b0", "B", 128, (7, 8), start=1.0), hop("a1", "A", 192, (1, 2, 3)))
    trace = Trace(hops, (Edge("a0", "a1", EdgeKind.SEQUENCE, wait_s=5.0),), block_size=64)
    spec = replace(ONE, kv_capacity_tokens=128, host_tier=HostTier(capacity_tokens=1000))
    a1 = replay(trace, spec, "round_robin", timing=MS).hops.filter(pl.col("hop_id") == "a1").row(0, named=True)
    pcie = 128 * spec.kv_bytes_per_token / 128e9 + 2e-6
    assert (a1["cached_tokens"], a1["transferred_tokens"], a1["cold_tokens"]) == (0, 128, 64)
    assert a1["prefill_s"] == pytest.approx(pcie + 0.064)
    without = replay(trace, replace(spec, host_tier=None), "round_robin", timing=MS).hops
    assert without.filter(pl.col("hop_id") == "a1")["reprefill_tokens"].item() == 128


def test_ttl_expires_a_paused_session_prefix() -> None:
    """With a 3 s TTL, a prefix idle through a 5 s tool call is gone; with 10 s it survives."""
    trace = Trace((hop("a0", "A", 128, (1, 2)), hop("a1", "A", 192, (1, 2, 3), index=1)),
                  (Edge("a0", "a1", EdgeKind.SEQUENCE, wait_s=5.0),), block_size=64)
    short = replay(trace, replace(ONE, ttl_s=3.0), "round_robin", timing=MS)
    long = replay(trace, replace(ONE, ttl_s=10.0), "round_robin", timing=MS)
    assert short.hops["cached_tokens"].to_list() == [0, 0]
    assert short.nodes["expired_blocks"].item() == 2
    assert long.hops["cached_tokens"].to_list() == [0, 128]


def test_roofline_decode_slows_as_the_batch_kv_grows() -> None:
    """Decode is bandwidth-bound: the more KV the batch reads, the longer each step and hop."""
    alone = Trace((hop("a", "s1", 16_000, (), output=1001),), block_size=64)
    crowd = Trace(tuple(hop(f"h{i}", f"s{i}", 16_000, (), output=1001) for i in range(8)), block_size=64)
    t1 = replay(alone, ONE, "round_robin").hops
    t8 = replay(crowd, ONE, "round_robin").hops
    decode1 = (t1["end_s"] - t1["first_token_s"]).item()
    assert decode1 == pytest.approx(1000 * (16.06e9 + 16_000 * 131_072) / 3.35e12)
    assert (t8["end_s"] - t8["first_token_s"]).max() > 1.5 * decode1  # type: ignore[operator]


@pytest.mark.parametrize("cluster", sorted((Path(__file__).parent.parent / "fixtures" / "clusters").glob("*.toml")),
                         ids=lambda p: p.stem)
def test_bundled_sessions_replay_on_every_bundled_cluster(cluster: Path, replays_trace: Trace) -> None:
    """Trace timestamps spread over many months: late in the replay a decode step is below the
    clock's resolution, and the replay still ends (it used to livelock there)."""
    from schedulers.cluster import load_cluster

    r = replay(replays_trace, load_cluster(cluster), "topology_aware")
    assert r.hops.height == 72 and r.summary["makespan_s"] > 3e7
    assert (r.sessions["session_e2e_s"] > 0).all()


def test_frames_have_their_schemas_and_sessions_and_nodes_add_up_to_the_hops(replays_trace: Trace) -> None:
    """The columnar result build: declared schemas, and every per-session and per-node figure equals
    the same aggregate recomputed from the hop frame (cost exactly, in trace order)."""
    spec = ClusterSpec(nodes=3, kv_capacity_tokens=20_000)
    r = replay(replays_trace, spec, "least_loaded", seed=1, rate=1.0)
    assert (dict(r.hops.schema), dict(r.sessions.schema), dict(r.nodes.schema)) == (
        HOPS_SCHEMA, SESSIONS_SCHEMA, NODES_SCHEMA)
    for h in r.hops.iter_rows(named=True):  # exact: a scalar division in polars would be off by an ulp
        read = (h["cached_tokens"] + h["transferred_tokens"]) * CACHE_READ_MULTIPLIER
        write = (h["reprefill_tokens"] + h["cold_tokens"]) * CACHE_WRITE_MULTIPLIER
        assert h["cost_usd"] == ((read + write) * spec.price_input_per_mtok
                                 + h["output_tokens"] * spec.price_output_per_mtok) / 1e6
        assert h["queue_s"] == max(0.0, h["prefill_start_s"] - h["dispatch_s"] - h["transfer_s"])
    tokens = ["prompt_tokens", "cached_tokens", "transferred_tokens", "reprefill_tokens", "cold_tokens",
              "output_tokens"]
    by_session = r.hops.group_by("session_id", maintain_order=True)
    expected = by_session.agg(pl.len().cast(pl.Int64).alias("hops"),
                              pl.col("agent_id").n_unique().cast(pl.Int64).alias("agents"),
                              pl.col("node").n_unique().cast(pl.Int64).alias("nodes_used"), pl.col(tokens).sum())
    assert_frame_equal(r.sessions.select(expected.columns), expected)
    costs: dict[str, float] = {}
    for sid, usd in r.hops.select("session_id", "cost_usd").iter_rows():
        costs[sid] = costs.get(sid, 0.0) + usd
    assert r.sessions["cost_usd"].to_list() == list(costs.values())
    assert r.sessions["session_id"].to_list() == replays_trace.sessions()
    assert (r.sessions["end_s"] >= by_session.agg(pl.col("end_s").max())["end_s"]).all()
    per_node = r.hops.group_by("node").agg(pl.len().alias("hops"), pl.col("prompt_tokens", "cached_tokens").sum())
    got = r.nodes.select("node", "hops", "prompt_tokens", "cached_tokens")
    assert_frame_equal(got, per_node.sort("node"), check_dtypes=False)
    assert r.summary["cost_usd"] == sum(r.hops["cost_usd"].to_list())


def test_an_empty_trace_gives_empty_frames_with_their_schemas() -> None:
    r = replay(Trace(()), ONE, "round_robin")
    assert (r.hops.height, r.sessions.height, r.nodes.height) == (0, 0, 1)
    assert (dict(r.hops.schema), dict(r.sessions.schema), dict(r.nodes.schema)) == (
        HOPS_SCHEMA, SESSIONS_SCHEMA, NODES_SCHEMA)
    assert r.summary["hops"] == 0 and r.summary["session_e2e_p99_s"] is None
