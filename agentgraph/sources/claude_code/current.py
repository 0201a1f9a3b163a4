"""Calls of the current format (2.1.3xx): each ``api-request`` line names its request exactly.

A request's messages are the first ``keep`` messages of its ``base`` request plus its ``tail``
hashes, behind the units of its shape (tools, then system). A hash is sized from its blob line or
the transcript message with the same SHA-256; one whose content is missing still fixes the prefix
structure and is sized from the reported usage.
"""

from __future__ import annotations

import hashlib
from typing import Any

import orjson

from agentgraph.costs import time_us
from agentgraph.errors import ImportIssue, IssueKind
from agentgraph.sources.claude_code.records import _AgentLines, _Call, _call, _SessionLines
from agentgraph.sources.jsonl import as_int, parse_time
from agentgraph.tokens import canonical_json, estimate_tokens, unit_key

__all__: list[str] = []  # internal to the package


def _current_calls(s: _SessionLines, agent: _AgentLines, path: str,
                   issues: list[ImportIssue]) -> list[_Call]:
    for merged in agent.responses.values():
        if len(merged.blocks) > 1:  # one message on the wire, one line per block in the transcript
            message = {"role": "assistant", "content": merged.blocks}
            data = canonical_json(message)
            digest = hashlib.sha256(data).hexdigest()
            s.blob_sizes.setdefault(digest, estimate_tokens(data))
            if s.keep_content:
                s.contents.setdefault(digest, message)
    messages: dict[str, list[str]] = {}
    calls: list[_Call] = []
    missing: set[str] = set()
    problems: dict[str, int] = {}
    for req in agent.requests:
        rid = str(req.get("id"))
        messages[rid] = _request_messages(req, messages, problems)
        resp = agent.responses.get(rid)
        if resp is None:
            _count(problems, "got no response line (interrupted, failed, or the line is lost); not hops")
            continue
        start = parse_time(req.get("timestamp"))
        if start is None:
            _count(problems, "without a valid timestamp (start taken from the response)")
            start = min(resp.block_times, default=resp.end_s)
        shape = s.shapes.get(str(req.get("shapeHash")))
        units: list[tuple[bytes, int | None]]
        if shape is None:
            _count(problems, "whose shape (system + tools) is missing; sized from usage")
            units = [(unit_key(str(req.get("shapeHash")).encode()), None)]
        else:
            units = list(shape)
        for h in messages[rid]:
            size = s.blob_sizes.get(h)
            if size is None:
                missing.add(h)
            units.append((_tail_key(h), size))
        params_raw = req.get("params")
        params: dict[str, Any] = params_raw if isinstance(params_raw, dict) else {}
        call = _call(agent.agent_id, resp, start, units, str(params.get("model") or resp.model), rid)
        call.tool_schemas = s.shape_tools.get(str(req.get("shapeHash")), {})
        if s.keep_content:
            call.assemble_us = _assemble_us(s, req, params, messages[rid])
        calls.append(call)
    orphans = len(set(agent.responses) - agent.request_ids)
    if orphans:
        _count(problems, "missing: responses name them but no api-request line exists; skipped", orphans)
    for what, n in sorted(problems.items()):
        issues.append(ImportIssue(path, None, f"{n} request(s) of agent {agent.agent_id!r} {what}",
                                  IssueKind.INCOMPLETE_REQUEST))
    if missing:
        issues.append(ImportIssue(path, None, f"{len(missing)} request message(s) of agent "
                                  f"{agent.agent_id!r} not found in the transcript; sized from usage",
                                  IssueKind.MISSING_MESSAGE))
    return calls


def _assemble_us(s: _SessionLines, req: dict[str, Any], params: dict[str, Any],
                 hashes: list[str]) -> float | None:
    """Time to serialize the request as sent (None when part of it is not in the transcript)."""
    shape = s.shape_bodies.get(str(req.get("shapeHash")))
    if shape is None or any(h not in s.contents for h in hashes):
        return None
    body = {**params, "system": shape.get("system"), "tools": shape.get("tools"),
            "messages": [s.contents[h] for h in hashes]}
    return time_us(lambda: orjson.dumps(body))


def _count(problems: dict[str, int], what: str, n: int = 1) -> None:
    problems[what] = problems.get(what, 0) + n


def _request_messages(req: dict[str, Any], messages: dict[str, list[str]],
                      problems: dict[str, int]) -> list[str]:
    """Message hashes of a request: the first ``keep`` of its base's, then its tail."""
    base, keep = req.get("base"), as_int(req.get("keep"))
    tail = [str(h) for h in req.get("tail") or ()]
    if base is None:
        if keep:
            _count(problems, "with 'keep' but no 'base'; only their tail is known")
        return tail
    kept = messages.get(str(base))
    if kept is None:
        _count(problems, "whose base request is missing; only their tail is known")
        return tail
    if keep > len(kept):
        _count(problems, "keeping more messages than their base has; kept what exists")
    return kept[:keep] + tail


def _tail_key(h: str) -> bytes:
    """The unit key of a tail hash: its first 16 bytes (a malformed one is hashed instead)."""
    try:
        raw = bytes.fromhex(h)
    except ValueError:
        raw = b""
    return raw[:16] if len(raw) >= 16 else unit_key(h.encode())
