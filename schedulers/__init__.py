"""Cluster model, KV prefix cache, scheduling strategies and the replay simulator.

Imports :mod:`agentgraph`, never the reverse.

>>> import agentgraph, schedulers
>>> hops = (agentgraph.Hop("h0", "s", "main", 0, "m", 0.0, 1.0, 128, 4, 0, (1, 2)),)
>>> result = schedulers.replay(agentgraph.Trace(hops), strategy="least_loaded")
>>> result.summary["cold_tokens"], result.hops["node"].to_list()
(128, [0])
"""

from __future__ import annotations

from schedulers.cache import CacheHit, HostCache, PrefixCache
from schedulers.cluster import DEFAULT_CLUSTER, GPUS, LINKS, MODELS, ClusterSpec, Topology, load_cluster
from schedulers.metrics import SUMMARY_KEYS, SUMMARY_SCHEMA, ReplayResult, percentile, summary_frame
from schedulers.simulator import Simulator, compare, replay
from schedulers.strategies import BASELINES, STRATEGIES, make_strategy
from schedulers.strategies.base import ClusterView, Placement, Request, StaticView
from schedulers.timing import FixedTiming, RooflineTiming
from schedulers.workloads import replicate, with_shared_prefix

__all__ = [
    "BASELINES",
    "DEFAULT_CLUSTER",
    "GPUS",
    "LINKS",
    "MODELS",
    "STRATEGIES",
    "SUMMARY_KEYS",
    "SUMMARY_SCHEMA",
    "CacheHit",
    "ClusterSpec",
    "ClusterView",
    "FixedTiming",
    "HostCache",
    "Placement",
    "PrefixCache",
    "ReplayResult",
    "Request",
    "RooflineTiming",
    "Simulator",
    "StaticView",
    "Topology",
    "compare",
    "load_cluster",
    "make_strategy",
    "percentile",
    "replay",
    "replicate",
    "summary_frame",
    "with_shared_prefix",
]
