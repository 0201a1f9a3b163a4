"""``longest_prefix``: the node caching the longest leading run of the request's blocks, lowest
index on ties, with no load term at all. The known trap (DESIGN §6): when every request shares
block 0 (a system prompt), every node but the first ties at worst, and the first node that ever
cached block 0 wins everything. Stateless. O(nodes × blocks)."""

from __future__ import annotations

import numpy as np

from schedulers.strategies.base import ClusterView, Placement, Request


class LongestPrefix:
    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        self.n_nodes = n_nodes

    def place(self, req: Request, view: ClusterView) -> Placement:
        matches = [view.match(i, req.blocks) for i in range(self.n_nodes)]
        return Placement(matches.index(max(matches)))
