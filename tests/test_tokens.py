"""Prefix block hashing: chained, seeded, exact under coarsening, incremental == fresh."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from agentgraph.tokens import (
    PrefixHasher,
    block_hashes,
    coarsen,
    estimate_tokens,
    scale_counts,
    unit_key,
)

KEYS = [unit_key(bytes([i])) for i in range(6)]
units_st = st.lists(st.tuples(st.sampled_from(KEYS), st.integers(1, 300)), max_size=12)


def test_golden_hashes_are_fixed_across_machines() -> None:
    """The seed is fixed, so these values never change (a change breaks every saved trace)."""
    units = [(unit_key(b"system"), 100), (unit_key(b"hello"), 40)]
    # 64 + 64 + a partial block of 12 tokens
    assert block_hashes(units, 64) == [8935223001118476779, 321490867349189369, 6837755013111591091]


def test_shared_prefix_gives_equal_leading_blocks() -> None:
    """Two requests share exactly the blocks that lie inside their common units."""
    sys_, a, b = (unit_key(x) for x in (b"sys", b"a", b"b"))
    h1 = block_hashes([(sys_, 130), (a, 70)], 64)
    h2 = block_hashes([(sys_, 130), (b, 70)], 64)
    assert h1[:2] == h2[:2]  # blocks ending at 64 and 128 lie inside the shared 130 tokens
    assert h1[2] != h2[2]


def test_partial_block_differs_from_full_block() -> None:
    """A prompt ending mid-block hashes its last block by its exact length."""
    k = unit_key(b"x")
    assert block_hashes([(k, 100)], 64)[1] != block_hashes([(k, 128)], 64)[1]


def test_estimate_is_bytes_over_four() -> None:
    """One token per 4 bytes, rounded up, never 0."""
    assert [estimate_tokens(b""), estimate_tokens(b"abcd"), estimate_tokens(b"abcde")] == [1, 1, 2]


@given(units_st, st.sampled_from([1, 2, 4, 8]), st.sampled_from([16, 64]))
def test_coarsening_equals_hashing_at_the_coarse_size(units, factor, block) -> None:  # type: ignore[no-untyped-def]
    """coarsen(hash at B, k) == hash at k·B, for any units."""
    total = sum(n for _, n in units)
    fine = block_hashes(units, block)
    assert coarsen(fine, factor, total, block) == block_hashes(units, block * factor)


@given(st.lists(units_st, min_size=1, max_size=5), st.sampled_from([16, 64]))
def test_incremental_hasher_equals_fresh_hashing(requests, block) -> None:  # type: ignore[no-untyped-def]
    """Reusing the previous request's work never changes a hash; shared tokens are exact."""
    hasher = PrefixHasher(block)
    previous: list[tuple[bytes, int]] = []
    for units in requests:
        got, shared = hasher.hash(units)
        assert list(got) == block_hashes(units, block)
        common = 0
        while common < min(len(units), len(previous)) and units[common] == previous[common]:
            common += 1
        assert shared == sum(n for _, n in units[:common])
        previous = units


@given(st.lists(st.integers(0, 10_000), min_size=1, max_size=20), st.integers(0, 100_000))
def test_scale_counts_sums_exactly(estimates, extra) -> None:  # type: ignore[no-untyped-def]
    """Scaled counts sum to the total exactly and each is at least 1."""
    total = len(estimates) + extra
    counts = scale_counts(estimates, total)
    assert sum(counts) == total
    assert min(counts) >= 1


@given(st.lists(st.tuples(st.integers(0, 2**64 - 1), st.integers(1, 5000), st.integers(1, 40)),
                max_size=8), st.sampled_from([1, 16, 64]))
def test_vectorized_block_mixing_equals_scalar(runs, size) -> None:  # type: ignore[no-untyped-def]
    """The numpy path (many blocks) gives exactly the scalar SplitMix64 values."""
    from agentgraph.tokens import _mix, _mix_runs

    assert _mix_runs(runs, size) == [_mix(b, o + i * size) for b, o, n in runs for i in range(n)]
