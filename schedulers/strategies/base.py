"""What a strategy sees and returns: a read-only :class:`ClusterView` and a :class:`Placement`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np

from agentgraph.model import Hop
from schedulers.cache import leading_run

__all__ = [
    "ClusterView",
    "Placement",
    "Request",
    "StaticView",
    "Strategy",
]


@dataclass(frozen=True, slots=True)
class Request:
    """A hop about to be placed: its full prefix blocks, and where its graph predecessor ran
    (the previous hop of its agent, or the hop that spawned it; None for a session's first hop)."""

    hop: Hop
    blocks: tuple[int, ...]
    prev_node: int | None
    parent_node: int | None = None  # for a sub-agent: the node of the hop that spawned it

    @property
    def session_id(self) -> str:
        return self.hop.session_id


@dataclass(frozen=True, slots=True)
class Placement:
    """Run on ``node``; optionally fetch the leading ``fetch_blocks`` blocks of the request from
    ``fetch_from`` (another node, over the topology) before prefilling."""

    node: int
    fetch_from: int | None = None
    fetch_blocks: int = 0


class ClusterView(Protocol):
    """The cluster as a strategy may see it: no method changes anything."""

    @property
    def n_nodes(self) -> int: ...

    @property
    def now(self) -> float: ...

    @property
    def block_size(self) -> int: ...

    def match(self, node: int, blocks: Sequence[int]) -> int:
        """Leading blocks of ``blocks`` cached on ``node``'s GPUs."""

    def cached_blocks(self, node: int) -> int:
        """Blocks ``node`` caches (its "tree size")."""

    def waiting(self, node: int) -> int:
        """Requests queued for prefill on ``node`` (not yet started)."""

    def running(self, node: int) -> int:
        """Requests in prefill or decode on ``node``."""

    def active_blocks(self, node: int) -> int:
        """KV blocks held by requests running or queued on ``node``."""

    def kv_usage(self, node: int) -> float:
        """Fraction of ``node``'s KV capacity held by running requests."""

    def backlog_s(self, node: int) -> float:
        """Predicted seconds until ``node``'s prefill lane is free for a new request."""

    def decode_step_s(self, node: int, extra_batch: int = 0, extra_kv_tokens: int = 0) -> float:
        """Predicted decode step time on ``node`` with a request of that size added."""

    def decode_left(self, node: int) -> list[float]:
        """Decode steps still to run for each request in ``node``'s batch or waiting to join it."""

    def prefill_s(self, new_tokens: int, cached_tokens: int) -> float:
        """Predicted prefill seconds on any node (nodes are identical)."""

    def transfer_s(self, src: int, dst: int, tokens: int) -> float:
        """Predicted seconds to move ``tokens`` of KV from ``src`` to ``dst``."""

    def rack(self, node: int) -> int: ...


class Strategy(Protocol):
    """A placement rule with its own state; built as ``cls(n_nodes, rng)``."""

    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None: ...

    def place(self, req: Request, view: ClusterView) -> Placement: ...


@dataclass
class StaticView:
    """A :class:`ClusterView` test double from plain per-node lists (for testing a strategy's
    rule without a simulator). ``cached[i]`` is the set of blocks node ``i`` caches.

    >>> v = StaticView(cached=[{1, 2}, {1}])
    >>> v.match(0, (1, 2, 3)), v.match(1, (1, 2, 3)), v.n_nodes
    (2, 1, 2)
    """

    cached: list[set[int]]
    waiting_: list[int] = field(default_factory=list)
    running_: list[int] = field(default_factory=list)
    active_blocks_: list[int] = field(default_factory=list)
    kv_usage_: list[float] = field(default_factory=list)
    backlog_s_: list[float] = field(default_factory=list)
    decode_left_: list[list[float]] = field(default_factory=list)
    racks: list[int] = field(default_factory=list)
    block_size: int = 64
    now: float = 0.0
    prefill_s_per_token: float = 1e-3
    step_s: float = 1e-2
    step_s_per_request: float = 0.0
    transfer_s_per_token: float = 1e-5

    @property
    def n_nodes(self) -> int:
        return len(self.cached)

    def _get(self, values: list[Any], node: int, default: Any) -> Any:
        return values[node] if values else default

    def match(self, node: int, blocks: Sequence[int]) -> int:
        return leading_run(blocks, self.cached[node])

    def cached_blocks(self, node: int) -> int:
        return len(self.cached[node])

    def waiting(self, node: int) -> int:
        return int(self._get(self.waiting_, node, 0))

    def running(self, node: int) -> int:
        return int(self._get(self.running_, node, 0))

    def active_blocks(self, node: int) -> int:
        return int(self._get(self.active_blocks_, node, 0))

    def kv_usage(self, node: int) -> float:
        return float(self._get(self.kv_usage_, node, 0.0))

    def backlog_s(self, node: int) -> float:
        return float(self._get(self.backlog_s_, node, 0.0))

    def decode_step_s(self, node: int, extra_batch: int = 0, extra_kv_tokens: int = 0) -> float:
        return self.step_s + extra_batch * self.step_s_per_request

    def decode_left(self, node: int) -> list[float]:
        return list(self._get(self.decode_left_, node, []))

    def prefill_s(self, new_tokens: int, cached_tokens: int) -> float:
        return max(0, new_tokens) * self.prefill_s_per_token

    def transfer_s(self, src: int, dst: int, tokens: int) -> float:
        return 0.0 if src == dst else tokens * self.transfer_s_per_token

    def rack(self, node: int) -> int:
        return int(self._get(self.racks, node, 0))
