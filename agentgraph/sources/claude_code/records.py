"""The records the stages hand each other, and the response → call conversion both generations use.

:class:`_SessionLines` (with an :class:`_AgentLines` per agent and a :class:`_Response` per API
call) is what :mod:`.lines` collects from a session's files; :mod:`.current` and :mod:`.legacy`
turn it into :class:`_Call` lists (through :func:`_call`), which :mod:`.hops` sizes and hashes.
``agentgraph.sources.recording`` builds the same records from recordings (issue 20 will make these
shared types public).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import orjson

from agentgraph.model import Usage
from agentgraph.sources.jsonl import as_int

__all__: list[str] = []  # the package's own currency; see the package's __init__ for re-exports


@dataclass(slots=True)
class _Call:
    """One API call before its units are sized: ``units`` hold (key, estimate or None)."""

    agent_id: str
    start_s: float
    end_s: float
    model: str
    units: list[tuple[bytes, int | None]]
    usage: Usage | None
    output_tokens: int
    stop_reason: str | None
    request_id: str | None
    tool_uses: list[tuple[str, str, str, float]]  # (tool_use_id, name, input_json, emitted_s)
    tool_schemas: dict[str, str] = field(default_factory=dict)  # tool name -> schema id
    assemble_us: float | None = None
    path: str | None = None  # file and line of the usage it reports (for warnings)
    line: int | None = None


@dataclass(slots=True)
class _Response:
    """The assistant lines of one API call, merged the same way in any line order: usage and
    stop reason of the latest line that has them, the largest ``output_tokens``."""

    parent_uuid: str | None  # of the first line read; see _answered
    end_s: float
    model: str
    usage: dict[str, Any] | None
    output_tokens: int
    stop_reason: str | None
    blocks: list[dict[str, Any]]
    block_times: list[float]
    message_id: str | None
    request_id: str | None
    uuids: list[str]  # of its lines
    path: str
    line: int | None = None  # of the line its usage comes from
    usage_s: float = float("-inf")  # time of that line
    stop_s: float = float("-inf")  # time of the line its stop reason comes from


@dataclass(slots=True)
class _AgentLines:
    """What one agent's lines say, collected in a single pass."""

    agent_id: str
    requests: list[dict[str, Any]] = field(default_factory=list)
    request_ids: set[str] = field(default_factory=set)
    responses: dict[str, _Response] = field(default_factory=dict)  # call key -> response
    nodes: dict[str, tuple[str | None, tuple[bytes, int] | None, float | None]] = field(
        default_factory=dict)  # uuid -> (parent uuid, unit, time)
    root_text: str | None = None
    pending_results: list[Any] = field(default_factory=list)  # tool_result blocks since last call


@dataclass(slots=True)
class _SessionLines:
    """Everything one session's files say, keyed for linking."""

    session_id: str
    agents: dict[str, _AgentLines] = field(default_factory=dict)
    shapes: dict[str, list[tuple[bytes, int]]] = field(default_factory=dict)
    blob_sizes: dict[str, int] = field(default_factory=dict)  # sha256 hex -> estimate
    results: dict[str, tuple[float | None, bool | None]] = field(default_factory=dict)
    result_agent: dict[str, str] = field(default_factory=dict)  # agentId -> tool_use_id
    meta_spawn: dict[str, tuple[str | None, str | None]] = field(default_factory=dict)
    warmups: set[str] = field(default_factory=set)
    shape_tools: dict[str, dict[str, str]] = field(default_factory=dict)  # shape -> name -> schema id
    schemas: dict[str, Any] = field(default_factory=dict)  # schema id -> stripped input schema
    keep_content: bool = False  # keep shapes and messages to time request assembly
    shape_bodies: dict[str, dict[str, Any]] = field(default_factory=dict)
    contents: dict[str, Any] = field(default_factory=dict)  # sha256 hex -> message

    def agent(self, agent_id: str) -> _AgentLines:
        if agent_id not in self.agents:
            self.agents[agent_id] = _AgentLines(agent_id)
        return self.agents[agent_id]


def _usage(raw: dict[str, Any] | None, output_tokens: int) -> Usage | None:
    if raw is None:
        return None
    split_raw = raw.get("cache_creation")
    split: dict[str, Any] = split_raw if isinstance(split_raw, dict) else {}
    return Usage(
        input_tokens=as_int(raw.get("input_tokens")),
        cache_read_tokens=as_int(raw.get("cache_read_input_tokens")),
        cache_creation_tokens=as_int(raw.get("cache_creation_input_tokens")),
        output_tokens=output_tokens,
        cache_creation_5m_tokens=as_int(split.get("ephemeral_5m_input_tokens")),
        cache_creation_1h_tokens=as_int(split.get("ephemeral_1h_input_tokens")),
    )


def _tool_uses(resp: _Response) -> list[tuple[str, str, str, float]]:
    """Tool calls in the order the model emitted them (line time; ties in file order)."""
    calls = [
        (str(b.get("id")), str(b.get("name")), orjson.dumps(b.get("input", {})).decode(), t)
        for b, t in zip(resp.blocks, resp.block_times, strict=True)
        if b.get("type") == "tool_use"
    ]
    return sorted(calls, key=lambda c: c[3])


def _call(agent_id: str, resp: _Response, start: float, units: list[tuple[bytes, int | None]],
          model: str, request_id: str | None) -> _Call:
    return _Call(agent_id, start, max(start, resp.end_s), model, units,
                 _usage(resp.usage, resp.output_tokens), resp.output_tokens, resp.stop_reason,
                 request_id, _tool_uses(resp), path=resp.path, line=resp.line)
