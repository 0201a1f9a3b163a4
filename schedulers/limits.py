"""Upper bounds on what one replay command does (``docs/cli.md`` lists them with the others).

Two kinds: a *hard* bound refuses a value that would exhaust memory or never finish on any machine
(``--copies 1000000000``); the *work* limits refuse a request that is possible but long or big —
the hops and prefix blocks replayed summed over strategies and combinations, and the blocks held
in memory — after saying how much it would be, unless ``--force`` is given (``force=True`` in the
Python API).

>>> check_work(1000, 200_000)
>>> check_work(MAX_REPLAYED_HOPS + 1, 0, force=True)
>>> check_work(60, 9_375_000, copies=5)  # doctest: +ELLIPSIS
Traceback (most recent call last):
agentgraph.errors.UsageError: this replay would hold 46,875,000 prefix blocks in memory at once (about 2.3 GB)...
"""

from __future__ import annotations

from agentgraph.errors import UsageError
from agentgraph.model import Trace

__all__ = [
    "MAX_COMBINATIONS",
    "MAX_COPIES",
    "MAX_REPLAYED_BLOCKS",
    "MAX_REPLAYED_HOPS",
    "MAX_RESIDENT_BLOCKS",
    "MAX_SEED",
    "REPLAYED_BLOCKS_PER_S",
    "REPLAYED_HOPS_PER_S",
    "check_work",
    "trace_work",
]

MAX_COPIES = 100_000
"""Copies of a trace one replay may ask for (``--copies``; :func:`schedulers.replicate`)."""
MAX_SEED = 2**64 - 1
"""Seeds are 0 .. 2⁶⁴−1 (numpy's ``SeedSequence`` takes any, but a seed is a 64-bit value everywhere else)."""
MAX_COMBINATIONS = 10_000
"""Cells of one ``sweep`` grid."""
MAX_REPLAYED_HOPS = 2_000_000
"""Hops replayed by one command (hops × copies × strategies or grid cells) without ``--force``:
about three minutes at :data:`REPLAYED_HOPS_PER_S`."""
MAX_REPLAYED_BLOCKS = 400_000_000
"""Prefix blocks replayed by one command (the same product over blocks) without ``--force``: a hop's
cost grows with its prompt, so a few hops of 10M tokens (156,250 blocks each) are as much work as
thousands of ordinary ones; about three minutes at :data:`REPLAYED_BLOCKS_PER_S`."""
MAX_RESIDENT_BLOCKS = 40_000_000
"""Blocks of the workload held in memory at once (trace blocks × copies) without ``--force``:
about 2 GB at ~50 bytes a block (measured: 47M blocks of copied 10M-token hops took 2.3 GB)."""
REPLAYED_HOPS_PER_S = 12_000
"""The slowest strategy's replay speed on the project's 2-core VM (``docs/performance.md``):
the basis of the time estimate in the refusal."""
REPLAYED_BLOCKS_PER_S = 2_500_000
"""Blocks per second the replay gets through on the same VM (measured: 1.2–3 M/s by strategy)."""


def check_work(hops: int, blocks: int, *, copies: int = 1, runs: int = 1, force: bool = False,
               what: str = "this replay") -> None:
    """Refuse replaying a trace of ``hops`` hops and ``blocks`` prefix blocks as ``copies`` copies,
    ``runs`` times (strategies, grid cells), above any work limit of this module, unless ``force``."""
    if force:
        return
    replayed_hops, replayed_blocks, resident = hops * copies * runs, blocks * copies * runs, blocks * copies
    seconds = max(replayed_hops / REPLAYED_HOPS_PER_S, replayed_blocks / REPLAYED_BLOCKS_PER_S)
    about = f"about {_duration(seconds)} on a 2-core VM"
    if replayed_hops > MAX_REPLAYED_HOPS:
        problem = f"replay {replayed_hops:,} hops ({about}), above the limit of {MAX_REPLAYED_HOPS:,}"
    elif replayed_blocks > MAX_REPLAYED_BLOCKS:
        problem = f"replay {replayed_blocks:,} prefix blocks ({about}), above the limit of {MAX_REPLAYED_BLOCKS:,}"
    elif resident > MAX_RESIDENT_BLOCKS:
        problem = (f"hold {resident:,} prefix blocks in memory at once (about {resident * 50 / 1e9:,.1f} GB), "
                   f"above the limit of {MAX_RESIDENT_BLOCKS:,}")
    else:
        return
    raise UsageError(f"{what} would {problem}; pass --force to run it anyway")


def trace_work(trace: Trace) -> tuple[int, int]:
    """The hops and prefix blocks of ``trace``: what :func:`check_work` weighs."""
    return len(trace.hop_list), sum(len(h.hash_ids) for h in trace.hop_list)


def _duration(seconds: float) -> str:
    return f"{seconds:,.0f} s" if seconds < 120 else f"{seconds / 60:,.0f} min"
