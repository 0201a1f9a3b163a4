"""A discrete-event core that fits on one screen (after SimPy's ``core.py``).

Events are callbacks in a heap ordered by ``(time, priority, seq)``; ``seq`` comes from a
counter, so two events at the same time and priority run in the order they were scheduled and
a run is deterministic.

>>> e = Engine(); out = []
>>> e.schedule(2.0, out.append, "b"); e.schedule(1.0, out.append, "a"); e.schedule(1.0, out.append, "a2")
>>> e.run(); out, e.now
(['a', 'a2', 'b'], 2.0)
"""

from __future__ import annotations

import heapq
import itertools
from collections.abc import Callable
from typing import Any

__all__ = [
    "NORMAL",
    "URGENT",
    "Engine",
]

URGENT = 0
"""Priority of events that must run before others at the same instant (completions)."""
NORMAL = 1


class Engine:
    """Simulated time and the event heap."""

    __slots__ = ("_heap", "_seq", "now")

    def __init__(self) -> None:
        self.now = 0.0
        self._heap: list[tuple[float, int, int, Callable[..., None], tuple[Any, ...]]] = []
        self._seq = itertools.count()

    def schedule(self, delay: float, fn: Callable[..., None], *args: Any, priority: int = NORMAL) -> None:
        """Run ``fn(*args)`` ``delay`` seconds from now."""
        assert delay >= 0, f"cannot schedule into the past (delay {delay})"
        heapq.heappush(self._heap, (self.now + delay, priority, next(self._seq), fn, args))

    def at(self, time: float, fn: Callable[..., None], *args: Any, priority: int = NORMAL) -> None:
        """Run ``fn(*args)`` at absolute ``time`` (not before now)."""
        self.schedule(max(0.0, time - self.now), fn, *args, priority=priority)

    def peek(self) -> float:
        """Time of the next event (infinity when none is left)."""
        return self._heap[0][0] if self._heap else float("inf")

    def step(self) -> None:
        """Advance to the next event and run it."""
        self.now, _, _, fn, args = heapq.heappop(self._heap)
        fn(*args)

    def run(self, until: float | None = None) -> None:
        """Run events until none is left (or until simulated time ``until``)."""
        heap, pop = self._heap, heapq.heappop
        while heap and (until is None or heap[0][0] <= until):
            self.now, _, _, fn, args = pop(heap)
            fn(*args)
