"""``llmd_weighted``: llm-d's inference scheduler with its default weighted scorers,
prefix-cache 3 : queue 2 : kv-cache-utilization 2, highest total wins, random among ties.
Prefix score = cached leading blocks / request blocks; queue score = (max q − q) / (max q − min q)
over the waiting queues (1 when all equal); KV score = 1 − KV usage.
Source: kubernetes-sigs/gateway-api-inference-extension ``epp-config.yaml`` and
``pkg/epp/scheduling/framework/plugins/scorer/{queue,kvcache_utilization}.go``,
``plugins/multi/prefix/plugin.go``. Stateless. O(nodes × blocks)."""

from __future__ import annotations

import numpy as np

from schedulers.strategies.base import ClusterView, Placement, Request

PREFIX_WEIGHT, QUEUE_WEIGHT, KV_WEIGHT = 3.0, 2.0, 2.0


class LlmdWeighted:
    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        self.n_nodes, self.rng = n_nodes, rng

    def place(self, req: Request, view: ClusterView) -> Placement:
        nodes = range(self.n_nodes)
        queues = [view.waiting(i) for i in nodes]
        lo, hi = min(queues), max(queues)
        scores = []
        for i in nodes:
            prefix = view.match(i, req.blocks) / len(req.blocks) if req.blocks else 0.0
            queue = 1.0 if hi == lo else (hi - queues[i]) / (hi - lo)
            scores.append(PREFIX_WEIGHT * prefix + QUEUE_WEIGHT * queue + KV_WEIGHT * (1.0 - view.kv_usage(i)))
        best = max(scores)
        ties = [i for i, s in enumerate(scores) if s == best]
        return Placement(ties[0] if len(ties) == 1 else int(self.rng.choice(ties)))
