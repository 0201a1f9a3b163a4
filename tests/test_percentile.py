"""The summary's percentiles are nearest-rank, as docs/metrics.md defines them."""

from __future__ import annotations

import math

import pytest
from hypothesis import given
from hypothesis import strategies as st

from schedulers import percentile


def _nearest_rank(values: list[float], q: float) -> float:
    """docs/metrics.md: p_q = v_k with k = max(1, ⌈q / 100 × N⌉) over the sorted values."""
    ordered = sorted(values)
    return ordered[max(1, math.ceil(q / 100 * len(ordered))) - 1]


@given(st.lists(st.floats(allow_nan=False, allow_infinity=False, width=64), min_size=1, max_size=300),
       st.one_of(st.sampled_from([0.0, 50.0, 90.0, 99.0, 100.0]), st.floats(min_value=0, max_value=100)))
def test_percentile_is_the_documented_nearest_rank(values: list[float], q: float) -> None:
    """Always an observed value: the smallest with at least q % of the values at or below it."""
    assert percentile(values, q) == _nearest_rank(values, q)


@pytest.mark.parametrize(("values", "q", "expected"), [
    ([], 50, None),
    ([7.5], 0, 7.5),
    ([7.5], 99, 7.5),
    ([3.0, 1.0, 2.0, 2.0], 50, 2.0),
    ([float(v) for v in range(1, 10)], 90, 9.0),  # ⌈8.1⌉ = 9: with fewer than 10 values p90 is the maximum
    ([float(v) for v in range(1, 73)], 90, 65.0),  # 72 hops: p90 = v₆₅
])
def test_percentile_edge_cases(values: list[float], q: float, expected: float | None) -> None:
    """No values give None; one value is every percentile; ties and the docs' worked examples."""
    assert percentile(values, q) == expected
