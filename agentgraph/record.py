"""The recording proxy: forwards Anthropic Messages API calls and appends one record per call.

Streaming responses pass through chunk by chunk, unchanged (bytes, status, headers that matter);
a copy of the stream is parsed on the side to reassemble the message, up to a bounded size. Each
call becomes one typed :class:`CallRecord`, made in one place (on a worker thread, one at a time:
parsing a big body must not pause other clients), passed through :func:`scrub` (the one
chokepoint every record goes through on its way out) and handed to a :class:`RecordSink`:
a :class:`FileSink` appends ``agentgraph.record`` JSONL flushed per call, a :class:`MemorySink`
keeps records in a list. See ``docs/recording.md`` for the secret policy and the limits.
"""

from __future__ import annotations

import asyncio
import base64
import dataclasses
import hashlib
import re
import sys
import threading
import time
import zlib
from collections.abc import Callable, Iterable, Mapping
from concurrent.futures import ThreadPoolExecutor
from contextlib import suppress
from dataclasses import dataclass, replace
from enum import StrEnum
from pathlib import Path
from typing import IO, Any, ClassVar, Protocol
from urllib.parse import unquote, unquote_plus

import orjson
from aiohttp import (
    ClientConnectionResetError,
    ClientError,
    ClientResponse,
    ClientSession,
    ClientTimeout,
    TCPConnector,
    web,
)
from aiohttp.abc import AbstractStreamWriter
from aiohttp.payload import BytesPayload
from multidict import CIMultiDict
from yarl import URL

from agentgraph.errors import UsageError
from agentgraph.serving import BackgroundApp
from agentgraph.units import request_units

__all__ = [
    "CREDENTIAL_WORDS",
    "DEFAULT_MAX_INFLIGHT_BYTES",
    "DEFAULT_MAX_RECORD_BYTES",
    "FORMAT",
    "KEPT_QUERY_VALUES",
    "MAX_BODY_BYTES",
    "MAX_DEPTH",
    "MAX_JSON_VALUES",
    "MESSAGES_PATHS",
    "MIN_ECHO_CHARS",
    "MIN_SECRET_CHARS",
    "RECORDED_REQUEST_HEADERS",
    "RECORDED_RESPONSE_HEADERS",
    "REMOVED",
    "SECRET_NAMES",
    "TOO_DEEP",
    "VERSION",
    "CallRecord",
    "FileSink",
    "MemorySink",
    "RecordKind",
    "RecordSink",
    "RecordingProxy",
    "SSEAssembler",
    "Upstream",
    "normalized_path",
    "redact",
    "request_secrets",
    "scrub",
    "scrub_path",
    "secret_name",
    "text_hash",
]

FORMAT = "agentgraph.record"
VERSION = 2
"""2 adds ``truncated``, records of kind ``request`` and scrubbed query values; every version-1
field keeps its meaning, so version-1 files import as before."""
RECORDED_REQUEST_HEADERS = frozenset({
    "anthropic-version", "anthropic-beta", "x-claude-code-session-id", "x-claude-code-agent-id",
    "x-app", "user-agent", "content-type",
})
RECORDED_RESPONSE_HEADERS = frozenset({"request-id", "retry-after", "content-type", "x-should-retry"})
MESSAGES_PATHS = frozenset({"/v1/messages", "/v1/messages/count_tokens"})
"""Normalized paths of the calls recorded as kind ``call``; every other path is kind ``request``."""
DEFAULT_MAX_RECORD_BYTES = 64 * 1024 * 1024
"""Of one call's body (inflated), at most this much is kept for the record; the rest only passes."""
DEFAULT_MAX_INFLIGHT_BYTES = 512 * 1024 * 1024
"""Request bodies of all calls in flight together; past it a new body gets a 413."""
MAX_BODY_BYTES = 256 * 1024 * 1024
"""One request body."""
SECRET_NAMES = frozenset({
    "authorization", "authorizationtoken", "apikey", "xapikey", "accesstoken", "refreshtoken", "authtoken",
    "sessiontoken", "idtoken", "token", "clientsecret", "secret", "password", "passwd", "privatekey", "cookie",
    "credentials", "bearer",
})
"""Request-body field names whose values are credentials, compared whole after :func:`secret_name`'s
normalization (lowercase, ``-`` and ``_`` dropped: ``X-Api-Key``, ``x_api_key``, ``xApiKey`` are
all ``xapikey``); ``max_tokens`` or ``token_count`` are not among them."""
CREDENTIAL_WORDS = ("auth", "cookie", "signature", "sig", "token", "key", "secret", "password", "passwd",
                    "credential")
"""A request header, or a query parameter of a URL in a request body, whose lowercased name
contains one of these words carries a credential (``x-custom-auth``, ``x-goog-api-key``, ``sig``)."""
MAX_JSON_VALUES = 1_000_000
"""A body (request or response) with more structural bytes (``{``, ``[``, ``,``) than this is not
parsed for the record: ``{"unparsed_bytes": N, "reason": ...}`` and ``truncated: true``. Parsed
JSON takes ~50 times its text's size for tiny values; real request bodies have a few 100,000."""
MAX_DEPTH = 64
"""JSON nested deeper than this is replaced, in the record, by :data:`TOO_DEEP`."""
TOO_DEEP = "<nested too deep>"
KEPT_QUERY_VALUES = frozenset({"beta"})
"""Query parameters whose value a record's ``path`` keeps; every other value is replaced."""
REMOVED = "<removed>"
MIN_SECRET_CHARS = 16
"""Known secret values this long are cut out of every recorded string; shorter ones would
rewrite ordinary prompt text (and so block hashes)."""
MIN_ECHO_CHARS = 4
"""In what a failed call sent back (error bodies, error events), known secrets this long are cut out."""
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
})
_HOP_BY_HOP_RESPONSE = _HOP_BY_HOP - {"content-length"}  # the body passes unchanged: its length holds


# --------------------------------------------------------------------------- the record


class RecordKind(StrEnum):
    """A Messages API call (``count_tokens`` included), or any other request the proxy forwarded."""

    CALL = "call"
    REQUEST = "request"


@dataclass(frozen=True, slots=True)
class CallRecord:
    """One forwarded request and what came back, as written (one JSON line, fields in this order).

    Examples
    --------
    >>> rec = CallRecord(seq=1, method="POST", path="/v1/messages", t_request_s=1.0, status=200)
    >>> CallRecord.from_json(rec.to_json()) == rec
    True
    """

    seq: int
    method: str
    path: str
    t_request_s: float
    kind: RecordKind = RecordKind.CALL
    request_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    request: Any = None
    status: int | None = None
    response_headers: Mapping[str, str] = dataclasses.field(default_factory=dict)
    response: Any = None
    events: int | None = None
    stream_error: Any = None
    error: str | None = None
    client_error: str | None = None
    record_error: str | None = None
    truncated: bool = False
    t_first_byte_s: float | None = None
    t_last_byte_s: float | None = None

    def to_json(self) -> dict[str, Any]:
        """The record as its JSON object: ``kind`` first, then every field."""
        out: dict[str, Any] = {"kind": str(self.kind)}
        for f in dataclasses.fields(self):
            if f.name != "kind":
                value = getattr(self, f.name)
                out[f.name] = dict(value) if isinstance(value, Mapping) else value
        return out

    @classmethod
    def from_json(cls, obj: Mapping[str, Any]) -> CallRecord:
        """Read a record (version 1 or 2); a field of the wrong type raises ``ValueError`` naming it."""
        headers = obj.get("request_headers")
        if not isinstance(headers, dict):
            raise ValueError("missing request headers")
        return cls(
            seq=_typed(obj, "seq", int, 0), method=_typed(obj, "method", str, ""),
            path=_typed(obj, "path", str, ""), t_request_s=_number(obj, "t_request_s", required=True),
            kind=RecordKind(_typed(obj, "kind", str, "call")), request_headers=headers,
            request=obj.get("request"), status=_typed(obj, "status", int, None),
            response_headers=_typed(obj, "response_headers", dict, {}), response=obj.get("response"),
            events=_typed(obj, "events", int, None), stream_error=obj.get("stream_error"),
            error=_text(obj, "error"), client_error=_text(obj, "client_error"),
            record_error=_text(obj, "record_error"), truncated=obj.get("truncated") is True,
            t_first_byte_s=_number(obj, "t_first_byte_s"), t_last_byte_s=_number(obj, "t_last_byte_s"))


def _typed(obj: Mapping[str, Any], name: str, kind: type, default: Any) -> Any:
    value = obj.get(name)
    if value is None:
        return default
    if not isinstance(value, kind) or isinstance(value, bool):
        raise ValueError(f"{name} is not of type {kind.__name__}")
    return value


def _number(obj: Mapping[str, Any], name: str, *, required: bool = False) -> Any:
    value = obj.get(name)
    if value is None and not required:
        return None
    if not isinstance(value, int | float) or isinstance(value, bool):
        raise ValueError(f"{name} is not a number")
    return float(value)


def _text(obj: Mapping[str, Any], name: str) -> str | None:
    value = obj.get(name)
    return None if value is None else str(value)


# --------------------------------------------------------------------------- sinks


class RecordSink(Protocol):
    """Where records go. ``write`` is called from the proxy's event loop thread, once per call;
    a sink that raises loses that record only (the proxy reports the first failure and goes on)."""

    def open(self) -> None: ...

    def write(self, record: CallRecord) -> None: ...

    def close(self) -> None: ...


class FileSink:
    """Appends records to an ``agentgraph.record`` file, one JSON line each, flushed per record.

    A new file starts with the header line; a file ending in a torn line (a proxy killed while
    writing) gets a newline first, so the next record survives.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()

    def open(self) -> None:
        self._file = open(self.path, "ab+")  # noqa: SIM115 - kept open for the proxy's lifetime
        if self._file.tell() == 0:
            self._line(orjson.dumps({"format": FORMAT, "version": VERSION}))
            return
        self._file.seek(-1, 2)
        if self._file.read(1) != b"\n":  # a torn last line (killed mid-write): keep it apart
            self._line(b"")

    def write(self, record: CallRecord) -> None:
        self._line(orjson.dumps(record.to_json()))

    def _line(self, data: bytes) -> None:
        with self._lock:
            assert self._file is not None, "FileSink.open() first"
            self._file.write(data + b"\n")
            self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class MemorySink:
    """Keeps every record in :attr:`records`: for tests and programs that embed the proxy."""

    def __init__(self) -> None:
        self.records: list[CallRecord] = []

    def open(self) -> None:
        pass

    def write(self, record: CallRecord) -> None:
        self.records.append(record)

    def close(self) -> None:
        pass


# --------------------------------------------------------------------------- upstream


@dataclass(frozen=True, slots=True)
class Upstream:
    """Where the proxy forwards: the URL without credentials, and the credentials apart.

    Credentials in the URL (``http://user:password@host``) are sent as Basic auth when the client
    sends no ``Authorization`` of its own; they are never printed nor recorded.

    Examples
    --------
    >>> up = Upstream.parse("https://user:pw-0123456789abcdef@gateway.example/anthropic/")
    >>> up.url, up.user
    ('https://gateway.example/anthropic', 'user')
    >>> Upstream.parse("notaurl")
    Traceback (most recent call last):
    ...
    agentgraph.errors.UsageError: expected an http:// or https:// URL with a host, got 'notaurl'
    """

    url: str
    user: str | None = dataclasses.field(default=None, repr=False)  # a repr must not show them
    password: str | None = dataclasses.field(default=None, repr=False)

    @classmethod
    def parse(cls, text: str) -> Upstream:
        """Raises :class:`UsageError` (never naming the credentials) unless ``text`` is an http(s) URL."""
        shown = _shown_url(text)
        try:
            url = URL(text)
            url.port  # noqa: B018 - an out-of-range port raises here
        except (ValueError, TypeError):
            raise UsageError(f"expected an http:// or https:// URL with a host, got {shown!r}") from None
        if url.scheme not in ("http", "https") or not url.host:
            raise UsageError(f"expected an http:// or https:// URL with a host, got {shown!r}")
        if url.query_string or url.fragment:
            raise UsageError(f"expected a URL without query or fragment, got {shown!r}")
        if "@" in url.raw_path:  # a password with an unescaped "/": its end would be shown as the path
            raise UsageError(f"expected a URL without '@' after the host (escape it as %40), got {shown!r}")
        return cls(str(url.with_user(None)).rstrip("/"), url.user, url.password)

    def authorization(self) -> str | None:
        """The ``Authorization`` header the URL's credentials make, if it has any."""
        return None if self.user is None else f"Basic {self._basic()}"

    def secrets(self) -> frozenset[str]:
        """The credential strings to keep out of records: user, password, their Basic form."""
        if self.user is None:
            return frozenset()
        return frozenset(s for s in (self.user, self.password, self._basic()) if s)

    def _basic(self) -> str:
        return base64.b64encode(f"{self.user}:{self.password or ''}".encode()).decode()


def _shown_url(text: str) -> str:
    """``text`` fit to echo in an error: everything up to its last ``@`` (credentials, even with
    ``/``, ``?``, ``#`` or ``@`` in them) and its query and fragment cut."""
    if "@" in text:
        scheme = re.match(r"[A-Za-z][A-Za-z0-9+.-]*://", text)
        text = (scheme.group(0) if scheme else "") + "...@" + text.rpartition("@")[2]
    return re.sub(r"[?#].*", "?...", text, flags=re.DOTALL)


# --------------------------------------------------------------------------- scrubbing


def scrub(record: CallRecord, secrets: Iterable[str] = ()) -> CallRecord:
    """The record as it may be written: the chokepoint every record passes on its way to a sink.

    * ``path``: every query value (an item without ``=`` is a value) replaced by :data:`REMOVED`
      except those of :data:`KEPT_QUERY_VALUES`; in records of kind ``request``, path segments
      after the first (after ``/v1/`` and one more) replaced too;
    * ``request``: fields whose normalized name is in :data:`SECRET_NAMES` (any depth) replaced,
      values of ``headers`` maps and ``[{"name", "value"}]`` lists replaced, URL fields without
      ``user:pass@`` and credential query values; never inside ``tools[].input_schema`` or
      tool-call ``input``;
    * JSON nested deeper than :data:`MAX_DEPTH` replaced by :data:`TOO_DEEP`;
    * every string of the record (keys too): ``secrets`` (the request's own credentials) and every
      value replaced above, when at least :data:`MIN_SECRET_CHARS` long, cut out as substrings;
      in what a failed call sent back, those at least :data:`MIN_ECHO_CHARS` long.

    Examples
    --------
    >>> rec = CallRecord(seq=1, method="POST", path="/v1/messages?beta=true&key=k1", t_request_s=0.0,
    ...                  request={"max_tokens": 5, "api_key": "k2"}, status=401,
    ...                  response={"error": {"message": "bad key sk-secret"}})
    >>> clean = scrub(rec, ["sk-secret"])
    >>> clean.path, clean.request, clean.response
    ('/v1/messages?beta=true&key=<removed>', {'max_tokens': 5, 'api_key': '<removed>'}, \
{'error': {'message': 'bad key <removed>'}})
    """
    found: set[str] = set(secrets)
    path = _scrub_path(record.path, found, segments=record.kind is RecordKind.REQUEST)
    request = _scrub_fields(record.request, found, top=True)
    long = _Cutter(s for s in found if len(s) >= MIN_SECRET_CHARS)
    echo = _Cutter(s for s in found if len(s) >= MIN_ECHO_CHARS)
    failed = record.status is None or not 200 <= record.status < 300
    return replace(
        record, path=long(path), request_headers=long(record.request_headers),
        request=long(request), response_headers=long(record.response_headers),
        response=(echo if failed else long)(record.response), stream_error=echo(record.stream_error),
        error=echo(record.error), client_error=echo(record.client_error),
        record_error=echo(record.record_error))


def scrub_path(path: str) -> str:
    """``path`` with every query value replaced by :data:`REMOVED` but those of :data:`KEPT_QUERY_VALUES`
    (names compared as sent, not percent-decoded; an item without ``=`` is a value).

    >>> scrub_path("/v1/messages?beta=true&api_key=sk-1&%62eta=sk-2&sk-3")
    '/v1/messages?beta=true&api_key=<removed>&%62eta=<removed>&<removed>'
    """
    return _scrub_path(path, set())


def _scrub_path(path: str, found: set[str], segments: bool = False) -> str:
    base, sep, query = path.partition("?")
    if segments:
        base = _scrub_segments(base, found)
    if not sep:
        return base
    return f"{base}?{_scrub_query(query, lambda name: name in KEPT_QUERY_VALUES, found)}"


def _scrub_segments(path: str, found: set[str]) -> str:
    """The first segment kept (after a version segment ``v1``), every later one replaced."""
    parts = path.split("/")
    keep = 3 if len(parts) > 1 and re.fullmatch(r"v\d+", parts[1]) else 2
    for i in range(keep, len(parts)):
        if parts[i]:
            found.update((parts[i], unquote(parts[i])))
            parts[i] = REMOVED
    return "/".join(parts)


def secret_name(name: str) -> bool:
    """Whether a request-body field named ``name`` holds a credential: ``name`` lowercased, without
    ``-`` and ``_``, is one of :data:`SECRET_NAMES`.

    >>> [secret_name(n) for n in ("X-Api-Key", "xApiKey", "session_token", "max_tokens", "token_count")]
    [True, True, True, False, False]
    """
    return name.lower().replace("-", "").replace("_", "") in SECRET_NAMES


def _credential_word(name: str) -> bool:
    low = name.lower()
    return any(word in low for word in CREDENTIAL_WORDS)


def request_secrets(headers: Mapping[str, str], query: Iterable[tuple[str, str]] = (),
                    upstream: Upstream | None = None) -> frozenset[str]:
    """The credential values a request carries: headers whose name contains a :data:`CREDENTIAL_WORDS`
    word (``x-api-key``, ``authorization``, ``cookie``, ``x-signature`` ...), with and without their
    scheme word (``Bearer``), every query value but those of :data:`KEPT_QUERY_VALUES`, the upstream
    URL's user and password. (:func:`scrub` adds the query values of the record's path itself.)

    >>> sorted(request_secrets({"x-api-key": "k1", "authorization": "Bearer t1", "x-app": "cli"}))
    ['Bearer t1', 'k1', 't1']
    """
    out = set(upstream.secrets()) if upstream is not None else set()
    for name, value in headers.items():
        if _credential_word(name):
            out.add(value)
            out.add(value.partition(" ")[2].strip())
    out.update(value for name, value in query if name not in KEPT_QUERY_VALUES)
    return frozenset(s for s in out if s)


def _scrub_query(query: str, kept: Callable[[str], bool], found: set[str]) -> str:
    """Values replaced unless ``kept(raw name)``; an item without ``=`` is a value. Every replaced
    value joins ``found``, as sent and percent-decoded."""
    parts = []
    for part in query.split("&"):
        name, eq, value = part.partition("=")
        if not eq:
            name, value = "", part
        if value and not (eq and kept(name)):
            found.update((value, unquote_plus(value)))
            part = f"{name}={REMOVED}" if eq else REMOVED
        parts.append(part)
    return "&".join(parts)


def _scrub_fields(value: Any, found: set[str], keep: frozenset[str] = frozenset(), top: bool = False,
                  depth: int = 0) -> Any:
    """Credential fields of a request body replaced (their string values added to ``found``)."""
    if isinstance(value, list | dict) and depth >= MAX_DEPTH:
        return TOO_DEEP
    if isinstance(value, list):
        return [_scrub_fields(v, found, depth=depth + 1) for v in value]
    if not isinstance(value, dict):
        return value
    if isinstance(value.get("type"), str) and value["type"].endswith("tool_use"):
        keep = keep | {"input"}  # what the model passed to a tool is content, not configuration
    out: dict[str, Any] = {}
    for name, v in value.items():
        low = name.lower() if isinstance(name, str) else ""
        if name in keep:
            out[name] = v
        elif secret_name(low):
            _strings(v, found)
            out[name] = REMOVED
        elif low == "headers" and isinstance(v, dict | list):  # e.g. an MCP server's: every value goes
            out[name] = _scrub_headers(v, found, depth + 1)
        elif isinstance(v, str) and _url_name(name):
            out[name] = _scrub_url(v, found)
        elif top and name == "tools" and isinstance(v, list):
            out[name] = [_scrub_fields(t, found, frozenset({"input_schema"}), depth=depth + 2) for t in v]
        else:
            out[name] = _scrub_fields(v, found, depth=depth + 1)
    return out


def _scrub_headers(headers: dict[str, Any] | list[Any], found: set[str], depth: int) -> Any:
    """A headers map, or a list of ``{"name": ..., "value": ...}``: every value replaced, kept as a secret."""
    if isinstance(headers, dict):
        _strings(headers, found)
        return dict.fromkeys(headers, REMOVED)
    out: list[Any] = []
    for item in headers:
        if isinstance(item, dict) and "value" in item:
            _strings(item["value"], found)
            item = {**item, "value": REMOVED}
        out.append(_scrub_fields(item, found, depth=depth + 1))
    return out


def _url_name(name: Any) -> bool:
    """``url``, ``uri``, ``*_url``, ``*-url``, ``serverUrl``, ``serverURL``."""
    return isinstance(name, str) and bool(re.fullmatch(r"(?i:ur[li])|.*(?:[-_](?i:ur[li])|[a-z0-9]Ur[li]|URL|URI)",
                                                       name))


def _scrub_url(text: str, found: set[str]) -> str:
    """``text`` without everything from ``//`` to its last ``@`` (``user:pass@``, even when the
    password holds ``/``, ``?`` or ``@``: cut as text, not as ``urlsplit`` reads it) and without the
    values of credential query parameters (by decoded name, any case)."""
    head, sep, rest = text.partition("//")
    if sep and "@" in rest:
        userinfo, _, rest = rest.rpartition("@")
        found.update(piece for s in (userinfo, *userinfo.split(":", 1)) for piece in (s, unquote(s)))
    rest, qsep, query = rest.partition("?")
    if qsep:
        rest += "?" + _scrub_query(query, lambda name: not _credential_word(unquote_plus(name)), found)
    return head + sep + rest


def _strings(value: Any, found: set[str], depth: int = 0) -> None:
    if isinstance(value, str):
        found.add(value)
        found.add(value.partition(" ")[2].strip())  # "Bearer <token>"
    elif depth >= MAX_DEPTH:
        return
    elif isinstance(value, dict):
        for v in value.values():
            _strings(v, found, depth + 1)
    elif isinstance(value, list):
        for v in value:
            _strings(v, found, depth + 1)


class _Cutter:
    """Cuts known secrets out of every string of a JSON value (keys included), longest first, and
    replaces what is nested deeper than :data:`MAX_DEPTH` by :data:`TOO_DEEP`."""

    def __init__(self, secrets: Iterable[str]) -> None:
        self.secrets = sorted({s for s in secrets if s}, key=lambda s: (-len(s), s))

    def __call__(self, value: Any) -> Any:
        return self._cut(value, 0)

    def _cut(self, value: Any, depth: int) -> Any:
        if isinstance(value, str):
            for secret in self.secrets:
                if secret in value:
                    value = value.replace(secret, REMOVED)
            return value
        if isinstance(value, Mapping | list) and depth >= MAX_DEPTH:
            return TOO_DEEP
        if isinstance(value, Mapping):
            return {self._cut(k, depth): self._cut(v, depth + 1) for k, v in value.items()}
        if isinstance(value, list):
            return [self._cut(v, depth + 1) for v in value]
        return value


class SSEAssembler:
    """Rebuilds the final message from a Messages API event stream fed in arbitrary chunks.

    Linear in the stream's size: lines are cut by offset and text deltas are joined once.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._scanned = 0
        self._event: str | None = None
        self.message: dict[str, Any] | None = None
        self.error: Any = None
        self.events = 0
        self.too_large = False  # an event (or a tool input) had more than MAX_JSON_VALUES: not parsed
        self._pieces: dict[tuple[int, str], list[str]] = {}  # (block, field) -> delta pieces

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        start, scan = 0, self._scanned  # bytes before `scan` hold no newline: a long line is scanned once
        while (end := self._buffer.find(b"\n", scan)) >= 0:
            self._line(bytes(self._buffer[start:end]).rstrip(b"\r"))
            start = scan = end + 1
        del self._buffer[:start]
        self._scanned = len(self._buffer)

    def close(self) -> None:
        """Join what unfinished blocks received (a stream cut before content_block_stop)."""
        for index, _ in list(self._pieces):
            self._close(index)

    def _line(self, line: bytes) -> None:
        if line.startswith(b"event:"):
            self._event = line[6:].strip().decode(errors="replace")
        elif line.startswith(b"data:"):
            if _json_values(line) > MAX_JSON_VALUES:
                self.too_large = True
                return
            try:
                data = orjson.loads(line[5:].strip())
            except orjson.JSONDecodeError:
                return
            if isinstance(data, dict):
                self.events += 1
                self._apply(str(data.get("type") or self._event), data)

    def _apply(self, kind: str, data: dict[str, Any]) -> None:
        if kind == "message_start":
            self.message = dict(data.get("message") or {})
            self.message["content"] = list(self.message.get("content") or [])
        elif self.message is None:
            if kind == "error":
                self.error = data.get("error", data)
        elif kind == "content_block_start":
            self.message["content"].append(dict(data.get("content_block") or {}))
        elif kind == "content_block_delta":
            self._delta(int(data.get("index", len(self.message["content"]) - 1)), data.get("delta") or {})
        elif kind == "content_block_stop":
            self._close(int(data.get("index", len(self.message["content"]) - 1)))
        elif kind == "message_delta":
            self.message.update(data.get("delta") or {})
            self.message["usage"] = {**(self.message.get("usage") or {}), **(data.get("usage") or {})}
        elif kind == "error":
            self.error = data.get("error", data)

    _DELTA_FIELDS: ClassVar[dict[str, tuple[str, str]]] = {
        "text_delta": ("text", "text"), "thinking_delta": ("thinking", "thinking"),
                     "input_json_delta": ("partial_json", "input")}

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        kind = delta.get("type")
        if kind == "signature_delta" and self.message and 0 <= index < len(self.message["content"]):
            self.message["content"][index]["signature"] = str(delta.get("signature", ""))
        elif kind in self._DELTA_FIELDS:
            source, target = self._DELTA_FIELDS[str(kind)]
            self._pieces.setdefault((index, target), []).append(str(delta.get(source, "")))

    def _close(self, index: int) -> None:
        blocks = self.message["content"] if self.message else []
        for field in ("text", "thinking", "input"):
            pieces = self._pieces.pop((index, field), None)
            if pieces is None or not 0 <= index < len(blocks):
                continue
            joined = "".join(pieces)
            if field != "input":
                blocks[index][field] = blocks[index].get(field, "") + joined
                continue
            if _json_values(joined) > MAX_JSON_VALUES:
                self.too_large = True
                blocks[index]["input"] = {}
                continue
            try:
                blocks[index]["input"] = orjson.loads(joined) if joined else {}
            except orjson.JSONDecodeError:
                blocks[index]["input_json_invalid"] = joined



# --------------------------------------------------------------------------- the proxy


def normalized_path(path: str) -> str:
    """``path`` with its ``.`` and ``..`` segments resolved (RFC 3986), as the upstream gets it.

    >>> normalized_path("/v1/messages/../../admin"), normalized_path("/v1/messages/./count_tokens")
    ('/admin', '/v1/messages/count_tokens')
    """
    segments = path.removeprefix("/").split("/")
    out: list[str] = []
    for segment in segments:
        if segment == "..":
            if out:
                out.pop()
        elif segment != ".":
            out.append(segment)
    if segments[-1] in (".", ".."):
        out.append("")
    return "/" + "/".join(out)


def _recorded(headers: Mapping[str, str], allowed: frozenset[str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        low = name.lower()
        if low in allowed or low.startswith("anthropic-ratelimit-"):
            out[low] = value
    return out


_INFLATE_STEP = 1 << 20


class _Tap:
    """Reads a copy of the response on the side, at most ``limit`` bytes of it once inflated: past
    that the call is marked truncated and the rest only passes by. Its failures cost only the record."""

    def __init__(self, headers: Mapping[str, str], limit: int) -> None:
        encoding = headers.get("content-encoding", "identity").strip().lower()
        self.sse = SSEAssembler() if "text/event-stream" in headers.get("content-type", "") else None
        self.raw: bytearray | None = bytearray() if self.sse is None else None
        self.inflate = zlib.decompressobj(31) if encoding == "gzip" else None
        self.room = limit
        self.truncated = False
        self.error: str | None = None
        if encoding not in ("identity", "gzip"):
            self._fail(f"content-encoding {encoding!r} is not decoded")

    def feed(self, chunk: bytes) -> None:
        if self.truncated or (self.sse is None and self.raw is None):
            return
        try:
            if self.inflate is None:
                self._take(chunk)
                return
            while self.inflate is not None:  # a gzip bomb inflates one bounded step at a time
                plain = self.inflate.decompress(chunk, _INFLATE_STEP)
                chunk = self.inflate.unconsumed_tail
                self._take(plain)
                if not chunk and len(plain) < _INFLATE_STEP:
                    break
        except Exception as exc:  # any parsing failure only costs the record
            self._fail(f"could not parse the response: {type(exc).__name__}: {exc}")

    def _take(self, plain: bytes) -> None:
        if len(plain) > self.room:
            plain, self.truncated, self.inflate = plain[: self.room], True, None
        self.room -= len(plain)
        if self.sse is not None:
            self.sse.feed(plain)
        elif self.raw is not None:
            self.raw += plain

    def body(self) -> Any:
        """The JSON body read (None when truncated: a cut JSON text does not parse); one of more
        than :data:`MAX_JSON_VALUES` values is not parsed and marks the call truncated."""
        if self.raw is None or self.truncated:
            return None
        value, self.truncated = _parse_json(self.raw)
        return value

    def _fail(self, reason: str) -> None:
        self.error = reason
        self.sse = self.inflate = None
        self.raw = None


class _Call:
    """One call as the proxy sees it go by; :meth:`record` is the one place a CallRecord is made."""

    def __init__(self, seq: int, request: web.Request, upstream: Upstream) -> None:
        self.seq, self.method, self.t_request_s = seq, request.method, time.time()
        path, query = normalized_path(request.path), request.raw_path.partition("?")[2]
        self.path = f"{path}?{query}" if query else path
        self.kind = RecordKind.CALL if path in MESSAGES_PATHS else RecordKind.REQUEST
        self.request_headers = _recorded(request.headers, RECORDED_REQUEST_HEADERS)
        self.secrets = request_secrets(request.headers, (), upstream)  # scrub() adds the path's query values
        self.held_bytes = 0  # of the in-flight budget
        self.request_body: bytes | bytearray = b""  # parsed when the record is made, off the event loop
        self.request_truncated = False
        self.status: int | None = None
        self.response_headers: dict[str, str] = {}
        self.tap: _Tap | None = None
        self.error: str | None = None
        self.client_error: str | None = None
        self.t_first_byte_s: float | None = None
        self.t_last_byte_s: float | None = None

    def take_request(self, body: bytearray, limit: int) -> None:
        if len(body) > limit:
            self.request_truncated = True
        self.request_body = body

    def record(self) -> CallRecord:
        """Parses what was kept: costly for big bodies, so the proxy calls it off its event loop."""
        if self.request_truncated:
            request: Any = {"unparsed_bytes": len(self.request_body)}
        else:
            request, self.request_truncated = _parse_json(self.request_body)
        tap = self.tap
        sse = tap.sse if tap is not None else None
        if sse is not None:
            sse.close()
        response = sse.message if sse is not None else tap.body() if tap is not None else None
        return CallRecord(
            seq=self.seq, method=self.method, path=self.path, t_request_s=self.t_request_s, kind=self.kind,
            request_headers=self.request_headers, request=request, status=self.status,
            response_headers=self.response_headers, response=response,
            events=sse.events if sse is not None else None, stream_error=sse.error if sse is not None else None,
            error=self.error, client_error=self.client_error, record_error=tap.error if tap is not None else None,
            truncated=self.request_truncated or (tap is not None and (tap.truncated or bool(sse and sse.too_large))),
            t_first_byte_s=self.t_first_byte_s, t_last_byte_s=self.t_last_byte_s)


class RecordingProxy:
    """The proxy, served from a background thread: ``with RecordingProxy(upstream, out) as p``.

    ``out`` is a file (appended to through a :class:`FileSink`) or any :class:`RecordSink`.
    ``max_record_bytes`` bounds what one call keeps for its record, ``max_inflight_bytes`` the
    request bodies of all calls in flight; neither changes what the client gets.
    """

    def __init__(self, upstream: str | Upstream, out: str | Path | RecordSink, *, host: str = "127.0.0.1",
                 port: int = 0, read_timeout_s: float = 600.0, redact: bool = False,
                 max_record_bytes: int = DEFAULT_MAX_RECORD_BYTES,
                 max_inflight_bytes: int = DEFAULT_MAX_INFLIGHT_BYTES) -> None:
        if not 0 <= port <= 65535:
            raise UsageError(f"port must be in 0..65535, got {port}")
        if max_record_bytes < 0 or max_inflight_bytes < 1:
            raise UsageError("max_record_bytes must be >= 0 and max_inflight_bytes >= 1")
        self.upstream = upstream if isinstance(upstream, Upstream) else Upstream.parse(upstream)
        self.sink: RecordSink = FileSink(out) if isinstance(out, str | Path) else out
        self.redact = redact
        self.read_timeout_s = read_timeout_s
        self.max_record_bytes = max_record_bytes
        self.max_inflight_bytes = max_inflight_bytes
        self.calls = 0  # records of Messages API calls handed to the sink
        self.other_requests = 0  # records of other requests handed to the sink
        self.inflight_bytes = 0
        self._sink_failed = False
        self._builder: ThreadPoolExecutor | None = None  # one thread: one record made at a time
        self._server = BackgroundApp(self._app, host, port, "agentgraph-record", shutdown_timeout_s=2.0)
        self._session: ClientSession | None = None
        self._seq = 0

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> RecordingProxy:
        self.sink.open()
        self._builder = ThreadPoolExecutor(1, thread_name_prefix="agentgraph-record-build")
        try:
            self._server.start()
        except BaseException:
            self.__exit__()
            raise
        return self

    def __exit__(self, *exc: object) -> None:
        # calls in flight get 2 s, then are cancelled (and still recorded); then the upstream
        # connections close on the loop that opened them
        self._server.stop(then=self._close_client)
        if self._builder is not None:
            self._builder.shutdown()
            self._builder = None
        self.sink.close()

    async def _close_client(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _app(self) -> web.Application:
        app = web.Application()  # bodies are read by _read_body, under its own limits
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        self._seq += 1
        call = _Call(self._seq, request, self.upstream)
        try:
            try:
                body = await self._read_body(request, call)
            except Exception as exc:  # the client went away while sending
                call.client_error = f"request body not received ({type(exc).__name__})"
                return _api_error(400, "invalid_request_error", "agentgraph record: request body not received")
            if body is None:
                return self._refuse(call)
            call.take_request(body, self.max_record_bytes)
            del body  # the call holds it until its record is made
            return await self._relay(request, call.request_body, call)
        finally:  # also when cancelled at shutdown: what was seen is recorded
            self.inflight_bytes -= call.held_bytes
            if call.t_last_byte_s is None:
                call.t_last_byte_s = time.time()
            await self._emit(call)

    async def _read_body(self, request: web.Request, call: _Call) -> bytearray | None:
        """The request body, held against the in-flight budget; None when it does not fit."""
        declared = request.content_length
        if declared is not None and not self._hold(call, declared):
            return None  # refused before reading a byte of it
        body, size = bytearray(declared or 0), 0  # filled in place: growing it would copy it
        async for chunk in request.content.iter_any():
            if declared is None and not self._hold(call, len(chunk)):
                return None
            if size + len(chunk) <= len(body):
                body[size:size + len(chunk)] = chunk
            else:
                body[size:] = chunk
            size += len(chunk)
        del body[size:]
        return body

    def _hold(self, call: _Call, size: int) -> bool:
        if call.held_bytes + size > MAX_BODY_BYTES or self.inflight_bytes + size > self.max_inflight_bytes:
            return False
        call.held_bytes += size
        self.inflight_bytes += size
        return True

    def _refuse(self, call: _Call) -> web.Response:
        call.status, call.error = 413, "request body over the proxy's limits"
        return _api_error(413, "request_too_large", f"agentgraph record: request body over the proxy's limits "
                          f"({MAX_BODY_BYTES} bytes per request, {self.max_inflight_bytes} bytes of all "
                          "requests in flight, --max-inflight-bytes)")

    async def _emit(self, call: _Call) -> None:
        """Make the record on the builder thread (parsing, scrubbing and redacting a big body takes
        time: other clients are served meanwhile), then hand it to the sink: the one way out."""
        assert self._builder is not None, "RecordingProxy used outside its with-block"
        task = asyncio.current_task()
        if task is not None and task.cancelling():  # shutting down: no await may finish, build it here
            self._write(self._build(call))
            return
        future = self._builder.submit(self._build, call)
        try:
            record = await asyncio.wrap_future(future)
        except asyncio.CancelledError:
            self._write(future.result())
            raise
        self._write(record)

    def _build(self, call: _Call) -> CallRecord:
        """The record as written; one that cannot be made keeps none of the call's content."""
        try:
            record = scrub(call.record(), call.secrets)
            return _safe_redact(record) if self.redact else record
        except Exception as exc:
            return CallRecord(seq=call.seq, method=call.method, path=_scrub_path(call.path, set(), segments=True),
                              t_request_s=call.t_request_s, kind=call.kind, status=call.status, truncated=True,
                              record_error=f"could not make the record: {type(exc).__name__}")

    def _write(self, record: CallRecord) -> None:
        try:
            self.sink.write(record)
        except Exception as exc:  # the recorder never breaks the session it records
            if not self._sink_failed:
                reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else type(exc).__name__
                print(f"agentgraph record: cannot write a record ({reason}); the proxy goes on, such records "
                      "are dropped", file=sys.stderr, flush=True)
            self._sink_failed = True
            return
        if record.kind is RecordKind.CALL:
            self.calls += 1
        else:
            self.other_requests += 1

    def _client(self) -> ClientSession:
        if self._session is None:
            self._session = ClientSession(
                auto_decompress=False, connector=TCPConnector(limit=0),
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
                timeout=ClientTimeout(total=None, sock_read=self.read_timeout_s))
        return self._session

    async def _relay(self, request: web.Request, body: bytes | bytearray, call: _Call) -> web.StreamResponse:
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP)
        if "authorization" not in headers and (basic := self.upstream.authorization()):
            headers["Authorization"] = basic
        try:
            upstream = await self._client().request(request.method, self.upstream.url + request.path_qs,
                                                    data=_BodyPayload(body) if body else None, headers=headers,
                                                    allow_redirects=False)
        except Exception as exc:
            # never repr() the exception: aiohttp's carry the request headers, API key included
            status, what = (504, "timed out") if isinstance(exc, TimeoutError) else (502, "unreachable")
            message = f"upstream {what} ({type(exc).__name__} for {self.upstream.url})"
            call.status, call.error = status, message
            return _api_error(status, "api_error", f"agentgraph record: {message}")
        async with upstream:
            return await self._stream(request, upstream, call)

    async def _stream(self, request: web.Request, upstream: ClientResponse, call: _Call) -> web.StreamResponse:
        call.status = upstream.status
        call.response_headers = _recorded(upstream.headers, RECORDED_RESPONSE_HEADERS)
        out = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():  # repeated headers stay repeated
            if name.lower() not in _HOP_BY_HOP_RESPONSE:
                out.headers.add(name, value)
        await out.prepare(request)
        tap = call.tap = _Tap(upstream.headers, self.max_record_bytes)
        try:
            async for chunk in upstream.content.iter_any():
                if call.t_first_byte_s is None:
                    call.t_first_byte_s = time.time()
                try:
                    await out.write(chunk)  # to the client first, unchanged
                except (ConnectionResetError, ClientConnectionResetError):
                    call.client_error = "client disconnected"
                    break
                tap.feed(chunk)
        except (ClientError, TimeoutError, ConnectionResetError) as exc:
            call.error = f"stream cut by the upstream ({type(exc).__name__})"
        call.t_last_byte_s = time.time()
        if call.error or call.client_error or request.transport is None:
            if request.transport is not None:
                request.transport.close()  # the upstream cut the stream: cut the client's too
            return out
        with suppress(ConnectionResetError, ClientConnectionResetError):
            await out.write_eof()
        return out


class _BodyPayload(BytesPayload):
    """A request body sent in 1 MiB slices of one buffer, waiting for the socket between them: sent
    whole, aiohttp and asyncio would each copy the part the socket does not take at once."""

    async def write(self, writer: AbstractStreamWriter) -> None:
        await self.write_with_length(writer, None)

    async def write_with_length(self, writer: AbstractStreamWriter, content_length: int | None) -> None:
        view = memoryview(self._value)[:content_length]
        for start in range(0, len(view), _INFLATE_STEP):
            await writer.write(view[start:start + _INFLATE_STEP])
            await writer.drain()


def _api_error(status: int, kind: str, message: str) -> web.Response:
    return web.json_response({"type": "error", "error": {"type": kind, "message": message}}, status=status)


# --------------------------------------------------------------------------- redaction


def _safe_redact(record: CallRecord) -> CallRecord:
    try:
        return redact(record)
    except Exception as exc:  # a body redaction cannot read: keep nothing of it
        return replace(record, request={"redacted": True}, response=None,
                       record_error=f"could not redact: {type(exc).__name__}")


def redact(record: CallRecord) -> CallRecord:
    """The record with every piece of content replaced by its unit key, size and the few
    hashes import needs (tool results, sub-agent prompts): a redacted recording imports to the
    same hops, block hashes, usage and edges as the full one, but holds no prompt, message,
    tool description or tool input."""
    request, response = record.request, record.response
    if isinstance(request, dict) and isinstance(request.get("messages"), list):
        fixed, messages = request_units(request)
        kept = {k: v for k, v in request.items() if k in _SAFE_PARAMS}
        if isinstance(request.get("output_config"), dict):
            kept["output_config"] = {k: v for k, v in request["output_config"].items() if k == "effort"}
        request = {**kept, "redacted": True, "fixed": [_unit_ref(u) for u in fixed],
                   "messages": [_message_ref(m, u) for m, u in zip(request["messages"], messages, strict=True)]}
    elif request is not None:
        request = {"redacted": True}  # not a Messages API request: nothing of it is kept
    if isinstance(response, dict) and isinstance(response.get("content"), list):
        kept_response = {k: v for k, v in response.items() if k in _SAFE_RESPONSE}
        response = {**kept_response, "content": [_block_ref(b) for b in response["content"]]}
    elif isinstance(response, dict) and response.get("type") != "error":
        response = {"redacted": True}
    return replace(record, request=request, response=response)


_SAFE_PARAMS = frozenset({"model", "max_tokens", "stream", "temperature", "top_p", "top_k", "thinking",
                          "context_management", "service_tier"})
"""Request parameters a redacted record keeps: none of them carries prompt content."""
_SAFE_RESPONSE = frozenset({"id", "type", "role", "model", "stop_reason", "usage"})


def _unit_ref(unit: tuple[bytes, int]) -> dict[str, Any]:
    return {"key": unit[0].hex(), "tokens_est": unit[1]}


def _message_ref(message: Any, unit: tuple[bytes, int]) -> dict[str, Any]:
    ref: dict[str, Any] = {**_unit_ref(unit), "role": message.get("role") if isinstance(message, dict) else None}
    content = message.get("content") if isinstance(message, dict) else None
    blocks = [{"type": "text", "text": content}] if isinstance(content, str) else content or []
    ref["tool_results"] = [[b.get("tool_use_id"), b.get("is_error") is True] for b in blocks
                           if isinstance(b, dict) and b.get("type") == "tool_result"]
    ref["text_sha256"] = [text_hash(b["text"]) for b in blocks
                          if isinstance(b, dict) and isinstance(b.get("text"), str)]
    return ref


def _block_ref(block: Any) -> Any:
    if not isinstance(block, dict):
        return None
    ref = {"type": block.get("type"), "redacted": True,
           "bytes": len(orjson.dumps(block, option=orjson.OPT_SORT_KEYS))}
    if block.get("type") == "tool_use":
        inp = block.get("input")
        ref.update(id=block.get("id"), name=block.get("name"))
        if isinstance(inp, dict) and isinstance(inp.get("prompt"), str):
            ref["prompt_sha256"] = text_hash(inp["prompt"])
    return ref


def text_hash(text: str) -> str:
    """How redacted recordings name a text: SHA-256 of it, stripped of surrounding whitespace."""
    return hashlib.sha256(text.strip().encode()).hexdigest()


def _json_values(text: bytes | bytearray | str) -> int:
    """An upper bound on the JSON values of ``text`` past the first, counted without parsing it."""
    if isinstance(text, str):
        return text.count("{") + text.count("[") + text.count(",")
    return text.count(b"{") + text.count(b"[") + text.count(b",")


def _parse_json(body: bytes | bytearray) -> tuple[Any, bool]:
    """The body as JSON (``{"unparsed_bytes": N}`` when it is not), and whether it was too large to parse."""
    if not body:
        return None, False
    if _json_values(body) > MAX_JSON_VALUES:
        return {"unparsed_bytes": len(body), "reason": f"more than {MAX_JSON_VALUES} JSON values"}, True
    try:
        return orjson.loads(body), False
    except orjson.JSONDecodeError:
        return {"unparsed_bytes": len(body)}, False
