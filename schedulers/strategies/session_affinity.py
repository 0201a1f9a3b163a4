"""``session_affinity``: sticky sessions by consistent hashing. Each node owns 64 points on a
64-bit ring (BLAKE2b of ``node-<i>-<v>``); a session goes to the owner of the first point at or
after the hash of its id (Karger et al., STOC'97; the "session-sticky" routing of LLM gateways).
State: the ring. O(log(nodes × 64)) per request."""

from __future__ import annotations

import bisect
import hashlib

import numpy as np

from schedulers.strategies.base import ClusterView, Placement, Request

POINTS_PER_NODE = 64


def ring_hash(key: str) -> int:
    return int.from_bytes(hashlib.blake2b(key.encode(), digest_size=8).digest(), "big")


class SessionAffinity:
    def __init__(self, n_nodes: int, rng: np.random.Generator) -> None:
        ring = sorted((ring_hash(f"node-{i}-{v}"), i) for i in range(n_nodes) for v in range(POINTS_PER_NODE))
        self.points = [p for p, _ in ring]
        self.owners = [i for _, i in ring]

    def place(self, req: Request, view: ClusterView) -> Placement:
        at = bisect.bisect_left(self.points, ring_hash(req.session_id)) % len(self.points)
        return Placement(self.owners[at])
