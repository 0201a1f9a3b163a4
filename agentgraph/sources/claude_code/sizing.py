"""Token counts of units: a unit keeps the size it gets when first seen, scaled to reported usage.

:class:`TokenBook` holds the sizes (system/tool units across sessions, message units for one
session); :class:`_AgentSizer` re-uses the sized prefix an agent's request shares with its last.
"""

from __future__ import annotations

from agentgraph.tokens import scale_counts

__all__ = ["TokenBook"]


class TokenBook:
    """Sizes units once: a unit keeps the token count it got on first appearance.

    A call's new units share what its reported prompt total leaves after its known units, in
    proportion to their estimates; units of unknown size (``None``) take what the estimated ones
    leave. Shared prefixes therefore keep equal sizes in every hop, and each hop's size equals
    the API total whenever the request extends known ones.
    """

    def __init__(self) -> None:
        self.shared: dict[bytes, int] = {}  # system/tool units, kept across sessions
        self.local: dict[bytes, int] = {}  # message units, dropped after each session

    def count(self, key: bytes) -> int | None:
        return self.shared.get(key, self.local.get(key))

    def size(self, units: list[tuple[bytes, int | None]], reported: int | None,
             shared_keys: frozenset[bytes]) -> list[tuple[bytes, int]]:
        known = 0
        fresh: dict[bytes, int | None] = {}
        for key, est in units:
            n = self.count(key)
            if n is not None:
                known += n
            elif key not in fresh:
                fresh[key] = est
        if fresh:
            for key, n in _share(fresh, None if reported is None else reported - known).items():
                (self.shared if key in shared_keys else self.local)[key] = n
        return [(key, self.count(key) or 1) for key, _ in units]


def _share(fresh: dict[bytes, int | None], budget: int | None) -> dict[bytes, int]:
    keys = list(fresh)
    estimated = {k: e for k, e in fresh.items() if e is not None}
    opaque = [k for k in keys if fresh[k] is None]
    if budget is None or budget < len(keys):
        return {k: estimated.get(k, 1) for k in keys}
    rest = budget - sum(estimated.values())
    if not opaque or rest < len(opaque):  # all in proportion to the estimates (opaque weigh 1)
        return dict(zip(keys, scale_counts([fresh[k] or 1 for k in keys], budget), strict=True))
    out = dict(estimated)
    out.update(zip(opaque, scale_counts([1] * len(opaque), rest), strict=True))
    return out


class _AgentSizer:
    """Sizes one agent's successive requests, re-using the sized prefix it shares with the last."""

    def __init__(self, book: TokenBook, shared_keys: frozenset[bytes]) -> None:
        self.book, self.shared_keys = book, shared_keys
        self.raw: list[tuple[bytes, int | None]] = []
        self.sized: list[tuple[bytes, int]] = []
        self.total = 0

    def size(self, units: list[tuple[bytes, int | None]],
             reported: int | None) -> tuple[list[tuple[bytes, int]], bool]:
        """Sized units, and whether they extend the previous request's (same sizes included)."""
        n = len(self.raw)
        extends = n > 0 and len(units) >= n and units[:n] == self.raw
        if not extends:
            n, self.sized, self.total = 0, [], 0
        tail = self.book.size(units[n:], None if reported is None else reported - self.total,
                              self.shared_keys)
        self.raw, self.sized = units, self.sized + tail
        self.total += sum(c for _, c in tail)
        return self.sized, extends
