"""``mooncake_ttft``: Mooncake's Conductor (FAST'25, Algorithm 1). For every prefill node,
TTFT = queue time + prefill time of what its cache does not hold; if the longest prefix anywhere
is longer than the local one by the balancing threshold, TTFT instead counts fetching that
prefix from its holder plus prefilling the rest. The node with the lowest TTFT wins (lowest
index on ties); the fetch goes with the placement when it was the option used.
Source: Qin et al., "Mooncake: Trading More Storage for Less Computation", FAST'25, §6 and
Algorithm 1; kvcache-ai/Mooncake issue #749. The threshold's value is not published: 1.0 here
(fetch whenever a longer prefix exists). Stateless. O(nodes × blocks)."""

from __future__ import annotations

import numpy as np

from schedulers.strategies.base import ClusterView, Placement, Request

KVCACHE_BALANCING_THRESHOLD = 1.0


class MooncakeTtft:
    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        self.n_nodes = n_nodes

    def place(self, req: Request, view: ClusterView) -> Placement:
        b, prompt = view.block_size, req.hop.prompt_tokens
        matches = [view.match(i, req.blocks) for i in range(self.n_nodes)]
        best = max(matches)
        holder = matches.index(best)
        choice: tuple[float, int, Placement] | None = None
        for i, local in enumerate(matches):
            queue = view.backlog_s(i)
            if best > local * KVCACHE_BALANCING_THRESHOLD and i != holder:
                ttft = (view.transfer_s(holder, i, (best - local) * b) + queue
                        + view.prefill_s(prompt - best * b, best * b))
                option = Placement(i, holder, best)
            else:
                ttft = queue + view.prefill_s(prompt - local * b, local * b)
                option = Placement(i)
            if choice is None or ttft < choice[0]:
                choice = (ttft, i, option)
        assert choice is not None
        return choice[2]
