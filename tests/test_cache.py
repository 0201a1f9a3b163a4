"""The per-node prefix cache: vLLM-like hits, exact eviction order, TTL, and its invariants."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st

from schedulers.cache import CacheHit, HostCache, PrefixCache


def test_a_hit_is_the_longest_leading_run() -> None:
    """Blocks cached after a miss do not count: only the leading run is reusable."""
    c = PrefixCache(capacity_blocks=10)
    c.acquire((1, 2, 3), now=0.0)
    assert c.match((1, 2, 3, 4)) == 3
    assert c.match((1, 9, 3)) == 1
    assert c.match((9, 1, 2)) == 0
    assert c.acquire((1, 2, 7), now=1.0) == CacheHit(hit_blocks=2, stored=(1, 2, 7), evicted=())


def test_referenced_blocks_are_never_evicted() -> None:
    """While a request holds its blocks a full cache stores nothing new; the rest of the new
    request is computed but not kept (and nothing after its first unstored block)."""
    c = PrefixCache(capacity_blocks=3)
    c.acquire((1, 2, 3), now=0.0)
    assert c.acquire((4, 5), now=1.0) == CacheHit(0, (), ())
    assert len(c) == 3 and c.referenced_blocks == 3


def test_eviction_order_is_lru_and_deepest_block_first() -> None:
    """Released requests queue their blocks tail first; eviction pops the queue's head, lazily."""
    c = PrefixCache(capacity_blocks=6)
    c.acquire((1, 2, 3), now=0.0)  # request A
    c.acquire((10, 11, 12), now=1.0)  # request B
    c.release((1, 2, 3), now=2.0)  # A ends first: free queue 3, 2, 1
    c.release((10, 11, 12), now=3.0)  # then B: 3, 2, 1, 12, 11, 10
    assert list(c.free) == [3, 2, 1, 12, 11, 10]
    assert c.evictions == 0  # nothing is evicted until space is needed
    assert c.acquire((20,), now=4.0).evicted == (3,)
    assert c.acquire((21, 22), now=5.0).evicted == (2, 1)
    assert c.match((1,)) == 0 and c.match((10, 11)) == 2
    assert c.acquire((30, 31, 32, 33), now=6.0).evicted == (12, 11, 10)
    # 20, 21, 22, 30, 31, 32 held; 33 did not fit
    assert c.evictions == 6 and len(c) == 6 and 33 not in c


def test_a_hit_takes_the_block_out_of_the_free_queue() -> None:
    """Reusing a free block refreshes it: it is referenced again, then re-queued at the tail."""
    c = PrefixCache(capacity_blocks=4)
    c.acquire((1, 2), now=0.0)
    c.release((1, 2), now=1.0)  # free: 2, 1
    c.acquire((5, 6), now=2.0)
    c.release((5, 6), now=3.0)  # free: 2, 1, 6, 5
    c.acquire((1,), now=4.0)  # 1 hits
    assert list(c.free) == [2, 6, 5]
    c.release((1,), now=5.0)
    assert list(c.free) == [2, 6, 5, 1]
    assert c.acquire((7, 8), now=6.0).evicted == (2, 6)


def test_shared_blocks_are_counted_per_holder() -> None:
    """A block held by two requests stays referenced until both released it."""
    c = PrefixCache(capacity_blocks=2)
    c.acquire((1,), now=0.0)
    c.acquire((1,), now=0.0)
    c.release((1,), now=1.0)
    assert c.referenced_blocks == 1 and not c.free
    c.release((1,), now=2.0)
    assert list(c.free) == [1]


def test_ttl_drops_idle_blocks_at_the_next_lookup() -> None:
    """With a TTL, a free block idle for longer is gone; a referenced one never expires."""
    c = PrefixCache(capacity_blocks=None, ttl_s=300.0)
    c.acquire((1, 2), now=0.0)
    c.release((1, 2), now=10.0)
    assert c.match((1, 2), now=310.0) == 2  # exactly 300 s idle: still there
    assert c.match((1, 2), now=310.5) == 0
    assert c.acquire((1, 2), now=310.5).hit_blocks == 0
    assert c.expired == 2 and c.evictions == 0
    c.acquire((1, 2), now=1000.0)  # referenced again (twice now), never expires while held
    assert c.match((1, 2), now=10_000.0) == 2


def test_unlimited_cache_never_evicts() -> None:
    """capacity None: everything stays."""
    c = PrefixCache(capacity_blocks=None)
    for i in range(100):
        c.release(c.acquire((i, i + 1000), now=float(i)).stored, now=float(i))
    assert len(c) == 200 and c.evictions == 0 and c.usage() == 0.0


def test_host_tier_is_an_lru_of_evicted_blocks() -> None:
    """The host tier keeps what the GPU evicted, most recent last."""
    h = HostCache(capacity_blocks=3)
    h.put((1, 2, 3))
    h.touch((1,))
    h.put((4,))
    assert (h.match((1,)), h.match((2,)), h.match((3, 4))) == (1, 0, 2)


ops = st.lists(st.tuples(st.booleans(), st.lists(st.integers(0, 30), min_size=1, max_size=8, unique=True)),
               max_size=60)


@settings(max_examples=300, deadline=None)
@given(capacity=st.integers(0, 12), ttl=st.sampled_from([None, 2.0]), script=ops)
def test_capacity_is_never_exceeded_and_blocks_are_conserved(
        capacity: int, ttl: float | None, script: list[tuple[bool, list[int]]]) -> None:
    """Whatever the requests do: size ≤ capacity, every block is free xor referenced, references
    equal outstanding holds, evicted blocks were free, and hits are a leading run."""
    c = PrefixCache(capacity_blocks=capacity, ttl_s=ttl)
    held: list[tuple[int, ...]] = []
    for step, (release, blocks) in enumerate(script):
        now = float(step)
        if release and held:
            c.release(held.pop(0), now)
        else:
            free_before = set(c.free)
            leading = c.match(blocks, now)
            hit = c.acquire(blocks, now)
            assert hit.hit_blocks == leading
            assert set(hit.evicted) <= free_before
            assert hit.stored == tuple(blocks[: len(hit.stored)])
            held.append(hit.stored)
        assert len(c) <= capacity
        assert set(c.free) <= {b for b in range(31) if b in c}
        holds: dict[int, int] = {}
        for h in held:
            for b in h:
                holds[b] = holds.get(b, 0) + 1
        assert c.referenced_blocks == len(holds)
        assert all(b in c and b not in c.free for b in holds)
        assert len(c) == len(c.free) + len(holds)
