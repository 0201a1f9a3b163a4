"""Claude Code transcripts → trace model, both generations of the format.

* **Current** (2.1.3xx): ``api-request`` lines name every request exactly: a shape (system +
  tools, ``api-request-shape``), the kept messages of a base request and the hashes of the
  appended messages (``tail``). The message behind a tail hash is an ``api-request-blob`` line or
  a message of the transcript itself (the CLI hashes ``{"role", "content"}`` as sorted compact
  JSON with SHA-256); the hash alone fixes the prefix structure, the content only sizes it.
* **Legacy**: requests are rebuilt from the ``parentUuid`` chain of user/assistant lines; one
  API call spans several assistant lines (one content block each) sharing ``message.id`` +
  ``requestId`` and is counted once, with the largest ``output_tokens`` of its lines. System
  prompt and tools are not recorded: an opaque per-agent *preamble* unit stands for them and is
  sized from the first call's reported usage.

Sessions are read one at a time (a session file plus its sub-agent files), so memory stays
bounded by the largest session, not the number of sessions.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson

from agentgraph.costs import time_us
from agentgraph.errors import ImportIssue
from agentgraph.model import MAIN_AGENT, Agent, Edge, EdgeKind, Hop, ToolCall, Trace, Usage
from agentgraph.schemas import tool_schemas
from agentgraph.sources.jsonl import (
    MAX_TOKENS,
    as_int,
    first_record,
    parse_time,
    read_records,
    time_range,
    token_count,
)
from agentgraph.tokens import (
    DEFAULT_BLOCK_SIZE,
    MAX_PROMPT_TOKENS,
    PrefixHasher,
    canonical_json,
    estimate_tokens,
    scale_counts,
    truncate_units,
    unit_key,
)
from agentgraph.units import plain_unit

_SKIPPED_TYPES = frozenset({
    "summary", "system", "attachment", "queue-operation", "last-prompt", "atis-latch",
    "tools-used", "cost-state", "file-history-snapshot", "custom-title", "tag",
})
_SPAWN_TOOLS = frozenset({"Agent", "Task"})


# --------------------------------------------------------------------------- discovery


@dataclass(slots=True)
class SessionFiles:
    """A session file and the files of its sub-agents (``meta`` is None before 2.1.x).

    ``span`` is (earliest, latest) timestamp of its lines, set by :func:`discover` (inf if none).
    """

    session_id: str
    main: Path | None
    agents: list[tuple[Path, Path | None]] = field(default_factory=list)
    span: tuple[float, float] = (float("inf"), float("inf"))

    def paths(self) -> list[Path]:
        return ([self.main] if self.main else []) + [p for p, _ in self.agents]


def discover(paths: Iterable[Path], issues: list[ImportIssue]) -> list[SessionFiles]:
    """Group transcript files into sessions: files, session dirs, project dirs or trees.

    All sources are discovered together and the result does not depend on their order: a file
    named twice (or a project inside a tree also given) is read once; of several copies of a
    session (same id, different directories) the one at the smallest path is read and the others
    are reported; sessions are ordered by :func:`_span` (earliest, then latest timestamp, whatever
    the order of the lines), then by id. Unreadable directories become issues.
    """
    found = _Found(issues)
    for path in paths:
        if path.is_file():
            found.project(path.parent, only=path)
        elif (path / "subagents").is_dir() and path.parent.is_dir():
            found.project(path.parent, only=path.parent / f"{path.name}.jsonl")
        elif path.is_dir():
            for project in _project_dirs(path, issues):
                found.project(project, only=None)
        else:
            issues.append(ImportIssue(str(path), None, "no such file or directory"))
    sessions = found.finish()
    for files in sessions:
        files.span = _span(files)
    return sorted(sessions, key=lambda f: (*f.span, f.session_id))


def _listing(directory: Path, pattern: str, issues: list[ImportIssue]) -> list[Path]:
    try:
        return sorted(directory.glob(pattern))
    except OSError as exc:
        issues.append(ImportIssue(str(directory), None, f"cannot list: {exc.strerror or exc}"))
        return []


def _foreign(path: Path) -> bool:
    """A file of another format (recording, native trace, Mooncake) inside a transcript tree."""
    rec = first_record(path)
    return rec is not None and ("format" in rec or "schema" in rec or "hash_ids" in rec)


def _project_dirs(root: Path, issues: list[ImportIssue]) -> Iterator[Path]:
    try:
        children = sorted(root.iterdir())
    except OSError as exc:
        issues.append(ImportIssue(str(root), None, f"cannot list: {exc.strerror or exc}; skipped"))
        return
    if any((p.suffix == ".jsonl" and not _foreign(p)) or (p / "subagents").is_dir() for p in children):
        yield root  # holds session files, or session dirs whose files are gone
        return
    for child in children:
        if child.is_dir() and child.name != "subagents":
            yield from _project_dirs(child, issues)


class _Found:
    """Candidate files, collected from every source, then resolved into sessions."""

    def __init__(self, issues: list[ImportIssue]) -> None:
        self.issues = issues
        self.seen: set[Path] = set()
        self.places: dict[str, set[Path]] = {}  # session -> project dirs holding it (or its dir)
        self.agent_files: dict[str, list[tuple[Path, Path]]] = {}  # session -> (project, file)

    def _new(self, path: Path) -> bool:
        real = path.resolve()
        if real in self.seen:
            return False
        self.seen.add(real)
        return True

    def project(self, project: Path, only: Path | None) -> None:
        only_agent = only is not None and only.name.startswith("agent-")
        if only is None:
            listed = [p for p in _listing(project, "*.jsonl", self.issues)
                      if not p.name.startswith("agent-") and not _foreign(p)]
            dirs = [d.parent.name for d in _listing(project, "*/subagents", self.issues)]
            sids = sorted({p.stem for p in listed} | set(dirs))
        else:
            sids = [] if only_agent else [only.stem]
        for sid in sids:
            self.places.setdefault(sid, set()).add(project)
            for agent_file in _listing(project / sid / "subagents", "agent-*.jsonl", self.issues):
                self._agent(sid, project, agent_file)
        loose = [only] if only_agent and only is not None else []
        if only is None or not only_agent:
            loose += _listing(project, "agent-*.jsonl", self.issues)
        for agent_file in loose:
            rec = first_record(agent_file)
            sid = str(rec.get("sessionId")) if rec and rec.get("sessionId") else agent_file.stem
            if only is None or agent_file == only or sid == only.stem:
                self._agent(sid, project, agent_file)

    def _agent(self, sid: str, project: Path, agent_file: Path) -> None:
        if self._new(agent_file):
            self.agent_files.setdefault(sid, []).append((project, agent_file))

    def finish(self) -> list[SessionFiles]:
        out = []
        for sid in sorted(set(self.places) | set(self.agent_files)):
            out.append(self._resolve(sid))
        return out

    def _resolve(self, sid: str) -> SessionFiles:
        places = sorted(self.places.get(sid, ()))
        with_file = [p for p in places if (p / f"{sid}.jsonl").is_file()]
        chosen: Path | None = (with_file or places)[0] if (with_file or places) else None
        for other in with_file[1:]:
            self.issues.append(ImportIssue(str(other / f"{sid}.jsonl"), None, f"session {sid} "
                                           f"is read from {with_file[0] / f'{sid}.jsonl'}; this copy is skipped"))
        main = chosen / f"{sid}.jsonl" if chosen is not None and chosen in with_file else None
        if chosen is not None and main is None:
            self.issues.append(ImportIssue(str(chosen / f"{sid}.jsonl"), None, "session file "
                                           "missing; importing its sub-agents only"))
        copies = set(places) - {chosen}
        agents = sorted((f for project, f in self.agent_files.get(sid, ()) if project not in copies),
                        key=lambda f: (f.name, str(f)))
        files = SessionFiles(sid, main)
        names: set[str] = set()
        for f in agents:
            if f.name in names:
                continue  # the same sub-agent file in two places
            names.add(f.name)
            meta = f.with_suffix(".meta.json")
            files.agents.append((f, meta if meta.is_file() else None))
        return files


def _span(files: SessionFiles) -> tuple[float, float]:
    """Earliest and latest timestamp of the session file (earliest of its sub-agents' files if it
    has none), over all lines: a resumed session copies the original's history (same earliest
    time) but ends later, so the original sorts first and keeps its calls in any line order."""
    inf = float("inf")
    main = time_range(files.main) if files.main is not None else None
    if main is not None:
        return main
    firsts = [span[0] for path, _ in files.agents if (span := time_range(path)) is not None]
    return (min(firsts, default=inf), inf)


# --------------------------------------------------------------------------- per-call records


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
                                               f"({type(exc).__name__}: {exc}); skipped"))
        for kind, count in sorted(self.skipped.items()):
            self.issues.append(ImportIssue(str(path), None,
                                           f"{count} line(s) of unknown type {kind!r} skipped"))
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


# --------------------------------------------------------------------------- calls per generation


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
        issues.append(ImportIssue(path, None, f"{n} request(s) of agent {agent.agent_id!r} {what}"))
    if missing:
        issues.append(ImportIssue(path, None, f"{len(missing)} request message(s) of agent "
                                  f"{agent.agent_id!r} not found in the transcript; sized from usage"))
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


def _legacy_calls(s: _SessionLines, agent: _AgentLines, owners: _CallOwners, path: str,
                  issues: list[ImportIssue]) -> list[_Call]:
    preamble = unit_key(f"legacy-preamble\0{s.session_id}\0{agent.agent_id}".encode())
    chains = _ChainCache(agent)
    calls: list[_Call] = []
    for key, resp in agent.responses.items():
        if resp.message_id and resp.request_id and not owners.claim(
                s.session_id, f"{resp.message_id}:{resp.request_id}", agent.agent_id == MAIN_AGENT):
            continue
        context, parent_time = chains.context(_answered(resp, agent.nodes))
        start = parent_time if parent_time is not None else resp.end_s
        units: list[tuple[bytes, int | None]] = [(preamble, None), *context]
        calls.append(_call(agent.agent_id, resp, min(start, resp.end_s), units, resp.model,
                           resp.request_id or key))
    calls.sort(key=lambda c: (c.start_s, c.end_s, c.request_id or ""))  # not the order of lines
    if chains.gaps:
        issues.append(ImportIssue(path, None, f"{chains.gaps} call(s) of agent {agent.agent_id!r} "
                                  "continue a line that is missing (parentUuid); their context "
                                  "starts after the gap"))
    return calls


class _CallOwners:
    """Which session each legacy call (``message.id:requestId``) is imported in.

    Sessions are read in :func:`discover` order and the first to hold a call keeps it, so a call
    belongs to the session with the earliest first, then latest timestamp (then the smaller id):
    a resumed copy repeats the original's calls but ends later. Only the calls' identity and the
    files' time spans decide, never the order of lines. It is a guess when both sessions went on
    with calls of their own (the original was continued after the copy was made: its main-agent
    calls are not all in the copy) or when both spans are equal; then the session read second
    gets a warning naming the other's file.
    """

    def __init__(self) -> None:
        self.owner: dict[str, tuple[str, bool]] = {}  # call -> (session, made by its main agent)
        self.owned: dict[str, list[int]] = {}  # session -> [calls it keeps, of its main agent]
        self.where: dict[str, tuple[str, tuple[float, float]]] = {}  # session -> (file, span)
        self.shared: dict[str, list[int]] = {}  # owner -> same, of the session being read

    def claim(self, session_id: str, call: str, main: bool) -> bool:
        """Whether ``session_id`` imports ``call`` (False: already imported, here or elsewhere)."""
        owner = self.owner.get(call)
        if owner is None:
            self.owner[call] = (session_id, main)
            counts = self.owned.setdefault(session_id, [0, 0])
        elif owner[0] != session_id:
            counts = self.shared.setdefault(owner[0], [0, 0])
            main = owner[1]
        else:
            return False
        counts[0] += 1
        counts[1] += main
        return owner is None

    def close(self, session_id: str, path: str, span: tuple[float, float],
              issues: list[ImportIssue]) -> None:
        """End a session: warn about the calls another session keeps on a guess."""
        own = self.owned.get(session_id, [0, 0])[0]
        for other, (n, main) in sorted(self.shared.items()):
            other_path, other_span = self.where[other]
            if other_span == span:
                why = "whose first and last timestamps are the same"
            elif own and self.owned[other][1] > main:
                why = "and both sessions went on with calls of their own"
            else:
                continue
            issues.append(ImportIssue(path, None, f"{n} call(s) are also in {other_path}, {why}, "
                                      "so which session copied them is unknown; they stay in session "
                                      f"{other}, which sorts first (earliest first, then last "
                                      "timestamp, then id)"))
        self.shared.clear()
        if own:
            self.where[session_id] = (path, span)


class _ChainCache:
    """Materializes ``parentUuid`` chains, re-using the last one: a call's context usually
    continues the previous call's, so each line is walked about once per session."""

    def __init__(self, agent: _AgentLines) -> None:
        self.nodes = agent.nodes
        self.uuids: list[str] = []  # the last materialized chain, root first
        self.units: list[tuple[bytes, int | None]] = []
        self.units_before: list[int] = []  # len(units) up to and including uuids[i]
        self.pos: dict[str, int] = {}
        self.gaps = 0  # calls whose chain reaches a parent line that is not in the files
        self.rooted_in_gap = False  # the cached chain's root names a missing parent

    def context(self, uuid: str | None) -> tuple[list[tuple[bytes, int | None]], float | None]:
        """The units of the chain ending at ``uuid`` (root first) and the nearest line time."""
        walked: list[str] = []
        cursor, seen = uuid, set()
        while cursor is not None and cursor in self.nodes and cursor not in self.pos and cursor not in seen:
            seen.add(cursor)
            walked.append(cursor)
            cursor = self.nodes[cursor][0]
        keep = self.pos[cursor] + 1 if cursor is not None and cursor in self.pos else 0
        if keep == 0:  # a new chain from its root: does the root continue a missing line?
            self.rooted_in_gap = cursor is not None and cursor not in self.nodes
        self.gaps += self.rooted_in_gap
        for dropped in self.uuids[keep:]:
            del self.pos[dropped]
        del self.uuids[keep:], self.units_before[keep:]
        del self.units[self.units_before[-1] if keep else 0 :]
        for node in reversed(walked):
            unit = self.nodes[node][1]
            if unit is not None:
                self.units.append(unit)
            self.pos[node] = len(self.uuids)
            self.uuids.append(node)
            self.units_before.append(len(self.units))
        return list(self.units), self._time(uuid)

    def _time(self, uuid: str | None) -> float | None:
        for node in reversed(self.uuids if uuid is not None else ()):
            t = self.nodes[node][2]
            if t is not None:
                return t
        return None


def _call(agent_id: str, resp: _Response, start: float, units: list[tuple[bytes, int | None]],
          model: str, request_id: str | None) -> _Call:
    return _Call(agent_id, start, max(start, resp.end_s), model, units,
                 _usage(resp.usage, resp.output_tokens), resp.output_tokens, resp.stop_reason,
                 request_id, _tool_uses(resp), path=resp.path, line=resp.line)


def _answered(resp: _Response, nodes: dict[str, tuple[str | None, Any, float | None]]) -> str | None:
    """The line a call answers: the parent of its lines outside the call, whichever of its
    lines was read first (each content block is a line chained to the previous block's)."""
    cursor = resp.parent_uuid
    if len(resp.uuids) < 2:
        return cursor
    own = set(resp.uuids)
    while cursor is not None and cursor in own and cursor in nodes:
        own.discard(cursor)
        cursor = nodes[cursor][0]
    return cursor


# --------------------------------------------------------------------------- sizing and hashing


class TokenBook:
    """Sizes units once: a unit keeps the token count it got on first appearance.

    A call's new units share what its reported prompt total leaves after its known units, in
    proportion to their estimates; units of unknown size (``None``) take what the estimated ones
    leave. Shared prefixes therefore keep equal sizes in every hop, and each hop's size equals
    the API total whenever the request extends known ones.
    """

    def __init__(self) -> None:
        self.shared: dict[bytes, int] = {}  # system/tool units, kept across sessions
        self.local: dict[bytes, int] = {}  # message units, dropped after each session

    def count(self, key: bytes) -> int | None:
        return self.shared.get(key, self.local.get(key))

    def size(self, units: list[tuple[bytes, int | None]], reported: int | None,
             shared_keys: frozenset[bytes]) -> list[tuple[bytes, int]]:
        known = 0
        fresh: dict[bytes, int | None] = {}
        for key, est in units:
            n = self.count(key)
            if n is not None:
                known += n
            elif key not in fresh:
                fresh[key] = est
        if fresh:
            for key, n in _share(fresh, None if reported is None else reported - known).items():
                (self.shared if key in shared_keys else self.local)[key] = n
        return [(key, self.count(key) or 1) for key, _ in units]


def _share(fresh: dict[bytes, int | None], budget: int | None) -> dict[bytes, int]:
    keys = list(fresh)
    estimated = {k: e for k, e in fresh.items() if e is not None}
    opaque = [k for k in keys if fresh[k] is None]
    if budget is None or budget < len(keys):
        return {k: estimated.get(k, 1) for k in keys}
    rest = budget - sum(estimated.values())
    if not opaque or rest < len(opaque):  # all in proportion to the estimates (opaque weigh 1)
        return dict(zip(keys, scale_counts([fresh[k] or 1 for k in keys], budget), strict=True))
    out = dict(estimated)
    out.update(zip(opaque, scale_counts([1] * len(opaque), rest), strict=True))
    return out


class _AgentSizer:
    """Sizes one agent's successive requests, re-using the sized prefix it shares with the last."""

    def __init__(self, book: TokenBook, shared_keys: frozenset[bytes]) -> None:
        self.book, self.shared_keys = book, shared_keys
        self.raw: list[tuple[bytes, int | None]] = []
        self.sized: list[tuple[bytes, int]] = []
        self.total = 0

    def size(self, units: list[tuple[bytes, int | None]],
             reported: int | None) -> tuple[list[tuple[bytes, int]], bool]:
        """Sized units, and whether they extend the previous request's (same sizes included)."""
        n = len(self.raw)
        extends = n > 0 and len(units) >= n and units[:n] == self.raw
        if not extends:
            n, self.sized, self.total = 0, [], 0
        tail = self.book.size(units[n:], None if reported is None else reported - self.total,
                              self.shared_keys)
        self.raw, self.sized = units, self.sized + tail
        self.total += sum(c for _, c in tail)
        return self.sized, extends


def _hops(session_id: str, agent_id: str, calls: list[_Call], book: TokenBook,
          shared_keys: frozenset[bytes], block_size: int,
          results: dict[str, tuple[float | None, bool | None]], path: str,
          issues: list[ImportIssue]) -> list[Hop]:
    hasher = PrefixHasher(block_size)
    sizer = _AgentSizer(book, shared_keys)
    hops: list[Hop] = []
    cut = False  # the hasher holds a request cut to MAX_PROMPT_TOKENS
    for index, call in enumerate(sorted(calls, key=lambda c: c.start_s)):
        reported = None if call.usage is None else call.usage.prompt_tokens
        units, extends = sizer.size(call.units, None if reported is None else min(reported, MAX_PROMPT_TOKENS))
        prompt_tokens, was_cut = sizer.total, cut
        cut = prompt_tokens > MAX_PROMPT_TOKENS
        if cut or (reported or 0) > MAX_PROMPT_TOKENS:
            units, prompt_tokens = _bounded(call, units, prompt_tokens, reported, path, issues)
        hash_ids, shared = hasher.hash(units, extends and not cut and not was_cut)
        tools = tuple(ToolCall(tid, name, inp, t, *results.get(tid, (None, None)), call.tool_schemas.get(name))
                      for tid, name, inp, t in call.tool_uses)
        hops.append(Hop(
            hop_id=f"{session_id}/{agent_id}/{index}", session_id=session_id, agent_id=agent_id,
            index=index, model=call.model, start_s=call.start_s, end_s=call.end_s,
            prompt_tokens=prompt_tokens, output_tokens=call.output_tokens,
            shared_prefix_tokens=shared if index else 0, hash_ids=hash_ids, usage=call.usage,
            tool_calls=tools, stop_reason=call.stop_reason, request_id=call.request_id,
            assemble_us=call.assemble_us,
        ))
    return hops


def _bounded(call: _Call, units: list[tuple[bytes, int]], prompt_tokens: int, reported: int | None,
             path: str, issues: list[ImportIssue]) -> tuple[list[tuple[bytes, int]], int]:
    """A prompt over :data:`MAX_PROMPT_TOKENS` (reported or sized), cut to it, with a warning."""
    if reported is not None and reported > MAX_PROMPT_TOKENS:
        what = f"usage reports a prompt of {reported:,} tokens"
    else:
        what = f"the request's messages size to {prompt_tokens:,} tokens"
    issues.append(ImportIssue(call.path or path, call.line, f"{what}, above the bound of "
                              f"{MAX_PROMPT_TOKENS:,}: the hop keeps its first "
                              f"{min(prompt_tokens, MAX_PROMPT_TOKENS):,} (prompt_tokens and hash_ids)"))
    return truncate_units(units, MAX_PROMPT_TOKENS), min(prompt_tokens, MAX_PROMPT_TOKENS)


# --------------------------------------------------------------------------- linking


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


# --------------------------------------------------------------------------- entry points


class ClaudeCodeImporter:
    """Imports sessions one at a time; keeps only the sizes of shared system/tool units."""

    def __init__(self, block_size: int = DEFAULT_BLOCK_SIZE, measure_cpu: bool = False) -> None:
        self.block_size = block_size
        self.measure_cpu = measure_cpu
        self.book = TokenBook()
        self.owners = _CallOwners()

    def sessions(self, paths: Iterable[Path], issues: list[ImportIssue]) -> Iterator[Trace]:
        for files in discover(paths, issues):
            part = self.session(files, issues)
            if part.hop_list:
                yield part

    def session(self, files: SessionFiles, issues: list[ImportIssue]) -> Trace:
        s = _SessionLines(files.session_id, keep_content=self.measure_cpu)
        reader = _LineReader(s, issues)
        if files.main is not None:
            reader.read_file(files.main, None)
        for agent_file, meta in files.agents:
            agent_id = agent_file.stem.removeprefix("agent-")
            s.agent(agent_id)
            reader.read_file(agent_file, agent_id)
            if meta is not None:
                s.meta_spawn[agent_id] = _read_meta(meta, issues)
        if not files.paths():
            return Trace((), block_size=self.block_size)
        return self._build(s, str(files.paths()[0]), files.span, issues)

    def _build(self, s: _SessionLines, path: str, span: tuple[float, float],
               issues: list[ImportIssue]) -> Trace:
        calls = {agent.agent_id: (_current_calls(s, agent, path, issues) if agent.requests
                                  else _legacy_calls(s, agent, self.owners, path, issues))
                 for agent in s.agents.values()}
        self.owners.close(s.session_id, path, span, issues)
        shared_keys = frozenset(k for units in s.shapes.values() for k, _ in units)
        return self.assemble(s, calls, shared_keys, path, issues)

    def assemble(self, s: _SessionLines, calls_by_agent: dict[str, list[_Call]],
                 shared_keys: frozenset[bytes], path: str, issues: list[ImportIssue]) -> Trace:
        """Size, hash and link one session's calls (shared by every Claude Code source)."""
        by_agent: dict[str, list[Hop]] = {}
        for agent_id, calls in calls_by_agent.items():
            hops = _hops(s.session_id, agent_id, calls, self.book, shared_keys, self.block_size,
                         s.results, path, issues)
            if hops:
                by_agent[agent_id] = hops
        self.book.local.clear()
        agents = _agents(s, by_agent)
        for a in agents:
            if a.agent_id != MAIN_AGENT and a.parent_agent_id is None and a.agent_type != "warmup":
                issues.append(ImportIssue(path, None, f"sub-agent {a.agent_id!r}: no spawning "
                                          "tool call found; imported without spawn/join edges"))
        emitted = {t.tool_use_id for hops in by_agent.values() for h in hops for t in h.tool_calls}
        for agent_id, tool_id in sorted(s.result_agent.items()):
            # a resumed session's copied history names sub-agents of the original session
            if agent_id not in by_agent and tool_id in emitted:
                issues.append(ImportIssue(path, None, f"sub-agent {agent_id!r} (tool call "
                                          f"{tool_id}) has no transcript; its hops are missing"))
        edges = _edges(s, agents, by_agent)
        hops = sorted((h for hs in by_agent.values() for h in hs),
                      key=lambda h: (h.start_s, h.agent_id != MAIN_AGENT, h.agent_id, h.index))
        used = {t.schema_id for h in hops for t in h.tool_calls if t.schema_id is not None}
        return Trace(tuple(hops), tuple(edges), tuple(agents), self.block_size,
                     schemas={sid: s.schemas[sid] for sid in sorted(used)})


def _read_meta(path: Path, issues: list[ImportIssue]) -> tuple[str | None, str | None]:
    try:
        meta = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        issues.append(ImportIssue(str(path), None, f"unreadable sub-agent meta ({exc}); ignored"))
        return None, None
    if not isinstance(meta, dict):
        issues.append(ImportIssue(str(path), None, "sub-agent meta is not a JSON object; ignored"))
        return None, None
    return _opt_str(meta.get("toolUseId")), _opt_str(meta.get("agentType"))


def looks_like_claude_code(record: dict[str, Any]) -> bool:
    """Whether a first JSON line looks like a Claude Code transcript line."""
    kind = record.get("type")
    return "sessionId" in record or kind in _SKIPPED_TYPES or kind in {
        "user", "assistant", "api-request", "api-request-shape", "api-request-blob"}
