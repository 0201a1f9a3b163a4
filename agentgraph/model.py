"""The trace model: hops (LLM calls), the agents that make them, and the edges between hops.

A :class:`Trace` is an immutable value. Frames (``trace.hops()``) and the call graph
(``trace.graph()``) are derived from it on demand.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from enum import StrEnum
from typing import TYPE_CHECKING, Any

from agentgraph.tokens import DEFAULT_BLOCK_SIZE, coarsen

__all__ = [
    "MAIN_AGENT",
    "Agent",
    "Edge",
    "EdgeKind",
    "Hop",
    "ToolCall",
    "Trace",
    "Usage",
]

if TYPE_CHECKING:
    import networkx as nx
    import polars as pl


MAIN_AGENT = "main"
"""The agent id of a session's top-level agent; sub-agents keep their own ids."""

AGENT_ID_PREFIX = 8  # shortest id prefix in an agent's name (Claude Code ids: 8 or 17 characters)


class EdgeKind(StrEnum):
    """How one hop leads to another."""

    SEQUENCE = "sequence"  # next hop of the same agent
    SPAWN = "spawn"  # parent hop -> first hop of a sub-agent
    JOIN = "join"  # last hop of a sub-agent -> the parent hop that reads its result


@dataclass(frozen=True, slots=True)
class Usage:
    """Token usage as the API reported it for one call."""

    input_tokens: int
    cache_read_tokens: int
    cache_creation_tokens: int
    output_tokens: int
    cache_creation_5m_tokens: int = 0
    cache_creation_1h_tokens: int = 0

    @property
    def prompt_tokens(self) -> int:
        """All prompt tokens of the call: uncached input + cache read + cache write."""
        return self.input_tokens + self.cache_read_tokens + self.cache_creation_tokens


@dataclass(frozen=True, slots=True)
class ToolCall:
    """One tool_use block a hop emitted, and when its result came back."""

    tool_use_id: str
    name: str
    input_json: str
    started_s: float | None = None
    ended_s: float | None = None
    is_error: bool | None = None
    schema_id: str | None = None  # key of the tool's input schema in Trace.schemas

    @property
    def input_bytes(self) -> int:
        return len(self.input_json.encode())

    @property
    def duration_s(self) -> float | None:
        if self.started_s is None or self.ended_s is None:
            return None
        return max(0.0, self.ended_s - self.started_s)


@dataclass(frozen=True, slots=True)
class Hop:
    """One LLM call.

    ``hash_ids`` are prefix block hashes at the trace's block size (see :mod:`agentgraph.tokens`);
    ``shared_prefix_tokens`` is how many leading prompt tokens the hop shares with the previous hop
    of the same agent, so ``new_tokens`` is the hop's context growth.
    """

    hop_id: str
    session_id: str
    agent_id: str
    index: int
    model: str
    start_s: float
    end_s: float
    prompt_tokens: int
    output_tokens: int
    shared_prefix_tokens: int
    hash_ids: tuple[int, ...]
    usage: Usage | None = None
    tool_calls: tuple[ToolCall, ...] = ()
    stop_reason: str | None = None
    request_id: str | None = None
    parse_us: float | None = None  # CPU: parsing the tool inputs the hop emitted
    validate_us: float | None = None  # CPU: validating them against their schemas
    assemble_us: float | None = None  # CPU: serializing the request the hop sent

    @property
    def cpu_us(self) -> float | None:
        """CPU orchestration time around the hop (parse + validate + assemble), if measured."""
        parts = (self.parse_us, self.validate_us, self.assemble_us)
        return None if all(p is None for p in parts) else sum(p or 0.0 for p in parts)

    @property
    def new_tokens(self) -> int:
        """Context growth: prompt tokens not shared with the previous hop of the agent."""
        return self.prompt_tokens - self.shared_prefix_tokens

    @property
    def latency_s(self) -> float:
        return max(0.0, self.end_s - self.start_s)

    @property
    def tool_wait_s(self) -> float:
        """Wall time from the first tool call's start to the last tool result."""
        starts = [t.started_s for t in self.tool_calls if t.started_s is not None]
        ends = [t.ended_s for t in self.tool_calls if t.ended_s is not None]
        if not starts or not ends:
            return 0.0
        return max(0.0, max(ends) - min(starts))


@dataclass(frozen=True, slots=True)
class Agent:
    """An agent of a session: ``main`` or a sub-agent spawned through a tool call."""

    session_id: str
    agent_id: str
    agent_type: str | None = None
    parent_agent_id: str | None = None
    spawn_tool_use_id: str | None = None


@dataclass(frozen=True, slots=True)
class Edge:
    """A dependency between two hops; ``wait_s`` is the gap between them (tools, CPU, user)."""

    src: str
    dst: str
    kind: EdgeKind
    wait_s: float = 0.0
    added_tokens: int = 0


@dataclass(frozen=True, slots=True)
class Trace:
    """Hops, agents and edges of one or more sessions, at one block size."""

    hop_list: tuple[Hop, ...]
    edges: tuple[Edge, ...] = ()
    agents: tuple[Agent, ...] = ()
    block_size: int = DEFAULT_BLOCK_SIZE
    meta: dict[str, Any] = field(default_factory=dict, compare=False)
    schemas: dict[str, Any] = field(default_factory=dict)  # schema id -> tool input schema

    def __iter__(self) -> Iterator[Hop]:
        return iter(self.hop_list)

    def __len__(self) -> int:
        return len(self.hop_list)

    def sessions(self) -> list[str]:
        """Session ids in order of first appearance."""
        return list(dict.fromkeys(h.session_id for h in self.hop_list))

    def hops(self) -> pl.DataFrame:
        """One row per hop, schema :data:`agentgraph.frames.HOPS_SCHEMA`."""
        from agentgraph.frames import HOPS_SCHEMA, frame

        names = self.agent_names()
        return frame([_hop_row(h, names[h.session_id, h.agent_id]) for h in self.hop_list], HOPS_SCHEMA)

    def tool_calls(self) -> pl.DataFrame:
        """One row per tool call, schema :data:`agentgraph.frames.TOOL_CALLS_SCHEMA`."""
        from agentgraph.frames import TOOL_CALLS_SCHEMA, frame

        rows = [
            (h.hop_id, h.session_id, h.agent_id, t.tool_use_id, t.name, t.input_bytes,
             t.duration_s, t.is_error, t.schema_id)
            for h in self.hop_list
            for t in h.tool_calls
        ]
        return frame(rows, TOOL_CALLS_SCHEMA)

    def agent_names(self) -> dict[tuple[str, str], str]:
        """The display name of each ``(session_id, agent_id)``, the one ``inspect``, ``graph`` and
        ``hops()`` show: ``main`` as is, any other agent the shortest prefix of its id, at least
        ``AGENT_ID_PREFIX`` characters, that no other agent id of its session starts with, then its
        type in parentheses when known.

        >>> hop = lambda i, a: Hop(i, "s", a, 0, "m", 0, 1, 10, 1, 0, ())
        >>> t = Trace((hop("x", "main"), hop("y", "a0000000000000001"), hop("z", "a0000000000000002")),
        ...           agents=(Agent("s", "a0000000000000001", "Explore"),))
        >>> sorted(t.agent_names().values())
        ['a0000000000000001(Explore)', 'a0000000000000002', 'main']
        """
        kinds = {(a.session_id, a.agent_id): a.agent_type for a in self.agents}
        ids: dict[str, set[str]] = {}
        for key in [(a.session_id, a.agent_id) for a in self.agents] + [(h.session_id, h.agent_id)
                                                                          for h in self.hop_list]:
            ids.setdefault(key[0], set()).add(key[1])
        names = {}
        for sid, agents in ids.items():
            for agent in agents:
                kind = kinds.get((sid, agent))
                short = agent if agent == MAIN_AGENT else _unique_prefix(agent, agents - {agent})
                names[sid, agent] = short if kind is None else f"{short}({kind})"
        return names

    def graph(self) -> nx.DiGraph[str]:
        """The call graph: one node per hop (attributes of the hop), one edge per dependency."""
        from agentgraph.graph import build_graph

        return build_graph(self)

    def coarsened(self, factor: int) -> Trace:
        """The same trace at block size ``block_size * factor`` (exact, see :func:`coarsen`)."""
        hops = tuple(
            _replace_hashes(h, coarsen(h.hash_ids, factor, h.prompt_tokens, self.block_size))
            for h in self.hop_list
        )
        return Trace(hops, self.edges, self.agents, self.block_size * factor, dict(self.meta),
                     dict(self.schemas))

    def summary(self) -> dict[str, int]:
        """Counts and token totals over the whole trace (the ``inspect --json`` numbers)."""
        usages = [h.usage for h in self.hop_list if h.usage is not None]
        return {
            "sessions": len(self.sessions()),
            "agents": len({(h.session_id, h.agent_id) for h in self.hop_list}),
            "llm_hops": len(self.hop_list),
            "tool_calls": sum(len(h.tool_calls) for h in self.hop_list),
            "edges": len(self.edges),
            "prompt_tokens": sum(h.prompt_tokens for h in self.hop_list),
            "new_tokens": sum(h.new_tokens for h in self.hop_list),
            "output_tokens": sum(h.output_tokens for h in self.hop_list),
            "api_input_tokens": sum(u.input_tokens for u in usages),
            "api_cache_read_tokens": sum(u.cache_read_tokens for u in usages),
            "api_cache_creation_tokens": sum(u.cache_creation_tokens for u in usages),
            "hops_with_usage": len(usages),
        }


def _unique_prefix(agent_id: str, others: set[str]) -> str:
    for n in range(AGENT_ID_PREFIX, len(agent_id)):
        if not any(o.startswith(agent_id[:n]) for o in others):
            return agent_id[:n]
    return agent_id


def _hop_row(h: Hop, agent_name: str) -> tuple[object, ...]:
    u = h.usage
    return (
        h.hop_id, h.session_id, h.agent_id, agent_name, h.index, h.model, h.start_s, h.end_s, h.latency_s,
        h.prompt_tokens, h.shared_prefix_tokens, h.new_tokens, h.output_tokens,
        None if u is None else u.input_tokens,
        None if u is None else u.cache_read_tokens,
        None if u is None else u.cache_creation_tokens,
        len(h.hash_ids), len(h.tool_calls), [t.name for t in h.tool_calls], h.tool_wait_s,
        h.stop_reason, h.parse_us, h.validate_us, h.assemble_us,
    )


def _replace_hashes(hop: Hop, hash_ids: Sequence[int]) -> Hop:
    from dataclasses import replace

    return replace(hop, hash_ids=tuple(hash_ids))
