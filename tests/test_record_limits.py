"""The proxy keeps its memory bounded and keeps serving: endless streams, gzip bombs, many large
request bodies at once; and it records requests outside the Messages API as what they are."""

from __future__ import annotations

import asyncio
import contextlib
import http.client
import re
import signal
import statistics
import struct
import subprocess
import sys
import threading
import time
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from agentgraph.record import MAX_JSON_VALUES, MemorySink, RecordingProxy, SSEAssembler
from agentgraph.serving import BackgroundApp
from agentgraph.sources import import_paths

AGENTGRAPH = str(Path(sys.executable).parent / "agentgraph")
FLOOD_BYTES = 1 << 30
MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
           "content": [{"type": "text", "text": "ok"}], "usage": {"input_tokens": 3, "output_tokens": 1}}
REQUEST = {"model": "m", "max_tokens": 5, "stream": True, "messages": [{"role": "user", "content": "hi"}]}


def _event(name: str, data: dict[str, Any]) -> bytes:
    return b"event: %s\ndata: %s\n\n" % (name.encode(), orjson.dumps(data))


START = (_event("message_start", {"type": "message_start", "message": {**MESSAGE, "content": [], "stop_reason": None}})
         + _event("content_block_start", {"type": "content_block_start", "index": 0,
                                          "content_block": {"type": "text", "text": ""}}))
DELTAS = _event("content_block_delta", {"type": "content_block_delta", "index": 0,
                                        "delta": {"type": "text_delta", "text": "x" * 65536}}) * 16  # ~1 MB
END = (_event("content_block_stop", {"type": "content_block_stop", "index": 0})
       + _event("message_delta", {"type": "message_delta", "delta": {"stop_reason": "end_turn"},
                                  "usage": {"output_tokens": 9}})
       + _event("message_stop", {"type": "message_stop"}))


@cache
def _gzip_bomb() -> tuple[bytes, ...]:
    """A valid gzip of the same ~1 GB event stream in ~2 MB: after a full flush deflate restarts,
    so the compressed 1 MB block repeats byte for byte."""
    deflate = zlib.compressobj(9, zlib.DEFLATED, -15)
    head = deflate.compress(START) + deflate.flush(zlib.Z_FULL_FLUSH)
    block = deflate.compress(DELTAS) + deflate.flush(zlib.Z_FULL_FLUSH)
    assert deflate.compress(DELTAS) + deflate.flush(zlib.Z_FULL_FLUSH) == block, "deflate did not restart"
    tail = deflate.compress(END) + deflate.flush()
    n = FLOOD_BYTES // len(DELTAS)
    crc = zlib.crc32(START)
    for _ in range(n):
        crc = zlib.crc32(DELTAS, crc)
    size = len(START) + n * len(DELTAS) + len(END)
    trailer = struct.pack("<II", zlib.crc32(END, crc), size & 0xFFFFFFFF)
    return (b"\x1f\x8b\x08\x00\x00\x00\x00\x00\x00\xff" + head, *[block] * n, tail + trailer)


def _flood_pieces(kind: str) -> Iterator[bytes]:
    if kind == "gzip":
        yield from _gzip_bomb()
        return
    if kind == "one-line":  # an event whose data line never ends
        yield b"event: message_start\ndata: "
        for _ in range(FLOOD_BYTES // len(DELTAS)):
            yield b"x" * len(DELTAS)
        return
    yield START
    for _ in range(FLOOD_BYTES // len(DELTAS)):
        yield DELTAS
    yield END


class _FloodUpstream:
    """A real upstream: `x-flood: sse|gzip|one-line` gets ~1 GB of events (plain, as a gzip bomb,
    or one line that never ends), every other request a small message at once. It keeps the CRC
    of every flood it sent."""

    def __init__(self) -> None:
        self.sent: list[tuple[int, int]] = []  # (bytes, crc32) per flood
        self.server = BackgroundApp(self._app, name="flood-upstream")

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.StreamResponse:
        await request.read()
        kind = request.headers.get("x-flood")
        if kind is None:
            return web.json_response(MESSAGE)
        headers = {"content-type": "text/event-stream"} | ({"content-encoding": "gzip"} if kind == "gzip" else {})
        response = web.StreamResponse(headers=headers)
        await response.prepare(request)
        size, crc = 0, 0
        for piece in _flood_pieces(kind):
            await response.write(piece)
            if kind == "gzip":  # 2 MB would pass in a blink: pace it, so a second client comes meanwhile
                await asyncio.sleep(0.001)
            size, crc = size + len(piece), zlib.crc32(piece, crc)
        await response.write_eof()
        self.sent.append((size, crc))
        return response

    def __enter__(self) -> _FloodUpstream:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


def _status_kb(pid: int) -> dict[str, int]:
    fields = dict(line.split(":", 1) for line in Path(f"/proc/{pid}/status").read_text().splitlines())
    return {k: int(fields[k].split()[0]) for k in ("VmRSS", "VmHWM")}


def _quick_call(host: str, port: int) -> float:
    start = time.perf_counter()
    connection = http.client.HTTPConnection(host, port, timeout=30)
    try:
        connection.request("POST", "/v1/messages", orjson.dumps(REQUEST | {"stream": False}),
                           {"content-type": "application/json"})
        response = connection.getresponse()
        assert response.status == 200 and orjson.loads(response.read()) == MESSAGE
    finally:
        connection.close()
    return time.perf_counter() - start


@dataclass
class _Proxy:
    proc: subprocess.Popen[str]
    host: str = ""
    port: int = 0
    err: str = ""


@contextlib.contextmanager
def _recording(upstream: str, out: Path) -> Iterator[_Proxy]:
    """`agentgraph record --upstream UPSTREAM -o OUT` as a real subprocess, at the address it
    announces; stopped with Ctrl-C on the way out (its stderr is then in ``err``)."""
    proxy = _Proxy(subprocess.Popen([AGENTGRAPH, "record", "--upstream", upstream, "-o", str(out)],
                                    stderr=subprocess.PIPE, text=True))
    try:
        assert proxy.proc.stderr is not None
        found = re.search(r"recording http://([\d.]+):(\d+)", proxy.proc.stderr.readline())
        assert found, "the proxy did not announce its address"
        proxy.host, proxy.port = found.group(1), int(found.group(2))
        yield proxy
    finally:
        proxy.proc.send_signal(signal.SIGINT)
        _, proxy.err = proxy.proc.communicate(timeout=60)


@pytest.mark.parametrize("kind", ["sse", "gzip", "one-line"])
def test_a_1_gb_stream_passes_whole_with_flat_memory_and_a_truncated_record(kind: str, tmp_path: Path) -> None:
    """1 GB streamed (as events, inflated from a 2 MB gzip bomb, or as one endless line) through
    `agentgraph record`: the client gets every byte, the proxy's peak RSS stays under 300 MB, a
    second client is served meanwhile with < 1 s added latency, and the call is recorded,
    truncated at 64 MB."""
    out = tmp_path / "r.jsonl"
    with _FloodUpstream() as up, _recording(up.server.url, out) as proxy:
        host, port = proxy.host, proxy.port
        baseline = statistics.median(_quick_call(host, port) for _ in range(5))
        got: dict[str, Any] = {"bytes": 0, "crc": 0}

        def flood() -> None:
            connection = http.client.HTTPConnection(host, port, timeout=60)
            connection.request("POST", "/v1/messages", orjson.dumps(REQUEST),
                               {"content-type": "application/json", "x-flood": kind})
            response = connection.getresponse()
            while chunk := response.read1(1 << 20):
                got["bytes"] += len(chunk)
                got["crc"] = zlib.crc32(chunk, got["crc"])
            connection.close()

        flooding = threading.Thread(target=flood)
        started = time.monotonic()
        flooding.start()
        while got["bytes"] < (256 << 10 if kind == "gzip" else 128 << 20) and flooding.is_alive():
            time.sleep(0.005)
        during = [_quick_call(host, port) for _ in range(5)]
        assert flooding.is_alive(), "the flood ended before the second client was served"
        flooding.join(120)
        elapsed = time.monotonic() - started
        memory = _status_kb(proxy.proc.pid)
    assert proxy.proc.returncode == 0, proxy.err
    assert up.sent == [(got["bytes"], got["crc"])]  # byte for byte
    assert memory["VmHWM"] < 300 * 1024, memory
    assert max(during) < baseline + 1.0, (baseline, during)
    print(f"\n{kind}: {got['bytes'] >> 20} MiB in {elapsed:.1f} s, proxy peak RSS {memory['VmHWM'] >> 10} MiB, "
          f"second client {baseline * 1000:.1f} ms idle, max {max(during) * 1000:.1f} ms during the flood")
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()[1:]]
    assert sorted(r["truncated"] for r in records) == [False] * 10 + [True]
    line, flood_record = next((n, r) for n, r in enumerate(records, 2) if r["truncated"])
    assert flood_record["status"] == 200
    if kind == "one-line":  # nothing of it parses: no message, no event
        assert (flood_record["response"], flood_record["events"]) == (None, 0)
    else:
        text = flood_record["response"]["content"][0]["text"]
        assert set(text) == {"x"} and 60 << 20 < len(text) <= 64 << 20
    result = import_paths([out])
    assert [str(i) for i in result.issues if "truncated" in str(i)] == [
        f"{out}:{line}: call not imported: truncated: a body was larger than the recorder kept (--max-record-bytes) "
        "or had more JSON values than it parses"]


MANY_VALUES = b"[" + b"{}," * 20_000_000 + b"{}]"  # 60 MB of tiny JSON values: ~3 GB once parsed


@cache
def _many_values_gzip() -> bytes:
    return zlib.compress(MANY_VALUES, 1, wbits=31)


def test_60_mb_of_tiny_json_values_keep_memory_bounded_and_other_clients_served(tmp_path: Path) -> None:
    """A 60 MB request body `[{},{},...]` and a gzip response inflating to the same, both under
    every byte limit: `agentgraph record` does not parse them (more than MAX_JSON_VALUES values),
    keeps its peak RSS under 400 MB, and serves a second client meanwhile within 1 s; the record
    says what it left out and is reported as truncated on import."""

    async def handler(request: web.Request) -> web.Response:
        await request.read()
        if request.headers.get("x-many"):
            return web.Response(body=_many_values_gzip(), content_type="application/json",
                                headers={"content-encoding": "gzip"})
        return web.json_response(MESSAGE)

    out, server = tmp_path / "r.jsonl", _tiny_upstream(handler)
    _many_values_gzip()
    server.start()
    try:
        with _recording(server.url, out) as proxy:
            host, port = proxy.host, proxy.port
            baseline = statistics.median(_quick_call(host, port) for _ in range(5))
            statuses: list[int] = []

            def many() -> None:
                for _ in range(3):
                    connection = http.client.HTTPConnection(host, port, timeout=60)
                    connection.request("POST", "/v1/messages", MANY_VALUES, {"content-type": "application/json",
                                                                             "x-many": "1"})
                    response = connection.getresponse()
                    assert response.read() == _many_values_gzip()
                    statuses.append(response.status)
                    connection.close()

            sending = threading.Thread(target=many)
            sending.start()
            during = []
            while sending.is_alive():
                during.append(_quick_call(host, port))
            sending.join()
            memory = _status_kb(proxy.proc.pid)
    finally:
        server.stop()
    assert proxy.proc.returncode == 0 and statuses == [200] * 3, proxy.err
    print(f"\nproxy peak RSS {memory['VmHWM'] >> 10} MiB, second client {baseline * 1000:.1f} ms idle, "
          f"max {max(during) * 1000:.1f} ms of {len(during)} calls meanwhile")
    assert memory["VmHWM"] < 400 * 1024, memory
    assert during and max(during) < baseline + 1.0, (baseline, during)
    records = [orjson.loads(line) for line in out.read_bytes().splitlines()[1:]]
    big = [r for r in records if r["truncated"]]
    reason = "more than 1000000 JSON values"
    assert len(big) == 3 and len(records) == 5 + len(during) + 3
    assert all(r["request"] == r["response"] == {"unparsed_bytes": len(MANY_VALUES), "reason": reason} for r in big)
    issues = [str(i) for i in import_paths([out]).issues if "truncated" in str(i)]
    assert len(issues) == 3 and "JSON values" in issues[0]


def test_a_stream_event_or_tool_input_of_too_many_values_is_skipped_and_marks_the_call() -> None:
    """In a stream, an event or a tool input with more than MAX_JSON_VALUES values is not parsed:
    the rest of the message is rebuilt, and the assembler says it left something out."""
    many = b"[" + b"0," * (MAX_JSON_VALUES + 1) + b"0]"
    for stream in (START + b"data: " + many + b"\n\n" + END,
                   START.replace(b'"text","text":""', b'"tool_use","id":"t","name":"n","input":{}')
                   + _event("content_block_delta", {"type": "content_block_delta", "index": 0, "delta": {
                       "type": "input_json_delta", "partial_json": many.decode()}}) + END):
        sse = SSEAssembler()
        sse.feed(stream)
        sse.close()
        assert sse.too_large and sse.message is not None and sse.message["stop_reason"] == "end_turn"
        assert sse.message["content"][0].get("input", {}) == {}


def _tiny_upstream(handler: Any) -> BackgroundApp:
    def app() -> web.Application:
        application = web.Application(client_max_size=64 << 20)
        application.router.add_route("*", "/{tail:.*}", handler)
        return application

    return BackgroundApp(app, name="tiny")


@pytest.mark.parametrize("encoding", ["identity", "gzip"])
def test_a_json_body_past_the_record_limit_passes_whole_and_is_marked_truncated(encoding: str) -> None:
    """A 3 MB answer with a 1 MB record limit: the client gets it whole, the record is marked
    truncated and holds no cut JSON."""
    big = orjson.dumps(MESSAGE | {"content": [{"type": "text", "text": "y" * (3 << 20)}]})
    body = zlib.compress(big, wbits=31) if encoding == "gzip" else big

    async def handler(request: web.Request) -> web.Response:
        return web.Response(body=body, content_type="application/json",
                            headers={"content-encoding": encoding} if encoding == "gzip" else {})

    sink, server = MemorySink(), _tiny_upstream(handler)
    server.start()
    try:
        with RecordingProxy(server.url, sink, max_record_bytes=1 << 20) as proxy:
            host, port = proxy.url.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            connection.request("POST", "/v1/messages", orjson.dumps(REQUEST))
            received = connection.getresponse().read()
            connection.close()
    finally:
        server.stop()
    assert received == body
    (rec,) = sink.records
    assert (rec.status, rec.truncated, rec.response, rec.record_error) == (200, True, None, None)


def test_request_bodies_past_the_inflight_budget_get_a_413() -> None:
    """With 1 MB in flight allowed: while a 600 kB body is held, another 600 kB body gets an
    API-style 413 (and never reaches the upstream), a 300 kB one passes; once the first call
    ends its bytes are free again. A body larger than the budget alone, or sent chunked, is refused too."""
    release, arrived = threading.Event(), threading.Event()
    seen: list[int] = []

    async def handler(request: web.Request) -> web.Response:
        seen.append(len(await request.read()))
        if request.headers.get("x-hold"):
            arrived.set()
            while not release.is_set():
                await asyncio.sleep(0.01)
        return web.json_response(MESSAGE)

    def post(url: str, size: int, chunked: bool = False, hold: bool = False) -> tuple[int, Any]:
        host, port = url.removeprefix("http://").split(":")
        connection = http.client.HTTPConnection(host, int(port), timeout=30)
        body: Any = (b"x" * 65536 for _ in range(size // 65536)) if chunked else b"x" * size
        connection.request("POST", "/v1/messages", body, {"x-hold": "1"} if hold else {}, encode_chunked=chunked)
        response = connection.getresponse()
        result = response.status, orjson.loads(response.read())
        connection.close()
        return result

    sink, server = MemorySink(), _tiny_upstream(handler)
    server.start()
    try:
        with RecordingProxy(server.url, sink, max_inflight_bytes=1_000_000) as proxy:
            held: list[tuple[int, Any]] = []
            holder = threading.Thread(target=lambda: held.append(post(proxy.url, 600_000, hold=True)))
            holder.start()
            assert arrived.wait(10)
            refused = post(proxy.url, 600_000)
            small = post(proxy.url, 300_000)
            release.set()
            holder.join(10)
            again = post(proxy.url, 600_000)
            alone = post(proxy.url, 1_000_001)
            chunked = post(proxy.url, 65536 * 20, chunked=True)
            assert proxy.inflight_bytes == 0
    finally:
        server.stop()
    assert refused[0] == 413 and refused[1]["type"] == "error"
    assert refused[1]["error"]["type"] == "request_too_large"
    assert [s for s, _ in (held[0], small, again, alone, chunked)] == [200, 200, 200, 413, 413]
    assert seen == [600_000, 300_000, 600_000]
    assert sorted(r.status for r in sink.records if r.status == 413) == [413, 413, 413]


@pytest.mark.parametrize(("sent", "kind", "recorded", "forwarded"), [
    ("/v1/messages?beta=true", "call", "/v1/messages?beta=true", "/v1/messages?beta=true"),
    ("/v1/%6Dessages?beta=true", "call", "/v1/messages?beta=true", "/v1/messages?beta=true"),
    ("/v1/messages/./count_tokens", "call", "/v1/messages/count_tokens", "/v1/messages/count_tokens"),
    ("/v1/messages/../../admin", "request", "/admin", "/admin"),
    ("/v1/messages/batches", "request", "/v1/messages/<removed>", "/v1/messages/batches"),
    ("/v1/models?limit=5", "request", "/v1/models?limit=<removed>", "/v1/models?limit=5"),
    ("/v1/messages/../../admin/sk-ant-in-path-0123456789", "request", "/admin/<removed>",
     "/admin/sk-ant-in-path-0123456789"),
], ids=["messages", "percent-encoded", "count-tokens", "dot-segments", "batches", "models", "key-in-path"])
def test_every_path_is_forwarded_and_recorded_as_what_it_is(sent: str, kind: str, recorded: str,
                                                            forwarded: str, tmp_path: Path) -> None:
    """Requests are forwarded as before; the record carries the normalized path, and only
    `/v1/messages` (and `count_tokens`) are Messages calls: `/v1/messages/../../admin` is not.
    Other requests keep their first path segment (after `/v1`): a key in a later one is not recorded."""
    out, seen = tmp_path / "r.jsonl", []

    async def handler(request: web.Request) -> web.Response:
        seen.append(request.raw_path)
        return web.json_response(MESSAGE)

    server = _tiny_upstream(handler)
    server.start()
    try:
        with RecordingProxy(server.url, out) as proxy:
            host, port = proxy.url.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            connection.request("POST", sent, orjson.dumps(REQUEST | {"stream": False}),
                               {"content-type": "application/json", "x-claude-code-session-id": "s1"})
            assert connection.getresponse().status == 200
            connection.close()
    finally:
        server.stop()
    assert seen == [forwarded]
    (rec,) = (orjson.loads(line) for line in out.read_bytes().splitlines()[1:])
    assert (rec["kind"], rec["path"]) == (kind, recorded)
    assert "sk-ant" not in out.read_text()
    result = import_paths([out])
    assert result.issues == ()
    assert len(result.trace) == (1 if recorded.startswith("/v1/messages?") else 0)
