"""``least_loaded``: the node with the fewest requests in flight (queued + running), lowest index
on ties (the Mooncake paper's "load-balanced" baseline). Stateless. O(nodes)."""

from __future__ import annotations

import numpy as np

from schedulers.strategies.base import ClusterView, Placement, Request


class LeastLoaded:
    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        self.n_nodes = n_nodes

    def place(self, req: Request, view: ClusterView) -> Placement:
        loads = [view.waiting(i) + view.running(i) for i in range(self.n_nodes)]
        return Placement(loads.index(min(loads)))
