"""Reading a session's lines: one pass over each file into :class:`~.records._SessionLines`.

:class:`_LineReader` dispatches on the line ``type`` (shapes, blobs and requests of the current
format; ``user`` / ``assistant`` lines of both; the known types that carry no message), assigns
1.0.x sidechain lines to their threads, records the SHA-256 of every transcript message as tail
hashes name it, and checks the fields it relies on (:func:`_check_usage`, :func:`_check_request`):
a line that fails a check becomes a warning and is skipped.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

from agentgraph.errors import ImportIssue, IssueKind
from agentgraph.model import MAIN_AGENT
from agentgraph.schemas import tool_schemas
from agentgraph.sources.claude_code.records import _AgentLines, _Response, _SessionLines
from agentgraph.sources.jsonl import MAX_TOKENS, as_int, parse_time, read_records, token_count
from agentgraph.tokens import canonical_json, estimate_tokens
from agentgraph.units import plain_unit

__all__: list[str] = []  # internal to the package


_SKIPPED_TYPES = frozenset({
    "summary", "system", "attachment", "queue-operation", "last-prompt", "atis-latch",
    "tools-used", "cost-state", "file-history-snapshot", "custom-title", "tag",
})


class _LineReader:
    """Reads the lines of a session's files into :class:`_SessionLines`."""

    def __init__(self, session: _SessionLines, issues: list[ImportIssue]) -> None:
        self.s = session
        self.issues = issues
        self.sidechain_root: dict[str, str] = {}
        self.sidechains = 0
        self.skipped: dict[str, int] = {}
        self.path = ""
        self.lineno = 0

    def read_file(self, path: Path, file_agent: str | None) -> None:
        self.path = str(path)
        for lineno, rec in read_records(path, self.issues):
            self.lineno = lineno
            try:
                self._line(rec, file_agent)
            except (TypeError, ValueError, AttributeError, KeyError) as exc:
                self.issues.append(ImportIssue(str(path), lineno, f"unusable {rec.get('type')!r} line "
                                               f"({type(exc).__name__}: {exc}); skipped",
                                               IssueKind.UNUSABLE_LINE))
        for kind, count in sorted(self.skipped.items()):
            self.issues.append(ImportIssue(str(path), None,
                                           f"{count} line(s) of unknown type {kind!r} skipped",
                                           IssueKind.UNKNOWN_LINE_TYPE))
        self.skipped.clear()

    def _agent_id(self, rec: dict[str, Any], file_agent: str | None) -> str:
        if file_agent is not None:
            return file_agent
        if not rec.get("isSidechain"):
            return MAIN_AGENT
        uuid, parent = rec.get("uuid"), rec.get("parentUuid")
        root = self.sidechain_root.get(parent) if isinstance(parent, str) else None
        if root is None:
            self.sidechains += 1
            root = f"sidechain-{self.sidechains}"
        if isinstance(uuid, str):
            self.sidechain_root[uuid] = root
        return root

    def _line(self, rec: dict[str, Any], file_agent: str | None) -> None:
        kind = rec.get("type")
        if kind == "api-request-shape":
            self._shape(rec)
        elif kind == "api-request-blob":
            h, msg = rec["hash"], rec["message"]
            self.s.blob_sizes[str(h)] = estimate_tokens(canonical_json(msg))
            if self.s.keep_content:
                self.s.contents[str(h)] = msg
        elif kind == "api-request":
            _check_request(rec)
            agent = self.s.agent(self._agent_id(rec, file_agent))
            if rec["id"] not in agent.request_ids:
                agent.request_ids.add(rec["id"])
                agent.requests.append(rec)
        elif kind == "assistant":
            self._assistant(rec, self.s.agent(self._agent_id(rec, file_agent)))
        elif kind == "user":
            self._user(rec, self.s.agent(self._agent_id(rec, file_agent)))
        elif kind not in _SKIPPED_TYPES:
            self.skipped[str(kind)] = self.skipped.get(str(kind), 0) + 1
        elif isinstance(rec.get("uuid"), str):  # system/attachment lines are links of the chain
            self._node(rec, self.s.agent(self._agent_id(rec, file_agent)), None,
                       parse_time(rec.get("timestamp")))

    def _shape(self, rec: dict[str, Any]) -> None:
        shape = rec["shape"]
        units = [plain_unit(t) for t in shape.get("tools") or ()]
        units += [plain_unit(b) for b in shape.get("system") or ()]
        self.s.shapes[str(rec["shapeHash"])] = units
        self.s.shape_tools[str(rec["shapeHash"])] = tool_schemas(shape.get("tools"), self.s.schemas)
        if self.s.keep_content:
            self.s.shape_bodies[str(rec["shapeHash"])] = shape

    def _user(self, rec: dict[str, Any], agent: _AgentLines) -> None:
        message = rec["message"]
        t = parse_time(rec.get("timestamp"))
        content = message.get("content")
        if agent.root_text is None and rec.get("parentUuid") is None:
            agent.root_text = _text_of(content)
            if agent.root_text.strip() == "Warmup":
                self.s.warmups.add(agent.agent_id)
        result = rec.get("toolUseResult")
        agent_run = result.get("agentId") if isinstance(result, dict) else None
        for block in content if isinstance(content, list) else ():
            if isinstance(block, dict) and block.get("type") == "tool_result":
                tool_use_id = str(block.get("tool_use_id"))
                # the API's default: a tool_result without is_error is a success
                self.s.results[tool_use_id] = (t, block.get("is_error") is True)
                if isinstance(agent_run, str):
                    self.s.result_agent[agent_run] = tool_use_id
        unit = self._known({"role": message.get("role", "user"), "content": content})
        if _all_results(content):
            # parallel tool results are separate lines but one message on the wire
            agent.pending_results.extend(content)
            if len(agent.pending_results) > len(content):
                self._known({"role": "user", "content": list(agent.pending_results)})
        self._node(rec, agent, unit, t)

    def _known(self, message: dict[str, Any]) -> tuple[bytes, int]:
        """Record a transcript message's SHA-256 (as tail hashes name it); return its unit."""
        data = canonical_json(message)
        digest = hashlib.sha256(data).digest()
        est = estimate_tokens(data)
        self.s.blob_sizes.setdefault(digest.hex(), est)
        if self.s.keep_content:
            self.s.contents.setdefault(digest.hex(), message)
        return digest[:16], est

    def _assistant(self, rec: dict[str, Any], agent: _AgentLines) -> None:
        message = rec["message"]
        if message.get("model") == "<synthetic>":
            self._node(rec, agent, None, parse_time(rec.get("timestamp")))
            return
        if rec.get("uuid") in agent.nodes:
            raise ValueError(f"repeats line uuid {rec.get('uuid')}")
        t = parse_time(rec.get("timestamp"))
        if t is None:
            raise ValueError(f"'timestamp' must be an ISO-8601 time, got {rec.get('timestamp')!r}")
        _check_usage(message.get("usage"))
        mid, rid = message.get("id"), rec.get("requestId")
        key = str(rec.get("requestRef") or (f"{mid}:{rid}" if mid else rec.get("uuid")))
        resp = agent.responses.get(key)
        if resp is None:
            parent = rec.get("parentUuid")
            resp = _Response(parent if isinstance(parent, str) else None, t,
                             str(message.get("model") or "unknown"), None, 0, None, [], [], mid, rid,
                             [], self.path)
            agent.responses[key] = resp
        resp.end_s = max(resp.end_s, t)
        uuid = rec.get("uuid")
        if isinstance(uuid, str):
            resp.uuids.append(uuid)
        usage = message.get("usage")
        if isinstance(usage, dict):
            resp.output_tokens = max(resp.output_tokens, as_int(usage.get("output_tokens")))
            if t >= resp.usage_s:  # ties: the later line, as in a file written in order
                resp.usage, resp.usage_s, resp.line = usage, t, self.lineno
        stop = message.get("stop_reason")
        if stop and t >= resp.stop_s:
            resp.stop_reason, resp.stop_s = stop, t
        agent.pending_results.clear()
        for block in message.get("content") or ():
            if isinstance(block, dict):
                resp.blocks.append(block)
                resp.block_times.append(t)
        unit = self._known({"role": "assistant", "content": message.get("content")})
        self._node(rec, agent, unit, t)

    def _node(self, rec: dict[str, Any], agent: _AgentLines,
              unit: tuple[bytes, int] | None, t: float | None) -> None:
        uuid = rec.get("uuid")
        if isinstance(uuid, str):
            parent = rec.get("parentUuid")
            agent.nodes[uuid] = (parent if isinstance(parent, str) else None, unit, t)


_USAGE_FIELDS = ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                 "output_tokens")


def _check_usage(usage: object) -> None:
    if usage is None:
        return
    if not isinstance(usage, dict):
        raise ValueError(f"'usage' must be an object, got {type(usage).__name__}")
    for name in _USAGE_FIELDS:
        value = usage.get(name)
        if value.__class__ is not int or not 0 <= value <= MAX_TOKENS:  # fast path: plain ints
            token_count(value, f"usage.{name}")  # raises with the reason, or accepts None/7.0
    split = usage.get("cache_creation")
    if isinstance(split, dict):
        for name in ("ephemeral_5m_input_tokens", "ephemeral_1h_input_tokens"):
            value = split.get(name)
            if value.__class__ is not int or not 0 <= value <= MAX_TOKENS:
                token_count(value, f"usage.cache_creation.{name}")


def _check_request(rec: dict[str, Any]) -> None:
    tail, keep = rec.get("tail"), rec.get("keep", 0)
    if not isinstance(rec.get("id"), str):
        raise ValueError("'id' must be a string")
    if not isinstance(tail, list) or not all(isinstance(h, str) for h in tail):
        raise ValueError("'tail' must be a list of hash strings")
    if not isinstance(keep, int) or isinstance(keep, bool) or keep < 0:
        raise ValueError("'keep' must be a non-negative integer")


def _all_results(content: Any) -> bool:
    return isinstance(content, list) and bool(content) and all(
        isinstance(b, dict) and b.get("type") == "tool_result" for b in content)


def _text_of(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = [b.get("text", "") for b in content or () if isinstance(b, dict)]
    return "\n".join(p for p in parts if isinstance(p, str))
