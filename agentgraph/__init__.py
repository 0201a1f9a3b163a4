"""agentgraph: agent sessions as call graphs of LLM hops, replayed on a modeled GPU cluster.

>>> import agentgraph
>>> trace = agentgraph.Trace(())
>>> trace.summary()["llm_hops"]
0
"""

from __future__ import annotations

from agentgraph.errors import (
    AgentgraphError,
    ImportIssue,
    IssueKind,
    NothingImportedError,
    TraceFormatError,
    UsageError,
)
from agentgraph.model import Agent, Edge, EdgeKind, Hop, ToolCall, Trace, Usage
from agentgraph.traceio import load, save

__all__ = [
    "Agent",
    "AgentgraphError",
    "Edge",
    "EdgeKind",
    "Hop",
    "ImportIssue",
    "IssueKind",
    "NothingImportedError",
    "ToolCall",
    "Trace",
    "TraceFormatError",
    "Usage",
    "UsageError",
    "load",
    "save",
]
