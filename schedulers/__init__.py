"""Cluster model, KV prefix cache, scheduling strategies and the replay simulator.

Imports :mod:`agentgraph`, never the reverse. Filled in by the replay issue.
"""

from __future__ import annotations

__all__: list[str] = []
