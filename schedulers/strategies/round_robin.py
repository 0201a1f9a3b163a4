"""``round_robin``: node 0, 1, 2, ... in turn, whatever the request (vidur's and every load
balancer's default). State: one counter. O(1)."""

from __future__ import annotations

import numpy as np

from schedulers.strategies.base import ClusterView, Placement, Request


class RoundRobin:
    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        self.n_nodes, self.next = n_nodes, 0

    def place(self, req: Request, view: ClusterView) -> Placement:
        node, self.next = self.next, (self.next + 1) % self.n_nodes
        return Placement(node)
