"""``random``: a uniformly random node from the seeded generator (the Mooncake paper's "random"
baseline, §8.1). State: the generator. O(1)."""

from __future__ import annotations

import numpy as np

from schedulers.strategies.base import ClusterView, Placement, Request


class RandomChoice:
    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        self.n_nodes, self.rng = n_nodes, rng

    def place(self, req: Request, view: ClusterView) -> Placement:
        return Placement(int(self.rng.integers(self.n_nodes)))
