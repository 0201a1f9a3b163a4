"""``sglang_cache_aware``: SGLang router's cache-aware policy. Load = requests in flight per
worker. If ``max − min > 64`` and ``max > 1.5 × min`` the system is imbalanced: the least loaded
worker wins. Otherwise the router's own prefix tree is searched: if the best match covers more
than 30 % of the request, that worker wins, else the worker with the smallest tree. The tree is
the router's (what it routed where, never evicted at these sizes), not the workers' caches;
it is kept in blocks rather than characters.
Source: sgl-project/sglang ``sgl-router/src/policies/cache_aware.rs``, defaults from
``sgl-router/py_src/sglang_router/router_args.py``. State: one block set per worker.
O(nodes × blocks)."""

from __future__ import annotations

import numpy as np

from schedulers.cache import leading_run
from schedulers.strategies.base import ClusterView, Placement, Request

BALANCE_ABS_THRESHOLD = 64
BALANCE_REL_THRESHOLD = 1.5
CACHE_THRESHOLD = 0.3


class SglangCacheAware:
    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        self.n_nodes = n_nodes
        self.trees: list[set[int]] = [set() for _ in range(n_nodes)]

    def place(self, req: Request, view: ClusterView) -> Placement:
        loads = [view.waiting(i) + view.running(i) for i in range(self.n_nodes)]
        lo, hi = min(loads), max(loads)
        if hi - lo > BALANCE_ABS_THRESHOLD and hi > BALANCE_REL_THRESHOLD * lo:
            node = loads.index(lo)
        else:
            matches = [leading_run(req.blocks, tree) for tree in self.trees]
            best = max(matches)
            rate = best * view.block_size / req.hop.prompt_tokens if req.hop.prompt_tokens else 0.0
            if rate > CACHE_THRESHOLD:
                node = matches.index(best)
            else:
                sizes = [len(t) for t in self.trees]
                node = sizes.index(min(sizes))
        self.trees[node].update(req.blocks)
        return Placement(node)
