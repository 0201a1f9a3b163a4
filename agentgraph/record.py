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
from pathlib import Path
from typing import IO, Any

import orjson
from aiohttp import ClientError, ClientSession, ClientTimeout, web

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
MAX_BODY_BYTES = 256 * 1024 * 1024


def _recorded(headers: Mapping[str, str], allowed: frozenset[str]) -> dict[str, str]:
    out = {}
    for name, value in headers.items():
        low = name.lower()
        if low in allowed or low.startswith("anthropic-ratelimit-"):
            out[low] = value
    return out


class SSEAssembler:
    """Rebuilds the final message from a Messages API event stream fed in arbitrary chunks."""

    def __init__(self) -> None:
        self._buffer = b""
        self._event: str | None = None
        self.message: dict[str, Any] | None = None
        self.error: Any = None
        self.events = 0
        self._partial: dict[int, str] = {}

    def feed(self, chunk: bytes) -> None:
        self._buffer += chunk
        while b"\n" in self._buffer:
            line, self._buffer = self._buffer.split(b"\n", 1)
            self._line(line.rstrip(b"\r"))

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

    def _delta(self, index: int, delta: dict[str, Any]) -> None:
        blocks = self.message["content"] if self.message else []
        if not 0 <= index < len(blocks):
            return
        block, kind = blocks[index], delta.get("type")
        if kind == "text_delta":
            block["text"] = block.get("text", "") + str(delta.get("text", ""))
        elif kind == "thinking_delta":
            block["thinking"] = block.get("thinking", "") + str(delta.get("thinking", ""))
        elif kind == "signature_delta":
            block["signature"] = str(delta.get("signature", ""))
        elif kind == "input_json_delta":
            self._partial[index] = self._partial.get(index, "") + str(delta.get("partial_json", ""))

    def _close(self, index: int) -> None:
        if index in self._partial and self.message is not None:
            text = self._partial.pop(index)
            try:
                self.message["content"][index]["input"] = orjson.loads(text) if text else {}
            except orjson.JSONDecodeError:
                self.message["content"][index]["input_json_invalid"] = text


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
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for the proxy's lifetime
        if self._file.tell() == 0:
            self._write({"format": FORMAT, "version": VERSION})

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
        self._server = BackgroundApp(self._app, host, port, "agentgraph-record")
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
        if self._session is not None:
            self._server.run(self._session.close(), timeout_s=30)
        self._server.stop()
        self.writer.close()

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
        record["request"] = _json_or_none(body)
        try:
            response = await self._relay(request, body, record)
        finally:
            record.setdefault("t_last_byte_s", time.time())
            if request.path.startswith("/v1/messages"):
                self.writer.append(redact(record) if self.redact else record)
        return response

    async def _relay(self, request: web.Request, body: bytes, record: dict[str, Any]) -> web.StreamResponse:
        if self._session is None:
            self._session = ClientSession(auto_decompress=False,
                                          timeout=ClientTimeout(total=None, sock_read=self.read_timeout_s))
        headers = {k: v for k, v in request.headers.items() if k.lower() not in _HOP_BY_HOP}
        try:
            upstream = await self._session.request(request.method, self.upstream + request.path_qs,
                                                   data=body, headers=headers)
        except (ClientError, TimeoutError) as exc:
            timed_out = isinstance(exc, TimeoutError)
            status, what = (504, "timed out") if timed_out else (502, "unreachable")
            record.update(status=status, error=f"upstream {what}: {exc!r}")
            return web.json_response({"type": "error", "error": {"type": "api_error",
                                      "message": f"agentgraph record: upstream {what} ({exc!r})"}},
                                     status=status)
        async with upstream:
            record["status"] = upstream.status
            record["response_headers"] = _recorded(upstream.headers, RECORDED_RESPONSE_HEADERS)
            out = web.StreamResponse(status=upstream.status, reason=upstream.reason, headers={
                k: v for k, v in upstream.headers.items() if k.lower() not in _HOP_BY_HOP})
            await out.prepare(request)
            sse = SSEAssembler() if "text/event-stream" in upstream.headers.get("content-type", "") else None
            inflate = zlib.decompressobj(31) if upstream.headers.get("content-encoding") == "gzip" else None
            raw = bytearray()
            try:
                async for chunk in upstream.content.iter_any():
                    record.setdefault("t_first_byte_s", time.time())
                    await out.write(chunk)  # to the client first, unchanged
                    try:  # the recorder never breaks the stream it records
                        plain = inflate.decompress(chunk) if inflate else chunk
                        if sse is not None:
                            sse.feed(plain)
                        else:
                            raw += plain
                    except Exception as exc:
                        record["record_error"] = f"could not parse the response: {exc!r}"
                        sse, inflate, raw = None, None, bytearray()
            except (ClientError, TimeoutError, ConnectionResetError) as exc:
                record["error"] = f"stream cut: {exc!r}"
            record["t_last_byte_s"] = time.time()
            if sse is not None:
                record.update(response=sse.message, stream_error=sse.error, events=sse.events)
            elif "record_error" not in record:
                record["response"] = _json_or_none(bytes(raw))
            if "error" in record and request.transport is not None:
                request.transport.close()  # the upstream cut the stream: cut the client's too
                return out
            await out.write_eof()
        return out


def redact(record: dict[str, Any]) -> dict[str, Any]:
    """The record with every piece of content replaced by its unit key, size and the few
    hashes import needs (tool results, sub-agent prompts): a redacted recording imports to the
    same hops, block hashes, usage and edges as the full one, but holds no prompt, message,
    tool description or tool input."""
    out = dict(record)
    request = record.get("request")
    if isinstance(request, dict) and isinstance(request.get("messages"), list):
        fixed, messages = request_units(request)
        kept = {k: v for k, v in request.items() if k not in _CONTENT_KEYS}
        out["request"] = {**kept, "redacted": True,
                          "fixed": [_unit_ref(u) for u in fixed],
                          "messages": [_message_ref(m, u) for m, u in zip(request["messages"], messages, strict=True)]}
    response = record.get("response")
    if isinstance(response, dict) and isinstance(response.get("content"), list):
        out["response"] = {**response, "content": [_block_ref(b) for b in response["content"]]}
    return out


_CONTENT_KEYS = frozenset({"messages", "system", "tools", "metadata", "tool_choice"})


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
