"""The replay simulator: sessions' call graphs on a modeled cluster under one strategy.

One run, event by event (see ``docs/strategies.md`` for the picture):

1. A session arrives (trace timestamps × ``time_scale``, or a Poisson ``rate``); its root hops
   are released at their offsets inside the session.
2. A hop is *ready* when every parent finished, plus the edge's wait (tool time, user time).
   The CPU work of building its request (``assemble_us``) runs on the orchestrator's CPU pool
   (``cpu_cores``, FIFO), then the hop is *dispatched*: the strategy picks a node, and may fetch
   a warm prefix from another node over the topology first.
3. Each node has a serial prefill lane (FIFO). At prefill start the node's cache is probed
   (leading run), the request's blocks are acquired, and only the tokens no tier holds are
   computed. The first token is out when the prefill ends.
4. Decode is batched per node: every running request gains one token per step, and a step
   takes ``decode_step_s(batch, kv_tokens)``, so completions follow from one virtual clock.
5. When a hop finishes its blocks are released (or pinned until the agent's next hop, with
   ``pin_during_tools``), then parsing and validating its tool calls (``parse_us + validate_us``)
   runs on the CPU pool, and its children count down.

The sequence edge into a hop that also waits for sub-agents (``join`` edges) carries the
sub-agents' run time in the trace; the replay uses the simulated sub-agents instead, so that
edge's wait is taken as 0.
"""

from __future__ import annotations

import contextlib
import gc
import heapq
import time
from collections import deque
from collections.abc import Callable, Iterator, Sequence

import numpy as np

from agentgraph.errors import UsageError
from agentgraph.model import EdgeKind, Hop, Trace
from schedulers.cache import HostCache, PrefixCache
from schedulers.cluster import DEFAULT_CLUSTER, ClusterSpec, Topology
from schedulers.engine import URGENT, Engine
from schedulers.metrics import ReplayResult, build_result
from schedulers.strategies import STRATEGIES, check_strategy, make_strategy
from schedulers.strategies.base import Placement, Request
from schedulers.timing import RooflineTiming, Timing

__all__ = [
    "HopRun",
    "Simulator",
    "compare",
    "replay",
]


STEP_TOLERANCE = 1e-6
"""Decode steps of rounding a completion may be early by (a nanosecond at millisecond steps)."""


class HopRun:
    """The mutable state of one hop during a replay (the metrics read it afterwards)."""

    __slots__ = (
        "blocks",
        "cached_tokens",
        "children",
        "cold_tokens",
        "cpu_s",
        "dispatch_s",
        "done_s",
        "end_s",
        "est_s",
        "fetch_blocks",
        "fetch_from",
        "first_token_s",
        "hop",
        "index",
        "node",
        "parent_node",
        "parents_left",
        "pin",
        "prefill_s",
        "prefill_start_s",
        "prev",
        "ready_at",
        "ready_s",
        "reprefill_tokens",
        "session_index",
        "spawned_by",
        "steps",
        "transfer_s",
        "transferred_tokens",
    )

    def __init__(self, hop: Hop, index: int, blocks: tuple[int, ...]) -> None:
        self.hop, self.index, self.blocks = hop, index, blocks
        self.children: list[tuple[HopRun, float]] = []
        self.parents_left = 0
        self.prev: HopRun | None = None  # graph predecessor whose node the strategy is told
        self.spawned_by: HopRun | None = None
        self.session_index = 0
        self.ready_at = self.ready_s = self.dispatch_s = self.prefill_start_s = 0.0
        self.first_token_s = self.end_s = self.done_s = self.est_s = self.prefill_s = self.transfer_s = self.cpu_s = 0.0
        self.node = -1
        self.parent_node: int | None = None
        self.fetch_from: int | None = None
        self.fetch_blocks = 0
        self.cached_tokens = self.transferred_tokens = self.reprefill_tokens = self.cold_tokens = 0
        self.steps = max(hop.output_tokens - 1, 0)  # the prefill emits the first token
        self.pin: tuple[int, tuple[int, ...]] | None = None  # (node, blocks) held for this hop


class _Node:
    __slots__ = (
        "active_blocks",
        "backlog_est",
        "batch",
        "batch_kv",
        "busy_s",
        "busy_since",
        "cache",
        "decode_wait",
        "hops",
        "host",
        "index",
        "prefill_end",
        "prefilling",
        "queue",
        "step_s",
        "v",
        "v_at",
        "version",
        "waiting",
    )

    def __init__(self, index: int, cache: PrefixCache, host: HostCache | None) -> None:
        self.index, self.cache, self.host = index, cache, host
        self.queue: deque[HopRun] = deque()
        self.prefilling: HopRun | None = None
        self.prefill_end = 0.0
        self.backlog_est = 0.0  # predicted prefill seconds of the queued requests
        self.waiting = 0  # dispatched here, prefill not started (queued or in transfer)
        self.active_blocks = 0
        self.batch: list[tuple[float, int, HopRun]] = []  # (virtual finish step, seq, run)
        self.batch_kv = 0
        self.decode_wait: deque[HopRun] = deque()
        self.v = 0.0  # decode steps every batch member has made since the start
        self.v_at = 0.0
        self.step_s = 0.0
        self.version = 0
        self.hops = 0
        self.busy_s = 0.0
        self.busy_since: float | None = None


class _View:
    """The read-only :class:`~schedulers.strategies.base.ClusterView` over a simulator."""

    __slots__ = ("_sim",)

    def __init__(self, sim: Simulator) -> None:
        self._sim = sim

    @property
    def n_nodes(self) -> int:
        return len(self._sim.nodes)

    @property
    def now(self) -> float:
        return self._sim.engine.now

    @property
    def block_size(self) -> int:
        return self._sim.block_size

    def match(self, node: int, blocks: Sequence[int]) -> int:
        return self._sim.nodes[node].cache.match(blocks, self._sim.engine.now)

    def cached_blocks(self, node: int) -> int:
        return len(self._sim.nodes[node].cache)

    def waiting(self, node: int) -> int:
        return self._sim.nodes[node].waiting

    def running(self, node: int) -> int:
        n = self._sim.nodes[node]
        return (n.prefilling is not None) + len(n.batch) + len(n.decode_wait)

    def active_blocks(self, node: int) -> int:
        return self._sim.nodes[node].active_blocks

    def kv_usage(self, node: int) -> float:
        return self._sim.nodes[node].cache.usage()

    def backlog_s(self, node: int) -> float:
        n = self._sim.nodes[node]
        return max(0.0, n.prefill_end - self._sim.engine.now) + max(0.0, n.backlog_est)  # float drift

    def decode_step_s(self, node: int, extra_batch: int = 0, extra_kv_tokens: int = 0) -> float:
        n = self._sim.nodes[node]
        return self._sim.timing.decode_step_s(len(n.batch) + extra_batch, n.batch_kv + extra_kv_tokens)

    def decode_left(self, node: int) -> list[float]:
        n, now = self._sim.nodes[node], self._sim.engine.now
        v = n.v + ((now - n.v_at) / n.step_s if n.batch and n.step_s > 0 else 0.0)
        return [max(0.0, f - v) for f, _, _ in n.batch] + [float(r.steps) for r in n.decode_wait]

    def prefill_s(self, new_tokens: int, cached_tokens: int) -> float:
        return self._sim.timing.prefill_s(new_tokens, cached_tokens)

    def transfer_s(self, src: int, dst: int, tokens: int) -> float:
        return self._sim.topology.transfer_s(src, dst, tokens)

    def rack(self, node: int) -> int:
        return self._sim.topology.racks[node]


class Simulator:
    """One replay: build it, :meth:`run` it once, read :meth:`result`."""

    def __init__(self, trace: Trace, spec: ClusterSpec = DEFAULT_CLUSTER, strategy: str = "topology_aware", *,
                 seed: int = 0, rate: float | None = None, time_scale: float = 1.0,
                 timing: Timing | None = None) -> None:
        if rate is not None and rate <= 0:
            raise UsageError(f"rate must be > 0 sessions/s, not {rate}")
        if time_scale <= 0:
            raise UsageError(f"time_scale must be > 0, not {time_scale}")
        self.trace, self.spec, self.strategy_name = trace, spec, strategy
        self.seed, self.rate, self.time_scale = seed, rate, time_scale
        self.rng = np.random.default_rng(seed)
        self.strategy = make_strategy(strategy, spec.nodes, np.random.default_rng([seed, 1]))
        self.timing: Timing = timing if timing is not None else RooflineTiming(spec)
        self.topology = Topology(spec)
        self.block_size = trace.block_size
        cap = spec.kv_capacity_tokens_per_node()
        cap_blocks = None if cap is None else cap // self.block_size
        host_blocks = None if spec.host_tier is None else spec.host_tier.capacity_tokens // self.block_size
        self.nodes = [
            _Node(i, PrefixCache(cap_blocks, spec.ttl_s), None if host_blocks is None else HostCache(host_blocks))
            for i in range(spec.nodes)
        ]
        self.engine = Engine()
        self.view = _View(self)
        self.runs = self._build_runs(trace)
        self.session_ids = trace.sessions()
        self.arrivals: list[float] = []
        self.computed: set[int] = set()  # every block hash prefilled somewhere in this replay
        self.cpu_free = spec.cpu_cores
        self.cpu_queue: deque[tuple[float, Callable[[HopRun], None], HopRun]] = deque()
        self.wall_s = 0.0

    # ------------------------------------------------------------------ setup

    def _build_runs(self, trace: Trace) -> list[HopRun]:
        b = trace.block_size
        runs = [HopRun(h, i, h.hash_ids[: min(len(h.hash_ids), h.prompt_tokens // b)])
                for i, h in enumerate(trace.hop_list)]
        by_id = {r.hop.hop_id: r for r in runs}
        joined = {e.dst for e in trace.edges if e.kind is EdgeKind.JOIN}
        for e in trace.edges:
            src, dst = by_id[e.src], by_id[e.dst]
            wait = 0.0 if e.kind is EdgeKind.SEQUENCE and e.dst in joined else e.wait_s
            src.children.append((dst, wait))
            dst.parents_left += 1
            if e.kind is EdgeKind.SEQUENCE or (e.kind is EdgeKind.SPAWN and dst.prev is None):
                dst.prev = src
            if e.kind is EdgeKind.SPAWN:
                dst.spawned_by = src
        return runs

    def _arrivals(self, starts: dict[str, float]) -> list[float]:
        if self.rate is None:
            t0 = min(starts.values(), default=0.0)
            return [(starts[s] - t0) * self.time_scale for s in self.session_ids]
        gaps = self.rng.exponential(1.0 / self.rate, size=len(self.session_ids))
        gaps[:1] = 0.0
        return [float(t) for t in np.cumsum(gaps)]

    # ------------------------------------------------------------------ run

    def run(self) -> ReplayResult:
        """Replay every session to completion and return the result frames."""
        assert not self.arrivals, "a Simulator runs once"
        with _no_gc():
            return self._run(time.perf_counter())

    def _run(self, started: float) -> ReplayResult:
        session_start: dict[str, float] = {}
        for h in self.trace.hop_list:
            session_start[h.session_id] = min(session_start.get(h.session_id, h.start_s), h.start_s)
        self.arrivals = self._arrivals(session_start)
        index = {s: i for i, s in enumerate(self.session_ids)}
        roots: list[HopRun] = []
        for r in self.runs:
            r.session_index = index[r.hop.session_id]
            if r.parents_left == 0:
                offset = (r.hop.start_s - session_start[r.hop.session_id]) * self.time_scale
                r.ready_at = self.arrivals[r.session_index] + offset
                roots.append(r)
        roots.sort(key=lambda r: (r.ready_at, r.index))
        if roots:
            self.engine.at(roots[0].ready_at, self._arrive, roots, 0)
        self.engine.run()
        unfinished = [r.hop.hop_id for r in self.runs if r.parents_left > 0]
        assert not unfinished, f"hops never released (cycle in the call graph?): {unfinished[:5]}"
        self.wall_s = time.perf_counter() - started
        return build_result(self)

    def _arrive(self, roots: list[HopRun], i: int) -> None:
        """Release root hop ``i`` and schedule the next one: the heap holds one pending arrival,
        not all of them, so its operations stay O(log of what is in flight)."""
        if i + 1 < len(roots):
            self.engine.at(roots[i + 1].ready_at, self._arrive, roots, i + 1)
        self._ready(roots[i])

    def _ready(self, r: HopRun) -> None:
        r.ready_s = self.engine.now
        self._cpu(r.hop.assemble_us, self._dispatch, r)

    def _dispatch(self, r: HopRun) -> None:
        now = self.engine.now
        r.dispatch_s = now
        r.cpu_s += now - r.ready_s
        prev = None if r.prev is None else r.prev.node
        parent = None if r.spawned_by is None else r.spawned_by.node
        p = self.strategy.place(Request(r.hop, r.blocks, prev, parent), self.view)
        assert isinstance(p, Placement) and 0 <= p.node < len(self.nodes), \
            f"strategy {self.strategy_name} returned {p!r} for {len(self.nodes)} nodes"
        node = self.nodes[p.node]
        r.node, r.parent_node = p.node, parent
        node.hops += 1
        node.waiting += 1
        node.active_blocks += len(r.blocks)
        if r.pin is not None and r.pin[0] != p.node:  # the agent moved: its warm prefix is no use
            self._unpin(r)
        delay = 0.0
        if p.fetch_from is not None and p.fetch_from != p.node and p.fetch_blocks > 0:
            have = self.nodes[p.fetch_from].cache.match(r.blocks[: p.fetch_blocks], now)
            local = node.cache.match(r.blocks, now)
            if have > local:  # only the blocks the target lacks move
                r.fetch_from, r.fetch_blocks = p.fetch_from, have
                delay = self.topology.transfer_s(p.fetch_from, p.node, (have - local) * self.block_size)
        r.transfer_s = delay
        if delay > 0:
            self.engine.schedule(delay, self._enqueue, node, r)
        else:
            self._enqueue(node, r)

    def _enqueue(self, node: _Node, r: HopRun) -> None:
        known = max(node.cache.match(r.blocks, self.engine.now), r.fetch_blocks) * self.block_size
        r.est_s = self.timing.prefill_s(r.hop.prompt_tokens - known, known)
        node.backlog_est += r.est_s
        node.queue.append(r)
        if node.prefilling is None:
            self._start_prefill(node)

    def _start_prefill(self, node: _Node) -> None:
        now, b = self.engine.now, self.block_size
        r = node.queue.popleft()
        node.waiting -= 1
        node.backlog_est -= r.est_s
        r.prefill_start_s = now
        local = node.cache.match(r.blocks, now)
        reuse = max(local, min(r.fetch_blocks, len(r.blocks))) if r.fetch_from is not None else local
        host_blocks = 0 if node.host is None else node.host.match(r.blocks[reuse:])
        hit = node.cache.acquire(r.blocks, now)
        if node.host is not None:
            node.host.put(hit.evicted)
            node.host.touch(r.blocks[reuse: reuse + host_blocks])
        r.pin = (node.index, hit.stored) if r.pin is None else self._repin(r, hit.stored)
        r.cached_tokens = local * b
        r.transferred_tokens = (reuse - local + host_blocks) * b
        self._classify(r, reuse + host_blocks)
        done = (reuse + host_blocks) * b
        host_s = 0.0 if not host_blocks else self.topology.transfer_s(("host", node.index), node.index, host_blocks * b)
        r.prefill_s = host_s + self.timing.prefill_s(r.hop.prompt_tokens - done, done)
        node.prefilling = r
        node.prefill_end = now + r.prefill_s
        self._busy(node)
        self.engine.schedule(r.prefill_s, self._end_prefill, node, r, priority=URGENT)

    def _classify(self, r: HopRun, reused_blocks: int) -> None:
        """Split the computed tokens into re-prefill (computed before in this replay) and cold.

        Chained hashes never repeat inside one prompt, so the growth of the ``computed`` set
        counts the new blocks (a C-level update instead of a Python loop per block)."""
        b, prompt, computed = self.block_size, r.hop.prompt_tokens, self.computed
        ids = r.hop.hash_ids
        full = min(len(ids), prompt // b)  # blocks with b tokens; at most one partial block follows
        reprefill = cold = 0
        if reused_blocks < full:
            before = len(computed)
            computed.update(ids[reused_blocks:full])
            new = len(computed) - before
            cold, reprefill = new * b, (full - reused_blocks - new) * b
        for i in range(max(full, reused_blocks), len(ids)):
            tokens = max(0, min(b, prompt - i * b))
            if ids[i] in computed:
                reprefill += tokens
            else:
                cold += tokens
                computed.add(ids[i])
        cold += max(0, prompt - len(ids) * b)  # tokens no block hash covers
        r.reprefill_tokens, r.cold_tokens = reprefill, cold

    def _end_prefill(self, node: _Node, r: HopRun) -> None:
        r.first_token_s = self.engine.now
        node.prefilling = None
        if node.queue:
            self._start_prefill(node)
        if r.steps == 0:
            self._finish(node, r)
        elif len(node.batch) + 1 > self.spec.max_batch:
            node.decode_wait.append(r)
        else:
            self._join_batch(node, r)
            self._reschedule(node)
        self._busy(node)

    # ------------------------------------------------------------------ decode

    def _advance(self, node: _Node) -> None:
        now = self.engine.now
        if not node.batch:
            node.v = 0.0  # restart the virtual clock whenever the batch empties: it stays small
        elif node.step_s > 0:
            node.v += (now - node.v_at) / node.step_s
        node.v_at = now

    def _join_batch(self, node: _Node, r: HopRun) -> None:
        self._advance(node)
        heapq.heappush(node.batch, (node.v + r.steps, r.index, r))
        node.batch_kv += r.hop.prompt_tokens

    def _reschedule(self, node: _Node) -> None:
        node.version += 1
        if not node.batch:
            return
        node.step_s = self.timing.decode_step_s(len(node.batch), node.batch_kv)
        delay = max(0.0, (node.batch[0][0] - node.v) * node.step_s)
        self.engine.schedule(delay, self._decode_done, node, node.version, priority=URGENT)

    def _decode_done(self, node: _Node, version: int) -> None:
        if version != node.version:
            return  # the batch changed since this completion was predicted
        self._advance(node)
        # the batch is unchanged since this completion was predicted, so its head is done now,
        # even when the clock's resolution (late in a long replay) could not show the progress
        node.v = max(node.v, node.batch[0][0])
        done: list[HopRun] = []
        while node.batch and node.batch[0][0] <= node.v + STEP_TOLERANCE:
            _, _, r = heapq.heappop(node.batch)
            node.batch_kv -= r.hop.prompt_tokens
            done.append(r)
        while node.decode_wait and len(node.batch) < self.spec.max_batch:
            self._join_batch(node, node.decode_wait.popleft())
        self._reschedule(node)
        for r in done:
            self._finish(node, r)
        self._busy(node)

    # ------------------------------------------------------------------ completion

    def _finish(self, node: _Node, r: HopRun) -> None:
        r.end_s = self.engine.now
        node.active_blocks -= len(r.blocks)
        assert r.pin is not None
        held = r.pin[1]
        r.pin = None
        nxt = self._next_of_agent(r)
        if self.spec.pin_during_tools and nxt is not None:
            nxt.pin = (node.index, held)  # the agent's prefix stays referenced while its tools run
        else:
            node.cache.release(held, self.engine.now)
        self._cpu((r.hop.parse_us or 0.0) + (r.hop.validate_us or 0.0), self._release_children, r)

    def _next_of_agent(self, r: HopRun) -> HopRun | None:
        for child, _ in r.children:
            if child.prev is r and child.spawned_by is not r:
                return child
        return None

    def _unpin(self, r: HopRun) -> None:
        assert r.pin is not None
        node, held = r.pin
        self.nodes[node].cache.release(held, self.engine.now)
        r.pin = None

    def _repin(self, r: HopRun, stored: tuple[int, ...]) -> tuple[int, tuple[int, ...]]:
        """The hop now holds its own blocks: drop the pin its predecessor left (after acquiring,
        so the pinned prefix could not be evicted in between)."""
        self._unpin(r)
        return (r.node, stored)

    def _release_children(self, r: HopRun) -> None:
        now = self.engine.now
        r.cpu_s += now - r.end_s
        r.done_s = now
        for child, wait in r.children:
            child.ready_at = max(child.ready_at, now + wait)
            child.parents_left -= 1
            if child.parents_left == 0:
                self.engine.at(child.ready_at, self._ready, child)

    # ------------------------------------------------------------------ CPU pool and bookkeeping

    def _cpu(self, us: float | None, then: Callable[[HopRun], None], r: HopRun) -> None:
        """Run ``us`` µs of CPU work on the pool (FIFO), then ``then(r)``; no work runs inline."""
        if not us:
            then(r)
        elif self.cpu_free:
            self.cpu_free -= 1
            self.engine.schedule(us * 1e-6, self._cpu_done, then, r)
        else:
            self.cpu_queue.append((us, then, r))

    def _cpu_done(self, then: Callable[[HopRun], None], r: HopRun) -> None:
        if self.cpu_queue:
            us, nxt, nr = self.cpu_queue.popleft()
            self.engine.schedule(us * 1e-6, self._cpu_done, nxt, nr)
        else:
            self.cpu_free += 1
        then(r)

    def _busy(self, node: _Node) -> None:
        active = node.prefilling is not None or bool(node.batch) or bool(node.decode_wait)
        now = self.engine.now
        if active and node.busy_since is None:
            node.busy_since = now
        elif not active and node.busy_since is not None:
            node.busy_s += now - node.busy_since
            node.busy_since = None


def replay(trace: Trace, spec: ClusterSpec = DEFAULT_CLUSTER, strategy: str = "topology_aware", *,
           seed: int = 0, rate: float | None = None, time_scale: float = 1.0,
           timing: Timing | None = None) -> ReplayResult:
    """Replay ``trace`` on ``spec`` under ``strategy``; same inputs and seed → same frames.

    >>> from agentgraph.model import Hop, Trace
    >>> hops = tuple(Hop(f"h{i}", f"s{i}", "main", 0, "m", 0.0, 1.0, 128, 2, 0, (1, 2)) for i in range(2))
    >>> r = replay(Trace(hops), strategy="round_robin")
    >>> r.summary["hit_rate"], r.summary["cold_tokens"], r.summary["reprefill_tokens"]
    (0.0, 128, 128)
    """
    with _no_gc():
        return Simulator(trace, spec, strategy, seed=seed, rate=rate, time_scale=time_scale, timing=timing).run()


def compare(trace: Trace, spec: ClusterSpec = DEFAULT_CLUSTER, strategies: Sequence[str] | None = None, *,
            seed: int = 0, rate: float | None = None, time_scale: float = 1.0,
            each: Callable[[str, ReplayResult], None] | None = None) -> dict[str, ReplayResult]:
    """:func:`replay` under each strategy (default: all, registry order) on the same arrivals;
    ``each(name, result)`` is called as each replay finishes (a progress bar, say).

    >>> from agentgraph.model import Hop, Trace
    >>> hops = tuple(Hop(f"h{i}", f"s{i}", "main", 0, "m", 0.0, 1.0, 128, 2, 0, (1, 2)) for i in range(2))
    >>> results = compare(Trace(hops), strategies=["round_robin", "longest_prefix"])
    >>> {n: r.summary["hit_rate"] for n, r in results.items()}  # the second hop finds the block or not
    {'round_robin': 0.0, 'longest_prefix': 0.5}
    """
    names = list(STRATEGIES) if strategies is None else [check_strategy(n) for n in strategies]
    results = {}
    for name in names:
        results[name] = replay(trace, spec, name, seed=seed, rate=rate, time_scale=time_scale)
        if each is not None:
            each(name, results[name])
    return results


@contextlib.contextmanager
def _no_gc() -> Iterator[None]:
    """A replay allocates many long-lived objects and no cycles worth collecting: the cyclic
    collector's passes over them only cost time (superlinearly in the trace size)."""
    was_enabled = gc.isenabled()
    gc.disable()
    try:
        yield
    finally:
        if was_enabled:
            gc.enable()
