"""Files written by ``agentgraph record`` → trace model.

Each record holds the exact request body, so a hop's units are the request itself (tools,
system blocks, messages, ``cache_control`` markers stripped), sized to the usage the response
reported. Sessions and agents come from the ``x-claude-code-session-id`` /
``x-claude-code-agent-id`` headers; a sub-agent is linked to the parent's ``Agent``/``Task``
tool call whose prompt its first request carries. A tool call ends when the first later request
carrying its ``tool_result`` was sent. Lines are read as :class:`~agentgraph.record.CallRecord`
(versions 1 and 2); records of other requests (kind ``request``) and ``count_tokens`` calls are
skipped, truncated and failed calls are reported.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import partial
from pathlib import Path
from typing import Any

import orjson

from agentgraph.costs import time_us
from agentgraph.errors import ImportIssue, IssueKind
from agentgraph.model import MAIN_AGENT, Trace
from agentgraph.record import FORMAT, VERSION, CallRecord, RecordKind, redact, text_hash
from agentgraph.schemas import tool_schemas
from agentgraph.sources.claude_code import (
    _SPAWN_TOOLS,
    ClaudeCodeImporter,
    _Call,
    _check_usage,
    _SessionLines,
    _usage,
)
from agentgraph.sources.jsonl import as_int, read_records, token_count

__all__ = ["read_recording"]


def read_recording(path: Path, issues: list[ImportIssue], importer: ClaudeCodeImporter) -> Iterator[Trace]:
    """One trace per recorded session, in order of each session's first call."""
    sessions: dict[str, list[CallRecord]] = {}
    header_seen = False
    for lineno, obj in read_records(path, issues):
        if not header_seen:
            header_seen = True
            if obj.get("format") == FORMAT:
                if obj.get("version") not in range(1, VERSION + 1):
                    issues.append(ImportIssue(str(path), lineno, f"{FORMAT} version {obj.get('version')!r} "
                                              f"is not one this reader knows (1..{VERSION}); reading on",
                                              IssueKind.RECORDING_HEADER))
                continue
            issues.append(ImportIssue(str(path), lineno, f"no {FORMAT} header; reading on", IssueKind.RECORDING_HEADER))
        if "count_tokens" in str(obj.get("path")) or obj.get("kind") == RecordKind.REQUEST:
            continue  # token counting, or not a Messages API call at all
        if obj.get("kind") != RecordKind.CALL:
            issues.append(ImportIssue(str(path), lineno, f"unknown record kind {obj.get('kind')!r}; skipped",
                                      IssueKind.UNKNOWN_RECORD))
            continue
        try:
            rec = CallRecord.from_json(obj)
        except ValueError as exc:
            issues.append(ImportIssue(str(path), lineno, f"call not imported: {exc}", IssueKind.CALL_SKIPPED))
            continue
        problem = _problem(rec)
        if problem:
            issues.append(ImportIssue(str(path), lineno, f"call not imported: {problem}", IssueKind.CALL_SKIPPED))
            continue
        sid = str(rec.request_headers.get("x-claude-code-session-id") or "recording")
        sessions.setdefault(sid, []).append(rec)
    if "recording" in sessions:
        issues.append(ImportIssue(str(path), None, f"{len(sessions['recording'])} call(s) carry no "
                                  "x-claude-code-session-id header: they are read as one session "
                                  "'recording' with one agent, in time order", IssueKind.NO_SESSION_HEADER))
    for sid, records in sessions.items():
        yield _session(sid, records, str(path), issues, importer)


def _problem(rec: CallRecord) -> str | None:
    if rec.status != 200:
        return f"status {rec.status} ({rec.error or 'upstream error'})"
    if rec.truncated:
        return ("truncated: a body was larger than the recorder kept (--max-record-bytes) or had more "
                "JSON values than it parses")
    request, response = rec.request, rec.response
    if not isinstance(request, dict) or not isinstance(request.get("messages"), list):
        return "request body is not a Messages API request"
    if rec.error or rec.stream_error:
        return f"the call failed mid-way ({rec.error or rec.stream_error})"
    if not isinstance(response, dict) or not isinstance(response.get("usage"), dict) \
            or (rec.events is not None and response.get("stop_reason") is None):
        return "no complete response message (stream cut or error event)"
    return None


def _session(sid: str, records: list[CallRecord], path: str, issues: list[ImportIssue],
             importer: ClaudeCodeImporter) -> Trace:
    s = _SessionLines(sid)
    calls: dict[str, list[_Call]] = {}
    shared: set[bytes] = set()
    first_texts: dict[str, set[str]] = {}
    prompts: dict[str, str] = {}  # spawning tool_use id -> hash of its prompt
    for rec in sorted(records, key=lambda r: (r.t_request_s, r.seq)):
        agent = str(rec.request_headers.get("x-claude-code-agent-id") or MAIN_AGENT)
        try:
            # one path for both kinds: a full record is read through its redacted view
            full = not rec.request.get("redacted")
            view = redact(rec) if full else rec
            call, fixed = _call(agent, rec, view, prompts)
            if full:  # a redacted record has no schemas and no body to serialize
                call.tool_schemas = tool_schemas(rec.request.get("tools"), s.schemas)
                if importer.measure_cpu:
                    call.assemble_us = time_us(partial(orjson.dumps, rec.request))
        except (ValueError, TypeError, KeyError, AttributeError) as exc:
            issues.append(ImportIssue(path, None, f"call {rec.seq}: unusable ({exc!r}); skipped",
                                      IssueKind.CALL_SKIPPED))
            continue
        first_texts.setdefault(agent, _user_texts(view.request["messages"]))
        _note_results(s, view.request["messages"], rec.t_request_s)
        shared.update(fixed)
        calls.setdefault(agent, []).append(call)
    _link_sub_agents(s, calls, first_texts, prompts)
    return importer.assemble(s, calls, frozenset(shared), path, issues)


def _units(refs: Any) -> list[tuple[bytes, int]]:
    if not isinstance(refs, list):
        raise ValueError("redacted units must be a list")
    return [(bytes.fromhex(r["key"]), token_count(r["tokens_est"], "tokens_est")) for r in refs]


def _call(agent: str, rec: CallRecord, view: CallRecord,
          prompts: dict[str, str]) -> tuple[_Call, list[bytes]]:
    fixed = _units(view.request["fixed"])
    units: list[tuple[bytes, int | None]] = [*fixed, *_units(view.request["messages"])]
    response = rec.response
    _check_usage(response["usage"])
    usage = _usage(response["usage"], as_int(response["usage"].get("output_tokens")))
    assert usage is not None, "usage was checked to be an object"
    end = rec.t_last_byte_s or rec.t_request_s
    tools = []
    for block in response.get("content") or ():
        if isinstance(block, dict) and block.get("type") == "tool_use":
            tid, inp = str(block.get("id")), block.get("input")
            full = not block.get("redacted")
            tools.append((tid, str(block.get("name")), orjson.dumps(inp if full else {}).decode(), end))
            prompt = inp.get("prompt") if full and isinstance(inp, dict) else None
            prompts[tid] = text_hash(prompt) if isinstance(prompt, str) else str(block.get("prompt_sha256", ""))
    request = rec.request
    call = _Call(agent, rec.t_request_s, end, str(request.get("model") or response.get("model")),
                 units, usage, usage.output_tokens, response.get("stop_reason"),
                 str(rec.response_headers.get("request-id") or rec.seq), tools)
    return call, [k for k, _ in fixed]


def _note_results(s: _SessionLines, refs: list[Any], t: float) -> None:
    for ref in refs:
        for tool_use_id, is_error in ref.get("tool_results") or ():
            s.results.setdefault(str(tool_use_id), (t, is_error is True))


def _user_texts(refs: list[Any]) -> set[str]:
    return {h for ref in refs if ref.get("role") == "user" for h in ref.get("text_sha256") or ()}


def _link_sub_agents(s: _SessionLines, calls: dict[str, list[_Call]], first_texts: dict[str, set[str]],
                     prompts: dict[str, str]) -> None:
    """A sub-agent's spawning call is the parent's Agent/Task call whose prompt is a text block
    of the sub-agent's first request."""
    spawns = [(tid, name) for cs in calls.values() for c in cs for tid, name, _, _ in c.tool_uses
              if name in _SPAWN_TOOLS]
    taken: set[str] = set()
    for agent in calls:
        s.agent(agent)
        if agent == MAIN_AGENT:
            continue
        for tid, _ in spawns:
            if tid not in taken and prompts.get(tid) in first_texts.get(agent, set()):
                taken.add(tid)
                s.meta_spawn[agent] = (tid, None)
                break
