"""``dynamo_kv``: NVIDIA Dynamo's KV-aware router. For every worker,
``cost = overlap_score_weight × prefill_blocks + decode_blocks`` where ``prefill_blocks`` are the
request's blocks not cached there and ``decode_blocks`` the blocks the worker already holds for
active requests plus the request's own; at temperature 0 the argmin wins, ties go to the
smallest cache tree, then at random. Weight 1 (the default).
Source: ai-dynamo/dynamo ``docs/architecture/kv_cache_routing.md`` and
``lib/kv-router/src/scheduling/selector.rs``. Stateless. O(nodes × blocks)."""

from __future__ import annotations

import numpy as np

from schedulers.strategies.base import ClusterView, Placement, Request

OVERLAP_SCORE_WEIGHT = 1.0


class DynamoKv:
    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        self.n_nodes, self.rng = n_nodes, rng

    def place(self, req: Request, view: ClusterView) -> Placement:
        blocks = -(-req.hop.prompt_tokens // view.block_size)
        costs = []
        for i in range(self.n_nodes):
            prefill = blocks - view.match(i, req.blocks)
            decode = view.active_blocks(i) + blocks
            costs.append((OVERLAP_SCORE_WEIGHT * prefill + decode, view.cached_blocks(i)))
        best = min(costs)
        ties = [i for i, c in enumerate(costs) if c == best]
        return Placement(ties[0] if len(ties) == 1 else int(self.rng.choice(ties)))
