"""Token estimation and prefix block hashing.

A request is serialized, in API order, into *units* (one per tool definition, system block and
message). A unit has a content key (16 bytes of BLAKE2b over its canonical JSON) and a token
count. The tokens of a request are the concatenation of its units' tokens.

The hash of the block that ends at token position ``p`` is the hash of the *whole prefix*
``[0, p)``: it chains over the complete units before the unit that contains ``p`` and then names
that unit and the offset of ``p`` inside it. Two consequences hold by construction:

* equal hash ⇔ equal prefix (up to 63-bit collisions), whatever the block size;
* the hash list at block size ``k·B`` is every ``k``-th entry of the list at block size ``B``
  (plus the partial last block), so coarsening is exact: :func:`coarsen`.

The last block of a prompt is partial when the prompt length is not a multiple of the block size;
its hash names the exact prefix length, so it never equals a full block's hash.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence
from typing import NewType

import orjson

BlockHash = NewType("BlockHash", int)

DEFAULT_BLOCK_SIZE = 64
HASH_SEED = b"agentgraph/blocks/v1"
"""Fixed key of every block hash, so traces hash identically on every machine."""

_MASK63 = (1 << 63) - 1
_ROOT = hashlib.blake2b(b"root", digest_size=16, key=HASH_SEED).digest()

Unit = tuple[bytes, int]
"""A content unit: (16-byte content key, token count)."""


def canonical_json(value: object) -> bytes:
    """Serialize ``value`` the one way agentgraph hashes it: sorted keys, no whitespace.

    >>> canonical_json({"b": 1, "a": [True, None]})
    b'{"a":[true,null],"b":1}'
    """
    return orjson.dumps(value, option=orjson.OPT_SORT_KEYS)


def estimate_tokens(data: bytes) -> int:
    """Deterministic token estimate of serialized content: one token per 4 bytes, at least 1.

    Claude's tokenizer averages 3.5-4 bytes per token on English prose, code and JSON; the
    estimate only has to be deterministic, because importers scale it to the API-reported
    prompt total when the source has one.

    >>> estimate_tokens(b"x" * 9)
    3
    """
    return max(1, (len(data) + 3) // 4)


def unit_key(data: bytes) -> bytes:
    """The 16-byte content key of a unit's canonical bytes."""
    return hashlib.blake2b(data, digest_size=16, key=HASH_SEED).digest()


def _prefix_hash(chain: bytes, key: bytes, offset: int) -> BlockHash:
    digest = hashlib.blake2b(
        chain + key + offset.to_bytes(8, "little"), digest_size=8, key=HASH_SEED
    ).digest()
    return BlockHash(int.from_bytes(digest, "little") & _MASK63)


def _chain(chain: bytes, key: bytes, tokens: int) -> bytes:
    return hashlib.blake2b(
        chain + key + tokens.to_bytes(8, "little"), digest_size=16, key=HASH_SEED
    ).digest()


class PrefixHasher:
    """Hashes the blocks of a sequence of requests, reusing the work for shared unit prefixes.

    Consecutive hops of one agent share almost all of their units, so the hasher keeps the
    previous request's units, chain states and block hashes and only hashes the new tail:
    importing a session costs time linear in its size, not in the sum of its prompt lengths.
    """

    def __init__(self, block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        if block_size < 1:
            raise ValueError(f"block size must be >= 1, got {block_size}")
        self.block_size = block_size
        self._units: list[Unit] = []
        self._chains: list[bytes] = [_ROOT]  # chain state before unit i
        self._ends: list[int] = [0]  # token position before unit i
        self._blocks: list[BlockHash] = []  # full blocks of the previous request
        self._block_unit: list[int] = []  # index of the unit each full block ends in

    def hash(self, units: Sequence[Unit]) -> tuple[list[BlockHash], int]:
        """Block hashes of a request and the number of tokens it shares with the previous one."""
        common = 0
        limit = min(len(units), len(self._units))
        while common < limit and units[common] == self._units[common]:
            common += 1
        del self._units[common:], self._chains[common + 1 :], self._ends[common + 1 :]
        keep = 0
        while keep < len(self._block_unit) and self._block_unit[keep] < common:
            keep += 1
        del self._blocks[keep:], self._block_unit[keep:]
        shared_tokens = self._ends[common]
        size = self.block_size
        for index in range(common, len(units)):
            key, tokens = units[index]
            start, chain = self._ends[-1], self._chains[-1]
            boundary = (start // size + 1) * size
            while boundary <= start + tokens:
                self._blocks.append(_prefix_hash(chain, key, boundary - start))
                self._block_unit.append(index)
                boundary += size
            self._units.append(units[index])
            self._chains.append(_chain(chain, key, tokens))
            self._ends.append(start + tokens)
        blocks = list(self._blocks)
        total = self._ends[-1]
        if total % size and self._units:
            key, tokens = self._units[-1]
            blocks.append(_prefix_hash(self._chains[-2], key, tokens))
        return blocks, shared_tokens


def block_hashes(units: Sequence[Unit], block_size: int = DEFAULT_BLOCK_SIZE) -> list[BlockHash]:
    """Block hashes of one request's units (partial last block included).

    >>> units = [(unit_key(b"system"), 100), (unit_key(b"hello"), 40)]
    >>> len(block_hashes(units, 64))
    3
    >>> block_hashes(units, 128) == [block_hashes(units, 64)[1], block_hashes(units, 64)[2]]
    True
    """
    return PrefixHasher(block_size).hash(units)[0]


def coarsen(hash_ids: Sequence[int], factor: int, prompt_tokens: int, block_size: int) -> list[int]:
    """Hash ids at block size ``block_size * factor`` from ids at ``block_size``.

    Exact for hashes made by this module: the result equals hashing at the coarse size directly.
    """
    if factor < 1:
        raise ValueError(f"coarsening factor must be >= 1, got {factor}")
    full_fine = prompt_tokens // block_size
    coarse = [hash_ids[k * factor - 1] for k in range(1, full_fine // factor + 1)]
    if prompt_tokens % (block_size * factor):
        coarse.append(hash_ids[-1])
    return coarse


def scale_counts(estimates: Sequence[int], total: int) -> list[int]:
    """Integer counts proportional to ``estimates`` that sum exactly to ``total`` (each ≥ 1).

    Largest-remainder rounding, ties broken by position, so the result is deterministic.

    >>> scale_counts([10, 10, 20], 8)
    [2, 2, 4]
    """
    n = len(estimates)
    if n == 0:
        return []
    if total < n:
        raise ValueError(f"cannot give {n} units at least one token each from {total}")
    spare = total - n
    weight = sum(estimates)
    shares = [spare * e / weight for e in estimates] if weight else [spare / n] * n
    counts = [int(s) for s in shares]
    order = sorted(range(n), key=lambda i: (counts[i] - shares[i], i))
    for i in order[: spare - sum(counts)]:
        counts[i] += 1
    return [c + 1 for c in counts]


def shared_prefix_blocks(a: Iterable[int], b: Iterable[int]) -> int:
    """How many leading block hashes two hash lists share."""
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n
