"""Linking one session's hops: agents with their spawning tool calls, and the edges between hops.

A sub-agent's parent is found from its meta file's ``toolUseId``, else the tool result naming its
``agentId``, else (1.0.x sidechains) the ``Task``/``Agent`` call whose prompt is its first message;
Warmup sidechains without one become agents of type ``warmup``. Edges: ``sequence`` within an
agent, ``spawn`` from the spawning hop, ``join`` to the first parent hop after the result.
"""

from __future__ import annotations

from itertools import pairwise
from typing import Any

import orjson

from agentgraph.model import MAIN_AGENT, Agent, Edge, EdgeKind, Hop
from agentgraph.sources.claude_code.records import _SessionLines

__all__: list[str] = []  # internal to the package


_SPAWN_TOOLS = frozenset({"Agent", "Task"})


def _agents(s: _SessionLines, by_agent: dict[str, list[Hop]]) -> list[Agent]:
    spawner: dict[str, tuple[str, str, str | None]] = {}  # tool_use_id -> (agent, name, type)
    prompts: list[tuple[str, str, str]] = []  # (prompt, tool_use_id, agent) of Task/Agent calls
    for agent_id, hops in by_agent.items():
        for hop in hops:
            for t in hop.tool_calls:
                if t.name in _SPAWN_TOOLS:
                    inp = _loads(t.input_json)
                    spawner[t.tool_use_id] = (agent_id, t.name, _opt_str(inp.get("subagent_type")))
                    prompts.append((str(inp.get("prompt", "")), t.tool_use_id, agent_id))
    agents = []
    for agent_id in by_agent:
        if agent_id == MAIN_AGENT:
            agents.append(Agent(s.session_id, MAIN_AGENT))
            continue
        meta_tool, meta_type = s.meta_spawn.get(agent_id, (None, None))
        tool_id = meta_tool or s.result_agent.get(agent_id) or _by_prompt(s, agent_id, prompts)
        parent = spawner.get(tool_id) if tool_id else None
        agent_type = meta_type or (parent[2] if parent else None)
        if agent_id in s.warmups and parent is None:
            agent_type = agent_type or "warmup"
        agents.append(Agent(s.session_id, agent_id, agent_type, parent[0] if parent else None,
                            tool_id if parent else None))
    return _without_cycles(agents)


def _without_cycles(agents: list[Agent]) -> list[Agent]:
    """Drop parent links that would make an agent its own ancestor (corrupt meta files)."""
    from dataclasses import replace

    parent = {a.agent_id: a.parent_agent_id for a in agents}
    out = []
    for a in agents:
        seen, cursor = {a.agent_id}, a.parent_agent_id
        while cursor is not None and cursor not in seen:
            seen.add(cursor)
            cursor = parent.get(cursor)
        out.append(a if cursor is None else replace(a, parent_agent_id=None, spawn_tool_use_id=None))
        if cursor is not None:
            parent[a.agent_id] = None
    return out


def _by_prompt(s: _SessionLines, agent_id: str, prompts: list[tuple[str, str, str]]) -> str | None:
    text = (s.agents[agent_id].root_text or "").strip()
    for prompt, tool_id, _ in prompts:
        if prompt.strip() and prompt.strip() == text:
            prompts.remove((prompt, tool_id, _))
            return tool_id
    return None


def _loads(text: str) -> dict[str, Any]:
    value = orjson.loads(text)
    return value if isinstance(value, dict) else {}


def _opt_str(v: object) -> str | None:
    return v if isinstance(v, str) else None


def _edges(s: _SessionLines, agents: list[Agent], by_agent: dict[str, list[Hop]]) -> list[Edge]:
    edges: list[Edge] = []
    for hops in by_agent.values():
        for a, b in pairwise(hops):
            edges.append(Edge(a.hop_id, b.hop_id, EdgeKind.SEQUENCE, _gap(a, b), b.new_tokens))
    for agent in agents:
        child = by_agent.get(agent.agent_id)
        parent = by_agent.get(agent.parent_agent_id or "")
        if not child or not parent or agent.spawn_tool_use_id is None:
            continue
        src = next((h for h in parent if any(t.tool_use_id == agent.spawn_tool_use_id
                                             for t in h.tool_calls)), None)
        if src is not None:
            edges.append(Edge(src.hop_id, child[0].hop_id, EdgeKind.SPAWN, _gap(src, child[0]),
                              child[0].prompt_tokens))
        done = s.results.get(agent.spawn_tool_use_id, (None, None))[0]
        ready = max(child[-1].end_s, done if done is not None else child[-1].end_s)
        dst = next((h for h in parent if h.start_s >= ready and (src is None or h.index > src.index)), None)
        if dst is not None:
            edges.append(Edge(child[-1].hop_id, dst.hop_id, EdgeKind.JOIN, _gap(child[-1], dst), 0))
    return edges


def _gap(a: Hop, b: Hop) -> float:
    return max(0.0, b.start_s - a.end_s)
