"""A node's KV prefix cache, after vLLM's automatic prefix caching (v1 ``BlockPool``).

Rules (DESIGN §6):

* Only full blocks are cached; a block is named by its chained hash, so equal hash ⇒ equal
  prefix. A request's hit is the **longest leading run** of its blocks found in the cache.
* A block is *referenced* while a running request (or a pin) holds it, and never evicted then.
* Unreferenced blocks stay cached in a free queue, least recently released first. A request
  releases its blocks deepest first, so its tail is evicted before its head.
* Eviction is lazy: a free block is reclaimed only when a new block needs its space.
* With a TTL, a free block unused for longer than ``ttl_s`` is gone at the next lookup.
* ``capacity_blocks=None`` never evicts.

>>> c = PrefixCache(capacity_blocks=2)
>>> c.acquire((1, 2), now=0.0).stored
(1, 2)
>>> c.release((1, 2), now=1.0)
>>> c.acquire((7,), now=2.0).evicted  # the deepest block of the last release goes first
(2,)
>>> c.match((1, 2))
1
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Container, Sequence
from dataclasses import dataclass

__all__ = [
    "CacheHit",
    "HostCache",
    "PrefixCache",
    "leading_run",
]


def leading_run(blocks: Sequence[int], held: Container[int]) -> int:
    """How many of ``blocks``, from the first, are in ``held`` (a prefix hit, in blocks).

    >>> leading_run((1, 2, 3, 4), {1, 2, 4})
    2
    """
    n = 0
    for b in blocks:
        if b not in held:
            break
        n += 1
    return n


@dataclass(frozen=True, slots=True)
class CacheHit:
    """What :meth:`PrefixCache.acquire` did: the leading run that hit, the blocks the request now
    holds (a prefix of what it asked for: the rest did not fit), and the blocks evicted for it."""

    hit_blocks: int
    stored: tuple[int, ...]
    evicted: tuple[int, ...]


class PrefixCache:
    """Block hash → reference count, with an LRU free queue of the unreferenced blocks."""

    __slots__ = ("_expired", "_last_use", "_refs", "capacity_blocks", "evictions", "free", "peak_blocks", "ttl_s")

    def __init__(self, capacity_blocks: int | None, ttl_s: float | None = None) -> None:
        assert capacity_blocks is None or capacity_blocks >= 0, "capacity must be ≥ 0 blocks"
        self.capacity_blocks = capacity_blocks
        self.ttl_s = ttl_s
        self._refs: dict[int, int] = {}
        self._last_use: dict[int, float] = {}
        self.free: OrderedDict[int, None] = OrderedDict()  # unreferenced, LRU first
        self.evictions = 0
        self._expired = 0
        self.peak_blocks = 0

    def __len__(self) -> int:
        return len(self._refs)

    def __contains__(self, block: int) -> bool:
        return block in self._refs

    @property
    def referenced_blocks(self) -> int:
        return len(self._refs) - len(self.free)

    def usage(self) -> float:
        """Fraction of the capacity held by running requests (0 when unlimited)."""
        return 0.0 if not self.capacity_blocks else self.referenced_blocks / self.capacity_blocks

    def match(self, blocks: Sequence[int], now: float | None = None) -> int:
        """Length of the leading run of ``blocks`` in the cache; changes nothing (a read-only
        probe for routing; ``now`` counts TTL-expired blocks as missing)."""
        if self.ttl_s is None or now is None:
            return leading_run(blocks, self._refs)
        ttl, free, last, n = self.ttl_s, self.free, self._last_use, 0
        for b in blocks:
            if b not in self._refs or (b in free and now - last[b] > ttl):
                break
            n += 1
        return n

    def acquire(self, blocks: Sequence[int], now: float) -> CacheHit:
        """Hold ``blocks`` for a request: hits gain a reference, misses are stored, evicting free
        blocks LRU-first when full. Storing stops at the first block that cannot fit (nothing
        free to evict), since a later block is useless without its prefix."""
        if self.ttl_s is not None:
            self._expire(blocks, now)
        hit = self.match(blocks)
        refs, free, cap = self._refs, self.free, self.capacity_blocks
        evicted: list[int] = []
        n = len(blocks)
        for i, b in enumerate(blocks):
            r = refs.get(b)
            if r is not None:
                if r == 0:
                    del free[b]
                refs[b] = r + 1
                continue
            if cap is not None and len(refs) >= cap:
                if not free:
                    n = i
                    break
                victim = free.popitem(last=False)[0]
                del refs[victim]
                evicted.append(victim)
            refs[b] = 1
        stored = tuple(blocks[:n])
        if self.ttl_s is not None:
            last = self._last_use
            for b in evicted:
                last.pop(b, None)
            for b in stored:
                last[b] = now
        self.evictions += len(evicted)
        if len(refs) > self.peak_blocks:
            self.peak_blocks = len(refs)
        return CacheHit(hit, stored, tuple(evicted))

    def release(self, blocks: Sequence[int], now: float) -> None:
        """Drop one reference on each of ``blocks`` (what :meth:`acquire` stored); blocks left
        unreferenced join the free queue deepest first."""
        refs, free = self._refs, self.free
        for b in reversed(blocks):
            r = refs[b] - 1
            assert r >= 0, f"block {b} released more often than acquired"
            refs[b] = r
            if not r:
                free[b] = None
        if self.ttl_s is not None:
            last = self._last_use
            for b in blocks:
                last[b] = now

    def _expire(self, blocks: Sequence[int], now: float) -> None:
        if self.ttl_s is None:
            return
        for b in blocks:
            if b in self.free and now - self._last_use[b] > self.ttl_s:
                del self.free[b], self._refs[b], self._last_use[b]
                self._expired += 1

    @property
    def expired(self) -> int:
        """Blocks dropped because their TTL ran out (not counted in :attr:`evictions`)."""
        return self._expired


class HostCache:
    """The optional host-memory tier of a node: an LRU of blocks the GPU cache evicted.

    >>> h = HostCache(capacity_blocks=1)
    >>> h.put((1, 2)); h.match((1,)), h.match((2,))
    (0, 1)
    """

    __slots__ = ("_blocks", "capacity_blocks")

    def __init__(self, capacity_blocks: int) -> None:
        self.capacity_blocks = capacity_blocks
        self._blocks: OrderedDict[int, None] = OrderedDict()

    def __len__(self) -> int:
        return len(self._blocks)

    def put(self, blocks: Sequence[int]) -> None:
        for b in blocks:
            self._blocks[b] = None
            self._blocks.move_to_end(b)
        while len(self._blocks) > self.capacity_blocks:
            self._blocks.popitem(last=False)

    def match(self, blocks: Sequence[int]) -> int:
        """Length of the leading run of ``blocks`` held here."""
        return leading_run(blocks, self._blocks)

    def touch(self, blocks: Sequence[int]) -> None:
        for b in blocks:
            if b in self._blocks:
                self._blocks.move_to_end(b)
