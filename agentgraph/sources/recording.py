"""Files written by ``agentgraph record`` → trace model.

Each record holds the exact request body, so a hop's units are the request itself (tools,
system blocks, messages, ``cache_control`` markers stripped), sized to the usage the response
reported. Sessions and agents come from the ``x-claude-code-session-id`` /
``x-claude-code-agent-id`` headers; a sub-agent is linked to the parent's ``Agent``/``Task``
tool call whose prompt its first request carries. A tool call ends when the first later request
carrying its ``tool_result`` was sent.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

from agentgraph.errors import ImportIssue
from agentgraph.model import MAIN_AGENT, Trace
from agentgraph.sources.claude_code import ClaudeCodeImporter, _Call, _check_usage, _SessionLines, _usage
from agentgraph.sources.jsonl import as_int, read_records
from agentgraph.tokens import canonical_json
from agentgraph.units import request_units

__all__ = ["read_recording"]

FORMAT = "agentgraph.record"
_SPAWN_TOOLS = frozenset({"Agent", "Task"})


def read_recording(path: Path, issues: list[ImportIssue], importer: ClaudeCodeImporter) -> Iterator[Trace]:
    """One trace per recorded session, in order of each session's first call."""
    sessions: dict[str, list[dict[str, Any]]] = {}
    header_seen = False
    for lineno, rec in read_records(path, issues):
        if not header_seen:
            header_seen = True
            if rec.get("format") == FORMAT:
                continue
            issues.append(ImportIssue(str(path), lineno, f"no {FORMAT} header; reading on"))
        if "count_tokens" in str(rec.get("path")):
            continue  # token counting, not an LLM call
        if rec.get("kind") != "call":
            issues.append(ImportIssue(str(path), lineno, f"unknown record kind {rec.get('kind')!r}; skipped"))
            continue
        problem = _problem(rec)
        if problem:
            issues.append(ImportIssue(str(path), lineno, f"call not imported: {problem}"))
            continue
        sid = str(rec["request_headers"].get("x-claude-code-session-id") or "recording")
        sessions.setdefault(sid, []).append(rec)
    for sid, records in sessions.items():
        yield _session(sid, records, str(path), issues, importer)


def _problem(rec: dict[str, Any]) -> str | None:
    if rec.get("status") != 200:
        return f"status {rec.get('status')} ({rec.get('error') or 'upstream error'})"
    request, response = rec.get("request"), rec.get("response")
    if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
        return "request body is not a Messages API request"
    if not isinstance(response, dict) or not isinstance(response.get("usage"), dict):
        return "no complete response message (stream cut or error event)"
    if not isinstance(rec.get("request_headers"), dict) or not isinstance(rec.get("t_request_s"), int | float):
        return "missing request headers or time"
    return None


def _session(sid: str, records: list[dict[str, Any]], path: str, issues: list[ImportIssue],
             importer: ClaudeCodeImporter) -> Trace:
    s = _SessionLines(sid)
    calls: dict[str, list[_Call]] = {}
    shared: set[bytes] = set()
    first_text: dict[str, str] = {}
    for rec in sorted(records, key=lambda r: (r["t_request_s"], r.get("seq", 0))):
        agent = str(rec["request_headers"].get("x-claude-code-agent-id") or MAIN_AGENT)
        request = rec["request"]
        first_text.setdefault(agent, _user_text(request["messages"]))
        _note_results(s, request["messages"], float(rec["t_request_s"]))
        try:
            call, tool_units = _call(agent, rec)
        except ValueError as exc:
            issues.append(ImportIssue(path, None, f"call {rec.get('seq')}: {exc}; skipped"))
            continue
        shared.update(tool_units)
        calls.setdefault(agent, []).append(call)
    _link_sub_agents(s, calls, first_text)
    return importer.assemble(s, calls, frozenset(shared), path, issues)


def _call(agent: str, rec: dict[str, Any]) -> tuple[_Call, list[bytes]]:
    request, response = rec["request"], rec["response"]
    fixed, messages = request_units(request)
    units: list[tuple[bytes, int | None]] = [*fixed, *messages]
    _check_usage(response["usage"])
    usage = _usage(response["usage"], as_int(response["usage"].get("output_tokens")))
    assert usage is not None
    end = float(rec.get("t_last_byte_s") or rec["t_request_s"])
    tools = [(str(b.get("id")), str(b.get("name")), canonical_json(b.get("input", {})).decode(), end)
             for b in response.get("content") or () if isinstance(b, dict) and b.get("type") == "tool_use"]
    call = _Call(agent, float(rec["t_request_s"]), end, str(request.get("model") or response.get("model")),
                 units, usage, usage.output_tokens, response.get("stop_reason"),
                 str(rec["response_headers"].get("request-id") or rec.get("seq")), tools)
    return call, [k for k, _ in fixed]


def _note_results(s: _SessionLines, messages: list[Any], t: float) -> None:
    for message in messages:
        content = message.get("content") if isinstance(message, dict) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and block.get("type") == "tool_result":
                s.results.setdefault(str(block.get("tool_use_id")), (t, block.get("is_error") is True))


def _user_text(messages: list[Any]) -> str:
    texts = []
    for message in messages:
        if isinstance(message, dict) and message.get("role") == "user":
            content = message.get("content")
            if isinstance(content, str):
                texts.append(content)
            for block in content if isinstance(content, list) else ():
                if isinstance(block, dict) and isinstance(block.get("text"), str):
                    texts.append(block["text"])
    return "\n".join(texts)


def _link_sub_agents(s: _SessionLines, calls: dict[str, list[_Call]], first_text: dict[str, str]) -> None:
    """A sub-agent's spawning call is the parent's Agent/Task call whose prompt its first request carries."""
    import orjson

    spawns = [(tid, orjson.loads(inp)) for cs in calls.values() for c in cs
              for tid, name, inp, _ in c.tool_uses if name in _SPAWN_TOOLS]
    taken: set[str] = set()
    for agent in calls:
        s.agent(agent)
        if agent == MAIN_AGENT:
            continue
        for tid, inp in spawns:
            prompt = str(inp.get("prompt", "")).strip() if isinstance(inp, dict) else ""
            if tid not in taken and prompt and prompt in first_text.get(agent, ""):
                taken.add(tid)
                kind = inp.get("subagent_type")
                s.meta_spawn[agent] = (tid, kind if isinstance(kind, str) else None)
                break
