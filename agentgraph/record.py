"""The recording proxy: forwards Anthropic Messages API calls and appends one record per call.

Streaming responses pass through chunk by chunk, unchanged (bytes, status, headers that matter);
a copy of the stream is parsed on the side to reassemble the message. Records are appended to
an ``agentgraph.record`` JSONL file and flushed per call, so a killed proxy leaves every complete
call readable. API keys, authorization headers and cookies are never written: only the
headers in :data:`RECORDED_REQUEST_HEADERS` / :data:`RECORDED_RESPONSE_HEADERS` are.
See ``docs/recording.md``.
"""

from __future__ import annotations

import hashlib
import threading
import time
import zlib
from collections.abc import Mapping
from contextlib import suppress
from pathlib import Path
from typing import IO, Any, ClassVar

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
from multidict import CIMultiDict

from agentgraph.serving import BackgroundApp
from agentgraph.units import request_units

__all__ = [
    "FORMAT",
    "RECORDED_REQUEST_HEADERS",
    "RECORDED_RESPONSE_HEADERS",
    "VERSION",
    "RecordWriter",
    "RecordingProxy",
    "SSEAssembler",
    "redact",
    "text_hash",
]

FORMAT = "agentgraph.record"
VERSION = 1
RECORDED_REQUEST_HEADERS = frozenset({
    "anthropic-version", "anthropic-beta", "x-claude-code-session-id", "x-claude-code-agent-id",
    "x-app", "user-agent", "content-type",
})
RECORDED_RESPONSE_HEADERS = frozenset({"request-id", "retry-after", "content-type", "x-should-retry"})
_HOP_BY_HOP = frozenset({
    "connection", "keep-alive", "proxy-authenticate", "proxy-authorization", "te", "trailer",
    "transfer-encoding", "upgrade", "host", "content-length",
})
_HOP_BY_HOP_RESPONSE = _HOP_BY_HOP - {"content-length"}  # the body passes unchanged: its length holds
MAX_BODY_BYTES = 256 * 1024 * 1024


def _recorded(headers: Mapping[str, str], allowed: frozenset[str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        low = name.lower()
        if low in allowed or low.startswith("anthropic-ratelimit-"):
            out[low] = value
    return out


class SSEAssembler:
    """Rebuilds the final message from a Messages API event stream fed in arbitrary chunks.

    Linear in the stream's size: lines are cut by offset and text deltas are joined once.
    """

    def __init__(self) -> None:
        self._buffer = bytearray()
        self._event: str | None = None
        self.message: dict[str, Any] | None = None
        self.error: Any = None
        self.events = 0
        self._pieces: dict[tuple[int, str], list[str]] = {}  # (block, field) -> delta pieces

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        start = 0
        while (end := self._buffer.find(b"\n", start)) >= 0:
            self._line(bytes(self._buffer[start:end]).rstrip(b"\r"))
            start = end + 1
        del self._buffer[:start]

    def close(self) -> None:
        """Join what unfinished blocks received (a stream cut before content_block_stop)."""
        for index, _ in list(self._pieces):
            self._close(index)

    def _line(self, line: bytes) -> None:
        if line.startswith(b"event:"):
            self._event = line[6:].strip().decode(errors="replace")
        elif line.startswith(b"data:"):
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
            try:
                blocks[index]["input"] = orjson.loads(joined) if joined else {}
            except orjson.JSONDecodeError:
                blocks[index]["input_json_invalid"] = joined


class RecordWriter:
    """Appends records to a file, one JSON line each, flushed per record, thread-safe.

    A failure to write is reported once on stderr and then ignored: recording never breaks the
    session it records.
    """

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)
        self._file: IO[bytes] | None = None
        self._lock = threading.Lock()
        self.count = 0
        self.failed = False

    def open(self) -> None:
        self._file = open(self.path, "ab+")  # noqa: SIM115 - kept open for the proxy's lifetime
        if self._file.tell() == 0:
            self._write({"format": FORMAT, "version": VERSION})
            return
        self._file.seek(-1, 2)
        if self._file.read(1) != b"\n":  # a torn last line (killed mid-write): keep it apart
            self._file.write(b"\n")
            self._file.flush()

    def append(self, record: dict[str, Any]) -> None:
        with self._lock:
            try:
                self._write(record)
                self.count += 1
            except OSError as exc:
                if not self.failed:
                    import sys

                    print(f"agentgraph record: cannot write {self.path}: {exc}", file=sys.stderr)
                self.failed = True

    def _write(self, record: dict[str, Any]) -> None:
        assert self._file is not None, "RecordWriter.open() first"
        self._file.write(orjson.dumps(record) + b"\n")
        self._file.flush()

    def close(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None


class RecordingProxy:
    """The proxy, served from a background thread: ``with RecordingProxy(upstream, out) as p``."""

    def __init__(self, upstream: str, out: str | Path, *, host: str = "127.0.0.1", port: int = 0,
                 read_timeout_s: float = 600.0, redact: bool = False) -> None:
        self.upstream = upstream.rstrip("/")
        self.redact = redact
        self.writer = RecordWriter(out)
        self.read_timeout_s = read_timeout_s
        self._server = BackgroundApp(self._app, host, port, "agentgraph-record", shutdown_timeout_s=2.0)
        self._session: ClientSession | None = None
        self._seq = 0

    @property
    def url(self) -> str:
        return self._server.url

    def __enter__(self) -> RecordingProxy:
        self.writer.open()
        self._server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        # calls in flight get 2 s, then are cancelled (and still recorded); then the upstream
        # connections close on the loop that opened them
        self._server.stop(then=self._close_client)
        self.writer.close()

    async def _close_client(self) -> None:
        if self._session is not None:
            await self._session.close()
            self._session = None

    def _app(self) -> web.Application:
        app = web.Application(client_max_size=MAX_BODY_BYTES)
        app.router.add_route("*", "/{tail:.*}", self._forward)
        return app

    async def _forward(self, request: web.Request) -> web.StreamResponse:
        body = await request.read()
        self._seq += 1
        record: dict[str, Any] = {
            "kind": "call", "seq": self._seq, "method": request.method, "path": request.path_qs,
            "request_headers": _recorded(request.headers, RECORDED_REQUEST_HEADERS),
            "t_request_s": time.time(),
        }
        record["request"] = _scrub(_json_or_none(body))
        try:
            return await self._relay(request, body, record)
        finally:  # also when cancelled at shutdown: what was seen is recorded
            record.setdefault("t_last_byte_s", time.time())
            if request.path.startswith("/v1/messages"):
                self.writer.append(_safe_redact(record) if self.redact else record)

    def _client(self) -> ClientSession:
        if self._session is None:
            self._session = ClientSession(
                auto_decompress=False, connector=TCPConnector(limit=0),
                skip_auto_headers=("Accept-Encoding", "User-Agent"),
                timeout=ClientTimeout(total=None, sock_read=self.read_timeout_s))
        return self._session

    async def _relay(self, request: web.Request, body: bytes, record: dict[str, Any]) -> web.StreamResponse:
        headers = CIMultiDict((k, v) for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP)
        try:
            upstream = await self._client().request(request.method, self.upstream + request.path_qs,
                                                    data=body or None, headers=headers, allow_redirects=False)
        except (ClientError, TimeoutError) as exc:
            # never repr() the exception: aiohttp's carry the request headers, API key included
            status, what = (504, "timed out") if isinstance(exc, TimeoutError) else (502, "unreachable")
            message = f"upstream {what} ({type(exc).__name__} for {self.upstream})"
            record.update(status=status, error=message)
            return web.json_response({"type": "error", "error": {"type": "api_error",
                                      "message": f"agentgraph record: {message}"}}, status=status)
        async with upstream:
            return await self._stream(request, upstream, record)

    async def _stream(self, request: web.Request, upstream: ClientResponse,
                      record: dict[str, Any]) -> web.StreamResponse:
        record["status"] = upstream.status
        record["response_headers"] = _recorded(upstream.headers, RECORDED_RESPONSE_HEADERS)
        out = web.StreamResponse(status=upstream.status, reason=upstream.reason)
        for name, value in upstream.headers.items():  # repeated headers stay repeated
            if name.lower() not in _HOP_BY_HOP_RESPONSE:
                out.headers.add(name, value)
        await out.prepare(request)
        tap = _Tap(upstream.headers, record, request.path.startswith("/v1/messages"))
        try:
            async for chunk in upstream.content.iter_any():
                record.setdefault("t_first_byte_s", time.time())
                try:
                    await out.write(chunk)  # to the client first, unchanged
                except (ConnectionResetError, ClientConnectionResetError):
                    record["client_error"] = "client disconnected"
                    break
                tap.feed(chunk)
        except (ClientError, TimeoutError, ConnectionResetError) as exc:
            record["error"] = f"stream cut by the upstream ({type(exc).__name__})"
        record["t_last_byte_s"] = time.time()
        tap.finish()
        if "error" in record or "client_error" in record or request.transport is None:
            if request.transport is not None:
                request.transport.close()  # the upstream cut the stream: cut the client's too
            return out
        with suppress(ConnectionResetError, ClientConnectionResetError):
            await out.write_eof()
        return out


class _Tap:
    """Reads a copy of the response on the side; its failures cost only the record."""

    MAX_BUFFERED = 64 * 1024 * 1024

    def __init__(self, headers: Mapping[str, str], record: dict[str, Any], wanted: bool) -> None:
        self.record = record
        encoding = headers.get("content-encoding", "identity")
        self.sse = SSEAssembler() if "text/event-stream" in headers.get("content-type", "") else None
        self.inflate = zlib.decompressobj(31) if encoding == "gzip" else None
        self.raw: bytearray | None = bytearray() if wanted and self.sse is None else None
        if encoding not in ("identity", "gzip"):
            self._fail(f"content-encoding {encoding!r} is not decoded")

    def feed(self, chunk: bytes) -> None:
        if self.sse is None and self.raw is None:
            return
        try:
            plain = self.inflate.decompress(chunk) if self.inflate else chunk
            if self.sse is not None:
                self.sse.feed(plain)
            elif self.raw is not None:
                self.raw += plain
                if len(self.raw) > self.MAX_BUFFERED:
                    self._fail(f"response larger than {self.MAX_BUFFERED} bytes is not recorded")
        except Exception as exc:  # any parsing failure only costs the record
            self._fail(f"could not parse the response: {type(exc).__name__}: {exc}")

    def finish(self) -> None:
        if self.sse is not None:
            self.sse.close()
            self.record.update(response=self.sse.message, stream_error=self.sse.error, events=self.sse.events)
        elif self.raw is not None:
            self.record["response"] = _json_or_none(bytes(self.raw))

    def _fail(self, reason: str) -> None:
        self.record["record_error"] = reason
        self.sse = self.inflate = None
        self.raw = None


def _scrub(body: Any) -> Any:
    """Credentials a request body can carry (MCP server tokens) never reach the record."""
    if isinstance(body, dict):
        return {k: ("<removed>" if k in _SECRET_KEYS else _scrub(v)) for k, v in body.items()}
    if isinstance(body, list):
        return [_scrub(v) for v in body]
    return body


_SECRET_KEYS = frozenset({"authorization_token", "api_key", "x-api-key", "authorization", "password", "token"})


def _safe_redact(record: dict[str, Any]) -> dict[str, Any]:
    try:
        return redact(record)
    except Exception as exc:  # a body redaction cannot read: keep nothing of it
        return {k: v for k, v in record.items() if k not in ("request", "response")} | {
            "request": {"redacted": True}, "record_error": f"could not redact: {type(exc).__name__}"}


def redact(record: dict[str, Any]) -> dict[str, Any]:
    """The record with every piece of content replaced by its unit key, size and the few
    hashes import needs (tool results, sub-agent prompts): a redacted recording imports to the
    same hops, block hashes, usage and edges as the full one, but holds no prompt, message,
    tool description or tool input."""
    out = dict(record)
    request = record.get("request")
    if isinstance(request, dict) and isinstance(request.get("messages"), list):
        fixed, messages = request_units(request)
        kept = {k: v for k, v in request.items() if k in _SAFE_PARAMS}
        if isinstance(request.get("output_config"), dict):
            kept["output_config"] = {k: v for k, v in request["output_config"].items() if k == "effort"}
        out["request"] = {**kept, "redacted": True,
                          "fixed": [_unit_ref(u) for u in fixed],
                          "messages": [_message_ref(m, u) for m, u in zip(request["messages"], messages, strict=True)]}
    elif request is not None:
        out["request"] = {"redacted": True}  # not a Messages API request: nothing of it is kept
    response = record.get("response")
    if isinstance(response, dict) and isinstance(response.get("content"), list):
        kept_response = {k: v for k, v in response.items() if k in _SAFE_RESPONSE}
        out["response"] = {**kept_response, "content": [_block_ref(b) for b in response["content"]]}
    elif isinstance(response, dict) and response.get("type") != "error":
        out["response"] = {"redacted": True}
    return out


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


def _json_or_none(body: bytes) -> Any:
    if not body:
        return None
    try:
        return orjson.loads(body)
    except orjson.JSONDecodeError:
        return {"unparsed_bytes": len(body)}
