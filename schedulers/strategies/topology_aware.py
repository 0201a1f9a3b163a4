"""``topology_aware`` (ours): the node where the hop is predicted to *finish* first.

For every node ``i`` with ``local`` leading blocks cached there, two ways to get the prefix:
recompute what is missing, or fetch the longest warm run from the node that holds it, over the
topology's cheapest path (rack-local links first), when the fetch is faster than recomputing the
blocks it brings. The predicted finish is

    max(fetch time, prefill backlog of i) + prefill time of the rest + decode steps × step time
    of i with this request added

so queueing, prefill reuse, KV movement and decode contention are in one unit (seconds). The
agent graph breaks ties and near-ties: a hop prefers the node its predecessor ran on (the
session's prefix is warm there, pinned while its tools ran), a sub-agent the node or rack of the
hop that spawned it; ``SLACK`` is how much later (relative) a preferred node may finish and
still win. State: none. O(nodes × blocks).
"""

from __future__ import annotations

import numpy as np

from schedulers.strategies.base import ClusterView, Placement, Request

SLACK = 0.07  # a preferred node wins while predicted to finish within 7 % of the best ...
SLACK_S = 0.05  # ... plus 50 ms (trade-off measured in docs/strategies.md)


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
            finish = start + prefill + steps * view.decode_step_s(i, 1, prompt)
            options.append((finish, self._preference(i, req, view), placement))
        fastest = min(f for f, _, _ in options)
        near = [o for o in options if o[0] <= fastest * (1 + SLACK) + SLACK_S + 1e-9]
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
