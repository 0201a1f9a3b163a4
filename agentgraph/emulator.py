"""A scripted Anthropic-compatible upstream: answers the Messages API from a script, offline.

The emulator exists so that sessions of the real Claude Code CLI can be recorded and tested
without a network (DESIGN §3.4). It answers ``POST /v1/messages`` (``?beta=true`` too,
streaming or not) and ``POST /v1/messages/count_tokens`` from a :class:`Script` and reports
``usage`` by the rules the real API follows, with agentgraph's deterministic token estimator:

* a request is split, in API order, into units: each tool, each system block, each message
  (``{"role", "content"}``), serialized with :func:`~agentgraph.tokens.canonical_json` after every
  ``cache_control`` key is stripped (string content counts as one text block, as in the API);
  its tokens are the sum of the units' estimates;
* units that carry ``cache_control`` are breakpoints (the first :data:`MAX_BREAKPOINTS` count);
  the prefix up to a breakpoint is cached when it has at least ``min_cacheable_tokens`` tokens,
  for 5 minutes (or 1 hour with ``"ttl": "1h"``), and a read refreshes the TTL;
* ``cache_read_input_tokens`` is the longest cached prefix of the request that ends at or before
  its last breakpoint, ``cache_creation_input_tokens`` the rest of the prefix up to the last
  breakpoint, ``input_tokens`` what remains.

The turn an agent is on is the number of assistant messages in the request, so the emulator is
stateless apart from its prompt cache and retries are answered identically. The format of a
script is documented in ``docs/emulator.md``.

Examples
--------
>>> script = parse_script({"agents": {"main": {"turns": [{"text": "hi"}]}}})
>>> with ScriptedUpstream(script) as up:
...     up.url.startswith("http://127.0.0.1:")
True
"""

from __future__ import annotations

import asyncio
import hashlib
import re
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType
from typing import Any

import orjson
from aiohttp import web

from agentgraph.errors import TraceFormatError
from agentgraph.model import MAIN_AGENT
from agentgraph.serving import BackgroundApp
from agentgraph.tokens import canonical_json, estimate_tokens, unit_key

__all__ = [
    "MAIN_AGENT",
    "MAX_BREAKPOINTS",
    "MIN_CACHEABLE_TOKENS",
    "AgentScript",
    "CacheResult",
    "Emulator",
    "PromptCache",
    "PromptUnits",
    "Rejected",
    "Reply",
    "Script",
    "ScriptedUpstream",
    "ServedRequest",
    "ToolUse",
    "Turn",
    "load_script",
    "make_app",
    "parse_script",
    "prompt_units",
    "serve",
    "sse_events",
]

MAX_BREAKPOINTS = 4
MIN_CACHEABLE_TOKENS = 1024
"""Minimum cacheable prompt prefix of Claude Sonnet / Opus 4 (Haiku: 2048)."""
TTL_5M_S = 300.0
TTL_1H_S = 3600.0
JSON_CHUNK_CHARS = 48
"""Size of the ``text_delta`` / ``input_json_delta`` pieces a streamed block is split into."""
AGENT_ID_HEADER = "x-claude-code-agent-id"
SESSION_ID_HEADER = "x-claude-code-session-id"
MAX_BODY_BYTES = 256 * 1024 * 1024

Clock = Callable[[], float]
Json = dict[str, Any]

_NAME = re.compile(r"[A-Za-z0-9_-]+")
_VARIABLE = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")
_TURN_KEYS = frozenset({"text", "tool_use", "output_tokens", "delay_s", "error"})
_ERROR_KEYS = frozenset({"status", "type", "message", "times"})

# --------------------------------------------------------------------------- script


@dataclass(frozen=True, slots=True)
class ToolUse:
    """A tool call the scripted assistant makes."""

    name: str
    input: Json


@dataclass(frozen=True, slots=True)
class ScriptedError:
    """An API error served ``times`` times for a turn before the turn is answered (so a retrying
    client then goes on): e.g. ``{"status": 529, "type": "overloaded_error"}``."""

    status: int
    type: str
    message: str = "scripted error"
    times: int = 1


@dataclass(frozen=True, slots=True)
class Turn:
    """One scripted assistant message: optional text first, then the tool calls."""

    text: str | None = None
    tool_use: tuple[ToolUse, ...] = ()
    output_tokens: int | None = None
    delay_s: float = 0.0
    error: ScriptedError | None = None


@dataclass(frozen=True, slots=True)
class AgentScript:
    """The turns of one agent; a sub-agent is recognised by ``match`` in its user messages."""

    name: str
    turns: tuple[Turn, ...]
    match: str | None = None


@dataclass(frozen=True, slots=True)
class Script:
    """Every agent of a scripted session, in script order; ``main`` is always present."""

    agents: tuple[AgentScript, ...]

    def agent(self, name: str) -> AgentScript:
        """The script of agent ``name``."""
        return next(a for a in self.agents if a.name == name)

    def route(self, user_text: str) -> AgentScript | None:
        """The first sub-agent whose ``match`` occurs in ``user_text``."""
        for agent in self.agents:
            if agent.match is not None and agent.match in user_text:
                return agent
        return None


def load_script(path: str | Path, variables: Mapping[str, str] | None = None) -> Script:
    """Read and validate a script file (see :func:`parse_script`)."""
    try:
        data = orjson.loads(Path(path).read_bytes())
    except orjson.JSONDecodeError as exc:
        raise TraceFormatError(f"not JSON: {exc}", path=str(path)) from exc
    return parse_script(data, variables, path=str(path))


def parse_script(data: object, variables: Mapping[str, str] | None = None, *, path: str | None = None) -> Script:
    """Validate a script document; ``${NAME}`` in its strings is replaced from ``variables``.

    Placeholders whose name is not in ``variables`` are kept as written (a Bash command may
    mean a shell variable).

    >>> s = parse_script({"agents": {"main": {"turns": [{"text": "in ${DIR}"}]}}}, {"DIR": "/w"})
    >>> s.agent("main").turns[0].text
    'in /w'
    """
    data = _substitute(data, variables or {})
    agents = _field(data, "agents", dict, "script", path)
    if MAIN_AGENT not in agents:
        raise TraceFormatError('script has no "main" agent', path=path)
    parsed = tuple(_parse_agent(name, value, path) for name, value in agents.items())
    return Script(parsed)


def _substitute(value: object, variables: Mapping[str, str]) -> object:
    if isinstance(value, str):
        return _VARIABLE.sub(lambda m: variables.get(m[1], m[0]), value)
    if isinstance(value, list):
        return [_substitute(v, variables) for v in value]
    if isinstance(value, dict):
        return {k: _substitute(v, variables) for k, v in value.items()}
    return value


def _field(obj: object, key: str, kind: type, where: str, path: str | None) -> Any:
    if not isinstance(obj, dict) or not isinstance(obj.get(key), kind):
        raise TraceFormatError(f"{where}.{key}: expected {kind.__name__}", path=path)
    return obj[key]


def _parse_agent(name: str, value: object, path: str | None) -> AgentScript:
    where = f"agents.{name}"
    if not _NAME.fullmatch(name):
        raise TraceFormatError(f"{where}: agent names use only A-Z a-z 0-9 _ -", path=path)
    turns = _field(value, "turns", list, where, path)
    if not turns:
        raise TraceFormatError(f"{where}.turns: no turns", path=path)
    match = None
    if name != MAIN_AGENT:
        match = _field(value, "match", str, where, path)
        if not match:
            raise TraceFormatError(f"{where}.match: empty", path=path)
    parsed = tuple(_parse_turn(t, f"{where}.turns[{i}]", path) for i, t in enumerate(turns))
    return AgentScript(name, parsed, match)


def _parse_turn(value: object, where: str, path: str | None) -> Turn:
    if not isinstance(value, dict) or not value.keys() <= _TURN_KEYS:
        raise TraceFormatError(f"{where}: expected an object with keys {sorted(_TURN_KEYS)}", path=path)
    text = value.get("text")
    uses = value.get("tool_use", [])
    tokens = value.get("output_tokens")
    delay = value.get("delay_s", 0.0)
    if text is not None and not isinstance(text, str):
        raise TraceFormatError(f"{where}.text: expected str", path=path)
    if not isinstance(uses, list) or (text is None and not uses):
        raise TraceFormatError(f"{where}: needs text or a tool_use list", path=path)
    if tokens is not None and (not isinstance(tokens, int) or tokens < 1):
        raise TraceFormatError(f"{where}.output_tokens: expected int >= 1", path=path)
    if not isinstance(delay, int | float) or delay < 0:
        raise TraceFormatError(f"{where}.delay_s: expected a number >= 0", path=path)
    calls = tuple(_parse_tool_use(u, f"{where}.tool_use[{k}]", path) for k, u in enumerate(uses))
    error = None if value.get("error") is None else _parse_error(value["error"], f"{where}.error", path)
    return Turn(text, calls, tokens, float(delay), error)


def _parse_error(value: object, where: str, path: str | None) -> ScriptedError:
    if not isinstance(value, dict) or not value.keys() <= _ERROR_KEYS:
        raise TraceFormatError(f"{where}: expected an object with keys {sorted(_ERROR_KEYS)}", path=path)
    status, kind = _field(value, "status", int, where, path), _field(value, "type", str, where, path)
    times, message = value.get("times", 1), value.get("message", "scripted error")
    if not 400 <= status <= 599 or not isinstance(times, int) or times < 1 or not isinstance(message, str):
        raise TraceFormatError(f"{where}: status must be 400-599, times an int >= 1, message a string",
                               path=path)
    return ScriptedError(status, kind, message, times)


def _parse_tool_use(value: object, where: str, path: str | None) -> ToolUse:
    return ToolUse(_field(value, "name", str, where, path), _field(value, "input", dict, where, path))


# --------------------------------------------------------------------------- prompt units


@dataclass(frozen=True, slots=True)
class PromptUnits:
    """A request as units in API order: tokens, chained prefix keys and cache breakpoints.

    ``keys[i]`` names the whole prefix of units ``0..i`` (and the model); ``breakpoints`` are
    ``(unit index, ttl_s)`` of the honored ``cache_control`` markers, in order.
    """

    tokens: tuple[int, ...]
    keys: tuple[bytes, ...]
    breakpoints: tuple[tuple[int, float], ...]

    @property
    def total_tokens(self) -> int:
        return sum(self.tokens)

    def prefix_tokens(self, unit: int) -> int:
        """Tokens of units ``0..unit`` inclusive."""
        return sum(self.tokens[: unit + 1])


def prompt_units(body: Mapping[str, Any]) -> PromptUnits:
    """Split a Messages API request body into :class:`PromptUnits`."""
    tokens: list[int] = []
    keys: list[bytes] = []
    breakpoints: list[tuple[int, float]] = []
    chain = hashlib.blake2b(str(body.get("model")).encode(), digest_size=16).digest()
    for index, unit in enumerate(_api_units(body)):
        markers: list[Json] = []
        data = canonical_json(_strip_cache_control(unit, markers))
        chain = hashlib.blake2b(chain + unit_key(data), digest_size=16).digest()
        tokens.append(estimate_tokens(data))
        keys.append(chain)
        if markers:
            breakpoints.append((index, max(_ttl_s(m) for m in markers)))
    return PromptUnits(tuple(tokens), tuple(keys), tuple(breakpoints[:MAX_BREAKPOINTS]))


def _api_units(body: Mapping[str, Any]) -> Iterator[object]:
    yield from body.get("tools") or ()
    system = _blocks(body.get("system") or [])
    yield from system if isinstance(system, list) else ()
    for message in body.get("messages") or ():
        yield {"role": message.get("role"), "content": _blocks(message.get("content"))}


def _blocks(content: object) -> object:
    # A string is one text block to the API: both spell the same prompt, so they must share a
    # prefix (Claude Code re-sends a message as a string that it first sent as blocks).
    return [{"type": "text", "text": content}] if isinstance(content, str) else content


def _strip_cache_control(value: object, markers: list[Json]) -> object:
    """``value`` without any ``cache_control`` key; the removed markers go to ``markers``."""
    if isinstance(value, list):
        return [_strip_cache_control(v, markers) for v in value]
    if not isinstance(value, dict):
        return value
    if isinstance(value.get("cache_control"), dict):
        markers.append(value["cache_control"])
    return {k: _strip_cache_control(v, markers) for k, v in value.items() if k != "cache_control"}


def _ttl_s(marker: Json) -> float:
    return TTL_1H_S if marker.get("ttl") == "1h" else TTL_5M_S


# --------------------------------------------------------------------------- prompt cache


@dataclass(frozen=True, slots=True)
class CacheResult:
    """What one request read from and wrote to the prompt cache, in tokens."""

    read_tokens: int = 0
    creation_5m_tokens: int = 0
    creation_1h_tokens: int = 0

    @property
    def creation_tokens(self) -> int:
        return self.creation_5m_tokens + self.creation_1h_tokens


@dataclass(slots=True)
class _Entry:
    tokens: int
    ttl_s: float
    expires_s: float


class PromptCache:
    """Cached request prefixes keyed by prefix key, with TTLs on an injectable clock."""

    def __init__(self, clock: Clock = time.monotonic, min_tokens: int = MIN_CACHEABLE_TOKENS):
        self.clock = clock
        self.min_tokens = min_tokens
        self._entries: dict[bytes, _Entry] = {}

    def __len__(self) -> int:
        return len(self._entries)

    def use(self, prompt: PromptUnits) -> CacheResult:
        """Read the longest cached prefix of ``prompt``, then write its breakpoints."""
        if not prompt.breakpoints:
            return CacheResult()
        now = self.clock()
        self._expire(now)
        read = self._read(prompt, prompt.breakpoints[-1][0], now)
        if prompt.prefix_tokens(prompt.breakpoints[-1][0]) < self.min_tokens:
            return CacheResult(read)
        return self._write(prompt, read, now)

    def _expire(self, now: float) -> None:
        for key in [k for k, e in self._entries.items() if e.expires_s <= now]:
            del self._entries[key]

    def _read(self, prompt: PromptUnits, last: int, now: float) -> int:
        # A read touches the hit prefix and every cached prefix of it: all are refreshed.
        read = 0
        for index in range(last, -1, -1):
            entry = self._entries.get(prompt.keys[index])
            if entry is not None:
                read = max(read, entry.tokens)
                entry.expires_s = now + entry.ttl_s
        return read

    def _write(self, prompt: PromptUnits, read: int, now: float) -> CacheResult:
        created = {TTL_5M_S: 0, TTL_1H_S: 0}
        covered = read
        for index, ttl_s in prompt.breakpoints:
            end = prompt.prefix_tokens(index)
            created[ttl_s] += max(0, end - covered)
            covered = max(covered, end)
            if end >= self.min_tokens:
                self._store(prompt.keys[index], end, ttl_s, now)
        return CacheResult(read, created[TTL_5M_S], created[TTL_1H_S])

    def _store(self, key: bytes, tokens: int, ttl_s: float, now: float) -> None:
        old = self._entries.get(key)
        ttl_s = max(ttl_s, old.ttl_s) if old else ttl_s
        self._entries[key] = _Entry(tokens, ttl_s, now + ttl_s)


# --------------------------------------------------------------------------- emulator


@dataclass(frozen=True, slots=True)
class ServedRequest:
    """One answered ``/v1/messages`` call, as the emulator's log keeps it."""

    agent: str
    turn: int
    body: Json
    usage: Json
    time_s: float
    session_id: str | None
    agent_id: str | None


@dataclass(frozen=True, slots=True)
class Rejected:
    """One request answered with an error, and why."""

    status: int
    message: str
    time_s: float


class _BadRequest(Exception):
    """A request the script cannot answer; becomes an HTTP 400 API error."""


class _ScriptedFailure(Exception):
    """A scripted API error for this request."""

    def __init__(self, error: ScriptedError) -> None:
        super().__init__(error.message)
        self.error = error


@dataclass(frozen=True, slots=True)
class Reply:
    """The scripted answer to one request: the full message and how long to wait first."""

    message: Json
    delay_s: float


class Emulator:
    """The request logic of the scripted upstream, without any I/O."""

    def __init__(
        self,
        script: Script,
        *,
        clock: Clock = time.monotonic,
        min_cacheable_tokens: int = MIN_CACHEABLE_TOKENS,
    ) -> None:
        self.script = script
        self.clock = clock
        self.cache = PromptCache(clock, min_cacheable_tokens)
        self.log: list[ServedRequest] = []
        self.rejected: list[Rejected] = []
        self._errors_served: dict[tuple[str | None, str, int], int] = {}

    def reply(self, headers: Mapping[str, str], body: Json) -> Reply:
        """The scripted answer to a ``/v1/messages`` request (header names in any case); logs it."""
        now = self.clock()
        messages = _messages(body)
        headers = {k.lower(): v for k, v in headers.items()}
        agent = self._route(headers, messages)
        turn_index = sum(1 for m in messages if m.get("role") == "assistant")
        if turn_index >= len(agent.turns):
            raise _BadRequest(
                f"agent {agent.name!r} has {len(agent.turns)} scripted turns; the request has "
                f"{turn_index} assistant messages and asks for turn {turn_index}"
            )
        turn = agent.turns[turn_index]
        if turn.error is not None:
            key = (headers.get(SESSION_ID_HEADER), agent.name, turn_index)
            served = self._errors_served.get(key, 0)
            if served < turn.error.times:
                self._errors_served[key] = served + 1
                self.rejected.append(Rejected(turn.error.status, turn.error.message, now))
                raise _ScriptedFailure(turn.error)
        content = _content(agent.name, turn_index, turn)
        usage = self._usage(body, turn, content)
        self.log.append(ServedRequest(
            agent.name, turn_index, body, usage, now,
            headers.get(SESSION_ID_HEADER), headers.get(AGENT_ID_HEADER),
        ))  # fmt: skip
        message = _message(f"msg_{agent.name}_{turn_index:02d}", body, content, usage)
        return Reply(message, turn.delay_s)

    def count_tokens(self, body: Json) -> int:
        """Prompt tokens of a request, as ``count_tokens`` reports them."""
        _messages(body)
        return prompt_units(body).total_tokens

    def reject(self, status: int, message: str) -> Json:
        """Log a refused request and return its API error body."""
        self.rejected.append(Rejected(status, message, self.clock()))
        kind = "invalid_request_error" if status == 400 else "not_found_error"
        return {"type": "error", "error": {"type": kind, "message": message}}

    def _route(self, headers: Mapping[str, str], messages: list[Json]) -> AgentScript:
        agent_id = headers.get(AGENT_ID_HEADER)
        if agent_id is None:
            return self.script.agent(MAIN_AGENT)
        text = "\n".join(_user_text(messages))
        agent = self.script.route(text)
        if agent is None:
            raise _BadRequest(
                f"no sub-agent script matches sub-agent {agent_id}: none of the match strings "
                f"{[a.match for a in self.script.agents if a.match]} occurs in its user messages "
                f"(which begin {text[:200]!r})"
            )
        return agent

    def _usage(self, body: Json, turn: Turn, content: list[Json]) -> Json:
        prompt = prompt_units(body)
        cached = self.cache.use(prompt)
        output = turn.output_tokens or estimate_tokens(canonical_json(content))
        return {
            "input_tokens": prompt.total_tokens - cached.read_tokens - cached.creation_tokens,
            "cache_creation_input_tokens": cached.creation_tokens,
            "cache_read_input_tokens": cached.read_tokens,
            "cache_creation": {
                "ephemeral_5m_input_tokens": cached.creation_5m_tokens,
                "ephemeral_1h_input_tokens": cached.creation_1h_tokens,
            },
            "output_tokens": output,
            "service_tier": "standard",
        }


def _messages(body: object) -> list[Json]:
    """The request's messages, once the body has the shape the API requires."""
    if not isinstance(body, dict):
        raise _BadRequest("request body must be a JSON object")
    messages = body.get("messages")
    if not isinstance(messages, list) or not all(isinstance(m, dict) for m in messages):
        raise _BadRequest("messages: expected a list of message objects")
    if not isinstance(body.get("tools", []), list):
        raise _BadRequest("tools: expected a list of tool definitions")
    if not isinstance(body.get("system", ""), str | list):
        raise _BadRequest("system: expected a string or a list of text blocks")
    return messages


def _user_text(messages: Sequence[Json]) -> Iterator[str]:
    for message in messages:
        if message.get("role") != "user":
            continue
        content = message.get("content")
        if isinstance(content, str):
            yield content
        elif isinstance(content, list):
            yield from (b["text"] for b in content if isinstance(b, dict) and b.get("type") == "text")


def _content(agent: str, turn_index: int, turn: Turn) -> list[Json]:
    blocks: list[Json] = [] if turn.text is None else [{"type": "text", "text": turn.text}]
    for k, use in enumerate(turn.tool_use):
        tool_id = f"toolu_{agent}_{turn_index:02d}_{k}"
        blocks.append({"type": "tool_use", "id": tool_id, "name": use.name, "input": use.input})
    return blocks


def _message(message_id: str, body: Json, content: list[Json], usage: Json) -> Json:
    tool_use = any(b["type"] == "tool_use" for b in content)
    return {
        "id": message_id,
        "type": "message",
        "role": "assistant",
        "model": body.get("model"),
        "content": content,
        "stop_reason": "tool_use" if tool_use else "end_turn",
        "stop_sequence": None,
        "usage": usage,
    }


def sse_events(message: Json, chunk_chars: int = JSON_CHUNK_CHARS) -> list[tuple[str, Json]]:
    """The server-sent events that stream ``message``, as ``(event name, data)`` pairs."""
    start = dict(message, content=[], stop_reason=None, stop_sequence=None)
    start["usage"] = dict(message["usage"], output_tokens=1)
    events: list[tuple[str, Json]] = [("message_start", {"type": "message_start", "message": start}),
                                      ("ping", {"type": "ping"})]  # the API sends pings too
    for index, block in enumerate(message["content"]):
        events.extend(_block_events(index, block, chunk_chars))
    delta = {"stop_reason": message["stop_reason"], "stop_sequence": None}
    usage = {"output_tokens": message["usage"]["output_tokens"]}
    events.append(("message_delta", {"type": "message_delta", "delta": delta, "usage": usage}))
    events.append(("message_stop", {"type": "message_stop"}))
    return events


def _block_events(index: int, block: Json, chunk_chars: int) -> list[tuple[str, Json]]:
    if block["type"] == "text":
        empty: Json = {"type": "text", "text": ""}
        text, delta_type, field = block["text"], "text_delta", "text"
    else:
        empty = dict(block, input={})
        text, delta_type, field = (
            orjson.dumps(block["input"]).decode(),
            "input_json_delta",
            "partial_json",
        )
    pieces = [text[i : i + chunk_chars] for i in range(0, len(text), chunk_chars)] or [""]
    start = {"type": "content_block_start", "index": index, "content_block": empty}
    deltas = [{"type": "content_block_delta", "index": index, "delta": {"type": delta_type, field: p}} for p in pieces]
    stop = {"type": "content_block_stop", "index": index}
    return [("content_block_start", start), *(("content_block_delta", d) for d in deltas),
            ("content_block_stop", stop)]  # fmt: skip


# --------------------------------------------------------------------------- HTTP

_EMULATOR = web.AppKey("emulator", Emulator)


def make_app(emulator: Emulator) -> web.Application:
    """The aiohttp application serving ``emulator``."""
    app = web.Application(client_max_size=MAX_BODY_BYTES)
    app[_EMULATOR] = emulator
    app.router.add_post("/v1/messages", _handle_messages)
    app.router.add_post("/v1/messages/count_tokens", _handle_count_tokens)
    app.router.add_route("*", "/{tail:.*}", _handle_unknown)
    return app


async def _read_json(request: web.Request) -> Json:
    try:
        body = orjson.loads(await request.read())
    except orjson.JSONDecodeError as exc:
        raise _BadRequest(f"request body is not valid JSON: {exc}") from exc
    if not isinstance(body, dict):
        raise _BadRequest("request body must be a JSON object")
    return body


async def _handle_messages(request: web.Request) -> web.StreamResponse:
    emulator = request.app[_EMULATOR]
    try:
        body = await _read_json(request)
        reply = emulator.reply(request.headers, body)
    except _BadRequest as exc:
        return _json_response(emulator.reject(400, str(exc)), 400)
    except _ScriptedFailure as failure:
        err = failure.error
        return _json_response({"type": "error", "error": {"type": err.type, "message": err.message}},
                              err.status, {"retry-after": "0", "x-should-retry": "true"})
    if reply.delay_s:
        await asyncio.sleep(reply.delay_s)
    headers = {"request-id": f"req_{reply.message['id'].removeprefix('msg_')}"}
    if not body.get("stream"):
        return _json_response(reply.message, 200, headers)
    response = web.StreamResponse(headers={**headers, "Content-Type": "text/event-stream",
                                           "Cache-Control": "no-cache"})  # fmt: skip
    await response.prepare(request)
    for name, data in sse_events(reply.message):
        await response.write(b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(data)))
    await response.write_eof()
    return response


async def _handle_count_tokens(request: web.Request) -> web.Response:
    emulator = request.app[_EMULATOR]
    try:
        total = emulator.count_tokens(await _read_json(request))
    except _BadRequest as exc:
        return _json_response(emulator.reject(400, str(exc)), 400)
    return _json_response({"input_tokens": total}, 200)


async def _handle_unknown(request: web.Request) -> web.Response:
    message = f"no route for {request.method} {request.path}"
    return _json_response(request.app[_EMULATOR].reject(404, message), 404)


def _json_response(data: Json, status: int, headers: Mapping[str, str] | None = None) -> web.Response:
    return web.Response(body=orjson.dumps(data), status=status, headers=headers,
                        content_type="application/json")  # fmt: skip


class ScriptedUpstream:
    """The emulator served on ``127.0.0.1`` (ephemeral port) from a background thread.

    Nothing starts until the ``with`` block (or :meth:`start`); ``url`` and ``log`` are then
    available to the test driving it.
    """

    def __init__(
        self,
        script: Script | Mapping[str, Any],
        *,
        host: str = "127.0.0.1",
        clock: Clock = time.monotonic,
        min_cacheable_tokens: int = MIN_CACHEABLE_TOKENS,
    ) -> None:
        parsed = script if isinstance(script, Script) else parse_script(script)
        self.emulator = Emulator(parsed, clock=clock, min_cacheable_tokens=min_cacheable_tokens)
        self.host = host
        self._server = BackgroundApp(lambda: make_app(self.emulator), host, 0, "agentgraph-emulator")

    @property
    def url(self) -> str:
        """Base URL to give the client as ``ANTHROPIC_BASE_URL``."""
        if self._server.port is None:
            raise RuntimeError("the upstream is not running; use it in a with block")
        return self._server.url

    @property
    def log(self) -> list[ServedRequest]:
        """Every answered request, in arrival order."""
        return self.emulator.log

    @property
    def rejected(self) -> list[Rejected]:
        """Every request answered with an error."""
        return self.emulator.rejected

    def start(self) -> ScriptedUpstream:
        """Start serving in a daemon thread; returns once the port is bound."""
        self._server.start()
        return self

    def stop(self) -> None:
        """Stop serving and release the thread, the loop and the port."""
        self._server.stop()

    def __enter__(self) -> ScriptedUpstream:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def serve(
    script_path: str | Path,
    host: str = "127.0.0.1",
    port: int = 8787,
    *,
    variables: Mapping[str, str] | None = None,
    on_ready: Callable[[str], None] | None = None,
    time_scale: float = 1.0,
) -> None:
    """Serve the script at ``script_path`` until interrupted (blocking).

    ``on_ready`` receives the base URL once the port is bound (useful with ``port=0``).
    ``time_scale`` speeds up the prompt cache's clock: at 100, a 3 s pause counts as 5 minutes
    of cache TTL, so sessions whose tool pauses outlast the TTL can be produced quickly.
    """
    if time_scale <= 0:
        raise ValueError(f"time_scale must be > 0, got {time_scale}")
    start = time.monotonic()
    emulator = Emulator(load_script(script_path, variables),
                        clock=lambda: start + (time.monotonic() - start) * time_scale)
    asyncio.run(_serve_forever(emulator, host, port, on_ready))


async def _serve_forever(emulator: Emulator, host: str, port: int, on_ready: Callable[[str], None] | None) -> None:
    runner = web.AppRunner(make_app(emulator), access_log=None)
    await runner.setup()
    try:
        await web.TCPSite(runner, host, port).start()
        if on_ready is not None:
            on_ready(f"http://{host}:{runner.addresses[0][1]}")
        await asyncio.Event().wait()
    finally:
        await runner.cleanup()
