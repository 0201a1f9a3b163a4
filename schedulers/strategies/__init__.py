"""Scheduling strategies: one small file each, and the registry.

A strategy is a class built as ``cls(n_nodes, rng)`` whose ``place(request, view)`` returns a
:class:`~schedulers.strategies.base.Placement` from a read-only
:class:`~schedulers.strategies.base.ClusterView`. Rules, state, cost and sources of each are in
``docs/strategies.md``.

>>> sorted(STRATEGIES)[:3]
['dynamo_kv', 'least_loaded', 'llmd_weighted']
"""

from __future__ import annotations

import numpy as np

from agentgraph.errors import UsageError
from schedulers.strategies.base import ClusterView, Placement, Request, Strategy
from schedulers.strategies.dynamo_kv import DynamoKv
from schedulers.strategies.least_loaded import LeastLoaded
from schedulers.strategies.llmd_weighted import LlmdWeighted
from schedulers.strategies.longest_prefix import LongestPrefix
from schedulers.strategies.mooncake_ttft import MooncakeTtft
from schedulers.strategies.random_choice import RandomChoice
from schedulers.strategies.round_robin import RoundRobin
from schedulers.strategies.session_affinity import SessionAffinity
from schedulers.strategies.sglang_cache_aware import SglangCacheAware
from schedulers.strategies.topology_aware import TopologyAware

__all__ = [
    "BASELINES",
    "STRATEGIES",
    "ClusterView",
    "Placement",
    "Request",
    "Strategy",
    "check_strategy",
    "make_strategy",
    "parse_strategies",
]

STRATEGIES: dict[str, type[Strategy]] = {
    "round_robin": RoundRobin,
    "random": RandomChoice,
    "least_loaded": LeastLoaded,
    "longest_prefix": LongestPrefix,
    "session_affinity": SessionAffinity,
    "dynamo_kv": DynamoKv,
    "llmd_weighted": LlmdWeighted,
    "sglang_cache_aware": SglangCacheAware,
    "mooncake_ttft": MooncakeTtft,
    "topology_aware": TopologyAware,
}
"""Every strategy by its CLI name, baselines first, ours last."""

BASELINES = tuple(name for name in STRATEGIES if name != "topology_aware")


def check_strategy(name: str) -> str:
    """``name`` if it is a strategy; else a UsageError listing the valid ones."""
    if name not in STRATEGIES:
        raise UsageError(f"unknown strategy {name!r}; choose from: {', '.join(sorted(STRATEGIES))}")
    return name


def parse_strategies(text: str, option: str = "--strategies") -> list[str]:
    """A comma-separated list of strategy names, or ``all`` (registry order); each name checked.

    >>> parse_strategies("random, topology_aware"), len(parse_strategies("all"))
    (['random', 'topology_aware'], 10)
    """
    if text.strip() == "all":
        return list(STRATEGIES)
    names = [check_strategy(n.strip()) for n in text.split(",") if n.strip()]
    if not names:
        raise UsageError(f"{option} is empty; give names or 'all'")
    repeated = sorted({n for n in names if names.count(n) > 1})
    if repeated:
        raise UsageError(f"{option} names {', '.join(repeated)} more than once")
    return names


def make_strategy(name: str, n_nodes: int, rng: np.random.Generator) -> Strategy:
    """A fresh strategy instance; an unknown name fails with the list of valid ones."""
    return STRATEGIES[check_strategy(name)](n_nodes, rng)
