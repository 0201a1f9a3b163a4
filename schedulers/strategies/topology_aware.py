"""``topology_aware`` (ours): the node where placing the hop costs the least time, all told.

For every node ``i`` with ``local`` leading blocks cached there, two ways to get the prefix:
recompute what is missing, or fetch the longest warm run from the node that holds it, over the
topology's cheapest path (rack-local links first), when the fetch is faster than recomputing the
blocks it brings. The cost of ``i`` is in seconds:

    max(fetch time, prefill backlog of i) + prefill time of the rest      (this hop's finish:
      + steps × step time of i with this request added                     queue, reuse, KV moves)
    + (that step time − i's step time now) × Σ min(steps, steps left)     (the slowdown it inflicts
                                                                           on i's other decodes)
    + LOCALITY_S_PER_TOKEN × warm tokens i lacks                           (the price of a miss)

The agent graph breaks ties and near-ties: a hop prefers the node its predecessor ran on (the
session's prefix is warm there, pinned while its tools ran), a sub-agent the node or rack of the
hop that spawned it; ``SLACK`` and ``SLACK_S`` say how much costlier a preferred node may be and
still win. State: none. O(nodes × (blocks + batch)).
"""

from __future__ import annotations

import numpy as np

from schedulers.strategies.base import ClusterView, Placement, Request

LOCALITY_S_PER_TOKEN = 1e-5  # a token not hit locally costs 10 µs on top of the time it takes ...
SLACK = 0.03  # ... and a preferred node wins while its cost is within 3 % of the best ...
SLACK_S = 0.03  # ... plus 30 ms (trade-offs measured in docs/strategies.md)


class TopologyAware:
    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        self.n_nodes = n_nodes

    def place(self, req: Request, view: ClusterView) -> Placement:
        b, prompt, steps = view.block_size, req.hop.prompt_tokens, max(req.hop.output_tokens - 1, 0)
        matches = [view.match(i, req.blocks) for i in range(self.n_nodes)]
        best = max(matches)
        holder = matches.index(best)
        options: list[tuple[float, int, Placement]] = []
        recompute_s: dict[int, float] = {}
        reuse = view.prefill_s(prompt - best * b, best * b)
        for i, local in enumerate(matches):
            recompute = recompute_s.get(local)
            if recompute is None:
                recompute = recompute_s[local] = view.prefill_s(prompt - local * b, local * b)
            start, prefill, placement = view.backlog_s(i), recompute, Placement(i)
            if best > local:
                fetch = view.transfer_s(holder, i, (best - local) * b)
                if fetch + reuse < recompute:
                    start, prefill, placement = max(fetch, start), reuse, Placement(i, holder, best)
            step = view.decode_step_s(i, 1, prompt)
            cost = start + prefill + steps * step + LOCALITY_S_PER_TOKEN * (best - local) * b
            others = view.decode_left(i) if steps else None
            if others:  # the slowdown this request inflicts on the decodes it would run beside
                cost += (step - view.decode_step_s(i)) * sum([steps if left > steps else left for left in others])
            options.append((cost, self._preference(i, req, view), placement))
        cheapest = min(c for c, _, _ in options)
        near = [o for o in options if o[0] <= cheapest * (1 + SLACK) + SLACK_S + 1e-9]
        return min(near, key=lambda o: (o[1], o[0], view.cached_blocks(o[2].node), o[2].node))[2]

    @staticmethod
    def _preference(node: int, req: Request, view: ClusterView) -> int:
        """0: where the agent's previous hop ran; 1: the spawning hop's node; 2: its rack; 3: any."""
        if node == req.prev_node:
            return 0
        if req.parent_node is None:
            return 3
        if node == req.parent_node:
            return 1
        return 2 if view.rack(node) == view.rack(req.parent_node) else 3
