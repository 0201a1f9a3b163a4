"""Workload builders: a shared system prompt in front of every hop, shifted copies of a trace."""

from __future__ import annotations

import pytest

from agentgraph.errors import UsageError
from agentgraph.model import Edge, EdgeKind, Hop, Trace
from schedulers.workloads import SHARED_BLOCK_BASE, replicate, with_shared_prefix


def hop(hop_id: str, session: str, start: float, blocks: tuple[int, ...]) -> Hop:
    return Hop(hop_id, session, "main", 0, "m", start, start + 1.0, 64 * len(blocks), 5, 0, blocks)


# Two sessions share block 7 (a system prompt); 8, 9 and 30 are private.
TRACE = Trace((hop("a1", "a", 0.0, (7, 8)), hop("a2", "a", 2.0, (7, 8, 9)), hop("b1", "b", 1.0, (7, 30))),
              edges=(Edge("a1", "a2", EdgeKind.SEQUENCE, 1.0),))


def test_replicate_keeps_shared_blocks_and_renames_private_ones_densely() -> None:
    """Copy 0 is the original; copy k's private blocks 8, 9, 30 (first appearance order) become
    31 + 3 (k − 1) + rank; block 7 stays shared; times shift by the span (3 s)."""
    t = replicate(TRACE, 3)
    assert [(h.hop_id, h.session_id, h.start_s, h.hash_ids) for h in t.hop_list] == [
        ("a1", "a", 0.0, (7, 8)), ("a2", "a", 2.0, (7, 8, 9)), ("b1", "b", 1.0, (7, 30)),
        ("a1#1", "a#1", 3.0, (7, 31)), ("a2#1", "a#1", 5.0, (7, 31, 32)), ("b1#1", "b#1", 4.0, (7, 33)),
        ("a1#2", "a#2", 6.0, (7, 34)), ("a2#2", "a#2", 8.0, (7, 34, 35)), ("b1#2", "b#2", 7.0, (7, 36)),
    ]
    assert [(e.src, e.dst) for e in t.edges] == [("a1", "a2"), ("a1#1", "a2#1"), ("a1#2", "a2#2")]


def test_replicate_without_sharing_renames_every_block() -> None:
    t = replicate(TRACE, 2, shift_s=10.0, share_common=False)
    copy = [(h.start_s, h.hash_ids) for h in t.hop_list[3:]]
    assert copy == [(10.0, (31, 32)), (12.0, (31, 32, 33)), (11.0, (31, 34))]


def test_replicate_never_collides_with_existing_ids() -> None:
    """Whatever the original ids (huge hashes included), renamed ids are new and distinct."""
    t = replicate(with_shared_prefix(TRACE, 1), 4)
    per_copy = [{b for h in t.hop_list if h.session_id.endswith(f"#{k}") for b in h.hash_ids} for k in (1, 2, 3)]
    original = {b for h in with_shared_prefix(TRACE, 1).hop_list for b in h.hash_ids}
    assert all(c & original == {SHARED_BLOCK_BASE, 7} for c in per_copy)
    assert not (per_copy[0] - original) & (per_copy[1] - original)


def test_one_copy_is_the_trace() -> None:
    assert replicate(TRACE, 1).hop_list == TRACE.hop_list
    for bad in (0, 100_001, True, 2.0):
        with pytest.raises(UsageError, match=r"copies must be an integer in 1\.\.100000, not "):
            replicate(TRACE, bad)  # type: ignore[arg-type]
