"""Trace transforms for experiments: a shared system prompt in front of every hop, and shifted
copies of a trace (more load, same shape).

>>> from agentgraph.model import Hop, Trace
>>> t = Trace((Hop("h", "s", "main", 0, "m", 0.0, 1.0, 600, 1, 0, (7, 8)),), block_size=512)
>>> shared = with_shared_prefix(t, blocks=1)
>>> shared.hop_list[0].prompt_tokens, shared.hop_list[0].hash_ids[0] == SHARED_BLOCK_BASE
(1112, True)
"""

from __future__ import annotations

from collections import Counter
from dataclasses import replace

from agentgraph.errors import UsageError
from agentgraph.model import Agent, Edge, Hop, Trace
from schedulers.limits import MAX_COPIES

__all__ = [
    "SHARED_BLOCK_BASE",
    "replicate",
    "with_shared_prefix",
]

SHARED_BLOCK_BASE = 1 << 62
"""Hash of the first shared block :func:`with_shared_prefix` adds (far from any trace's ids)."""


def with_shared_prefix(trace: Trace, blocks: int = 1) -> Trace:
    """Every hop starts with the same ``blocks`` full blocks (a common system prompt), so every
    request shares block 0; the hop's own blocks follow, their ids unchanged (their relation to
    each other is kept: equal id ⇒ equal prefix still holds)."""
    head = tuple(SHARED_BLOCK_BASE + i for i in range(blocks))
    extra = blocks * trace.block_size
    hops = tuple(replace(h, hash_ids=head + h.hash_ids, prompt_tokens=h.prompt_tokens + extra,
                         shared_prefix_tokens=h.shared_prefix_tokens + (extra if h.shared_prefix_tokens else 0))
                 for h in trace.hop_list)
    return replace(trace, hop_list=hops)


def replicate(trace: Trace, copies: int, shift_s: float | None = None, *, share_common: bool = True) -> Trace:
    """``copies`` copies of ``trace``, copy ``k`` shifted by ``k × shift_s`` seconds (default:
    the trace's span, so copies follow each other) with session ids suffixed ``#k``.

    Blocks that appear in more than one session of the original (system prompts, tool
    definitions) stay shared by all copies; blocks private to one session are renamed per copy,
    so a copy's conversation is new content rather than a replay of the original's. With
    ``share_common=False`` every block is renamed: the copies are independent workloads of the
    same shape (what a scaling measurement wants). Copy 0 keeps the original ids; copy ``k``'s
    renamed blocks get fresh ids above the original's largest, in the order they first appear,
    so no id collides and the copies' ids are as dense as the original's.
    """
    if isinstance(copies, bool) or not isinstance(copies, int) or not 1 <= copies <= MAX_COPIES:
        raise UsageError(f"copies must be an integer in 1..{MAX_COPIES}, not {copies!r}")
    starts = [h.start_s for h in trace.hop_list]
    span = (max(h.end_s for h in trace.hop_list) - min(starts)) if starts else 0.0
    shift = span if shift_s is None else shift_s
    blocks_of: dict[str, set[int]] = {}
    for h in trace.hop_list:
        blocks_of.setdefault(h.session_id, set()).update(h.hash_ids)
    owners: Counter[int] = Counter(b for blocks in blocks_of.values() for b in blocks)
    # copy k >= 1 renames private block b to top + (k - 1) × len(private) + its rank: no
    # collisions, and ids stay as dense as the original's (hash tables stay compact)
    renamed = [b for b in dict.fromkeys(b for h in trace.hop_list for b in h.hash_ids)
               if not (share_common and owners[b] > 1)]
    rank = {b: i for i, b in enumerate(renamed)}
    top = max(owners, default=-1) + 1
    hops: list[Hop] = []
    edges: list[Edge] = []
    agents: list[Agent] = []
    for k in range(copies):
        def rename(x: str, k: int = k) -> str:
            return x if k == 0 else f"{x}#{k}"

        def block(b: int, k: int = k) -> int:
            i = rank.get(b)
            return b if k == 0 or i is None else top + (k - 1) * len(renamed) + i

        hops.extend(replace(h, hop_id=rename(h.hop_id), session_id=rename(h.session_id),
                            start_s=h.start_s + k * shift, end_s=h.end_s + k * shift,
                            hash_ids=tuple(block(b) for b in h.hash_ids)) for h in trace.hop_list)
        edges.extend(replace(e, src=rename(e.src), dst=rename(e.dst)) for e in trace.edges)
        agents.extend(replace(a, session_id=rename(a.session_id)) for a in trace.agents)
    return replace(trace, hop_list=tuple(hops), edges=tuple(edges), agents=tuple(agents))
