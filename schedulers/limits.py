"""Upper bounds on what one replay command does (``docs/cli.md`` lists them with the others).

Two kinds: a *hard* bound refuses a value that would exhaust memory or never finish on any machine
(``--copies 1000000000``); the *work* limit refuses a request that is possible but long — the hops
replayed summed over strategies and combinations — after saying how long it would take, unless
``--force`` is given (``force=True`` in the Python API).

>>> check_work(1000, force=False)
>>> check_work(MAX_REPLAYED_HOPS + 1, force=True)
"""

from __future__ import annotations

from agentgraph.errors import UsageError

__all__ = ["MAX_COMBINATIONS", "MAX_COPIES", "MAX_REPLAYED_HOPS", "MAX_SEED", "REPLAYED_HOPS_PER_S", "check_work"]

MAX_COPIES = 100_000
"""Copies of a trace one replay may ask for (``--copies``; :func:`schedulers.replicate`)."""
MAX_SEED = 2**64 - 1
"""Seeds are 0 .. 2⁶⁴−1 (numpy's ``SeedSequence`` takes any, but a seed is a 64-bit value everywhere else)."""
MAX_COMBINATIONS = 10_000
"""Cells of one ``sweep`` grid."""
MAX_REPLAYED_HOPS = 2_000_000
"""Hops replayed by one command (copies × hops × strategies or combinations) without ``--force``:
about three minutes at :data:`REPLAYED_HOPS_PER_S`, and ~2 KB of memory per hop of the trace."""
REPLAYED_HOPS_PER_S = 12_000
"""The slowest strategy's replay speed on the project's 2-core VM (``docs/performance.md``):
the basis of the time estimate in the refusal."""


def check_work(hops: int, *, force: bool, what: str = "this replay") -> None:
    """Refuse ``hops`` replayed hops above :data:`MAX_REPLAYED_HOPS` unless ``force``."""
    if hops <= MAX_REPLAYED_HOPS or force:
        return
    minutes = hops / REPLAYED_HOPS_PER_S / 60
    raise UsageError(f"{what} would replay {hops:,} hops (about {minutes:,.0f} min at ~{REPLAYED_HOPS_PER_S:,} "
                     f"hops/s), above the limit of {MAX_REPLAYED_HOPS:,}; pass --force to run it anyway")
