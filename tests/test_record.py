"""The recording proxy: transparent to the client, one record per call, no secrets on disk."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from itertools import pairwise
from pathlib import Path
from typing import Any

import orjson
import pytest

from agentgraph.emulator import ScriptedUpstream, parse_script
from agentgraph.record import RecordingProxy
from agentgraph.sources import import_paths

SCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "scripts"
AGENTGRAPH = str(Path(sys.executable).parent / "agentgraph")
KEY = "sk-agentgraph-secret-key-123"
SCRIPT = {"agents": {"main": {"turns": [
    {"text": "first", "tool_use": [{"name": "Bash", "input": {"command": "ls"}}]},
    {"text": "second"},
    {"text": "third", "delay_s": 5.0},
]}}}


def _body(turn: int, stream: bool = True) -> dict[str, Any]:
    messages: list[dict[str, Any]] = [{"role": "user", "content": "hello"}]
    for i in range(turn):
        messages += [{"role": "assistant", "content": [{"type": "text", "text": f"t{i}"}]},
                     {"role": "user", "content": [{"type": "text", "text": f"more {i}"}]}]
    return {"model": "claude-test-1", "max_tokens": 100, "stream": stream, "messages": messages,
            "system": [{"type": "text", "text": "be brief " * 300, "cache_control": {"type": "ephemeral"}}]}


def _post(url: str, body: dict[str, Any], timeout: float = 30) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url + "/v1/messages?beta=true", data=orjson.dumps(body), method="POST",
                                     headers={"content-type": "application/json", "x-api-key": KEY,
                                              "authorization": f"Bearer {KEY}", "cookie": f"s={KEY}",
                                              "x-claude-code-session-id": "sess-1"})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as response:
            return response.status, {k.lower(): v for k, v in response.headers.items()}, response.read()
    except urllib.error.HTTPError as err:
        with err:
            return err.code, {k.lower(): v for k, v in err.headers.items()}, err.read()


def test_stream_and_json_pass_through_unchanged(tmp_path: Path) -> None:
    """The client gets the same status, request-id and bytes through the proxy as directly."""
    for stream in (True, False):
        with ScriptedUpstream(SCRIPT) as direct, ScriptedUpstream(SCRIPT) as behind, \
                RecordingProxy(behind.url, tmp_path / f"r{stream}.jsonl") as proxy:
            status_a, headers_a, body_a = _post(direct.url, _body(0, stream))
            status_b, headers_b, body_b = _post(proxy.url, _body(0, stream))
        assert (status_b, headers_b["request-id"], body_b) == (status_a, headers_a["request-id"], body_a)
        assert headers_b["content-type"] == headers_a["content-type"]


def test_one_record_per_call_with_the_reassembled_message(tmp_path: Path) -> None:
    """A streamed call is recorded with its request, the message rebuilt from the events, usage
    and timings in order."""
    out = tmp_path / "r.jsonl"
    with ScriptedUpstream(SCRIPT) as up, RecordingProxy(up.url, out) as proxy:
        _post(proxy.url, _body(0))
    header, rec = (orjson.loads(line) for line in out.read_bytes().splitlines())
    assert header == {"format": "agentgraph.record", "version": 2}
    assert rec["kind"] == "call" and rec["path"] == "/v1/messages?beta=true" and rec["truncated"] is False
    assert rec["status"] == 200 and rec["request"] == _body(0)
    assert [b["type"] for b in rec["response"]["content"]] == ["text", "tool_use"]
    assert rec["response"]["content"][1]["input"] == {"command": "ls"}
    assert rec["response"]["stop_reason"] == "tool_use"
    assert rec["response"]["usage"] == up.log[0].usage | {"output_tokens": up.log[0].usage["output_tokens"]}
    assert rec["t_request_s"] <= rec["t_first_byte_s"] <= rec["t_last_byte_s"]
    assert rec["request_headers"]["x-claude-code-session-id"] == "sess-1"


def test_secrets_never_touch_disk(tmp_path: Path) -> None:
    """API key, authorization and cookie values appear nowhere in what the proxy wrote."""
    out = tmp_path / "r.jsonl"
    with ScriptedUpstream(SCRIPT) as up, RecordingProxy(up.url, out) as proxy:
        _post(proxy.url, _body(0))
        _post(proxy.url, _body(1, stream=False))
    written = b"".join(p.read_bytes() for p in tmp_path.rglob("*") if p.is_file())
    assert KEY.encode() not in written
    assert not re.search(rb"x-api-key|authorization|cookie", written, flags=re.I)


def test_upstream_errors_reach_the_client_and_are_recorded(tmp_path: Path) -> None:
    """A 400 from upstream passes through as is; its record imports as a reported non-hop."""
    out = tmp_path / "r.jsonl"
    with ScriptedUpstream(SCRIPT) as up, RecordingProxy(up.url, out) as proxy:
        direct = _post(up.url, _body(7))
        status, _, body = _post(proxy.url, _body(7))
    assert (status, body) == (direct[0], direct[2]) and status == 400
    assert orjson.loads(body)["error"]["type"] == "invalid_request_error"
    result = import_paths([out])
    assert [str(i) for i in result.issues] == [f"{out}:2: call not imported: status 400 (upstream error)"]


def test_5xx_and_its_retry_headers_pass_through(tmp_path: Path) -> None:
    """An overloaded (529) answer reaches the client with its body and retry headers; the retry
    then succeeds; both calls are recorded, only the good one imports."""
    script = {"agents": {"main": {"turns": [
        {"text": "ok", "error": {"status": 529, "type": "overloaded_error", "message": "busy"}}]}}}
    out = tmp_path / "r.jsonl"
    with ScriptedUpstream(script) as up, RecordingProxy(up.url, out) as proxy:
        status, headers, body = _post(proxy.url, _body(0))
        retry = _post(proxy.url, _body(0))
    assert (status, headers["retry-after"], headers["x-should-retry"]) == (529, "0", "true")
    assert orjson.loads(body) == {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}}
    assert retry[0] == 200
    result = import_paths([out])
    assert (len(result.trace), [str(i) for i in result.issues]) == (
        1, [f"{out}:2: call not imported: status 529 (upstream error)"])
    assert orjson.loads(out.read_bytes().splitlines()[1])["response_headers"]["retry-after"] == "0"


def test_unreachable_upstream_gives_an_api_style_502(tmp_path: Path) -> None:
    """No upstream: the client gets 502 with an API error body, and the call is recorded."""
    out = tmp_path / "r.jsonl"
    with RecordingProxy("http://127.0.0.1:9", out) as proxy:
        status, _, body = _post(proxy.url, _body(0))
    assert status == 502
    assert "upstream unreachable" in orjson.loads(body)["error"]["message"]
    assert orjson.loads(out.read_bytes().splitlines()[1])["status"] == 502


def test_upstream_timeout_gives_a_504(tmp_path: Path) -> None:
    """An upstream slower than the proxy's read timeout: 504 with an API error body, recorded."""
    out = tmp_path / "r.jsonl"
    with ScriptedUpstream(SCRIPT) as up, RecordingProxy(up.url, out, read_timeout_s=0.5) as proxy:
        status, _, body = _post(proxy.url, _body(2))  # the third turn waits 5 s
    assert status == 504
    assert "upstream timed out" in orjson.loads(body)["error"]["message"]
    assert orjson.loads(out.read_bytes().splitlines()[1])["status"] == 504


def test_kill_9_mid_stream_leaves_complete_records(tmp_path: Path) -> None:
    """The proxy killed during a slow call: the calls before it are on disk and import."""
    out = tmp_path / "r.jsonl"
    with ScriptedUpstream(SCRIPT) as up:
        proc = subprocess.Popen([AGENTGRAPH, "record", "--upstream", up.url, "-o", str(out)],
                                stderr=subprocess.PIPE, text=True)
        assert proc.stderr is not None
        url = re.search(r"recording (http://\S+)", proc.stderr.readline())
        assert url, "proxy did not announce its address"
        _post(url.group(1), _body(0))
        _post(url.group(1), _body(1))
        slow = subprocess.Popen([sys.executable, "-c", "import sys, urllib.request as u; "
                                 "u.urlopen(u.Request(sys.argv[1] + '/v1/messages', data=sys.argv[2].encode(), "
                                 "method='POST', headers={'content-type': 'application/json'}), timeout=30)",
                                 url.group(1), json.dumps(_body(2))], stderr=subprocess.DEVNULL)
        time.sleep(1.0)  # the upstream holds the third call for 5 s
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait(10)
        proc.stderr.close()
        slow.wait(30)
    result = import_paths([out])
    assert result.issues == ()
    assert [h.output_tokens > 0 for h in result.trace] == [True, True]


def test_redacted_recording_imports_to_the_same_blocks(tmp_path: Path) -> None:
    """redact() keeps unit keys and sizes, tool results and prompt hashes, and nothing else:
    the import is the same hops, hash ids, usage and edges; the text is gone."""
    from agentgraph.record import CallRecord, redact

    full = tmp_path / "full.jsonl"
    with ScriptedUpstream(SCRIPT) as up, RecordingProxy(up.url, full) as proxy:
        _post(proxy.url, _body(0))
        _post(proxy.url, _body(1))
    header, *records = full.read_bytes().splitlines()
    red = tmp_path / "red.jsonl"
    red.write_bytes(b"\n".join([header, *(orjson.dumps(redact(CallRecord.from_json(orjson.loads(r))).to_json())
                                          for r in records)]) + b"\n")
    a, b = import_paths([full]).trace, import_paths([red]).trace
    assert [(h.hash_ids, h.prompt_tokens, h.usage, [t.name for t in h.tool_calls]) for h in a] == [
        (h.hash_ids, h.prompt_tokens, h.usage, [t.name for t in h.tool_calls]) for h in b]
    assert a.edges == b.edges
    assert b"be brief" not in red.read_bytes() and b"more 0" not in red.read_bytes()
    assert b"be brief" in full.read_bytes()


@pytest.mark.realcli
def test_recorded_real_session_matches_its_transcript(claude_cli: Path, tmp_path: Path) -> None:
    """`agentgraph record -- claude ...`: the recording imports to the same hops, agents, edges,
    tool calls and usage as the CLI's own transcript, and its shared prefixes are the cache hits."""
    from tests.realcli import cli_env

    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    out = tmp_path / "session.record.jsonl"
    script = parse_script(json.loads((SCRIPTS / "tools_and_subagent.json").read_text()), {"WORK_DIR": str(work)})
    redacted = tmp_path / "session.redacted.jsonl"
    with ScriptedUpstream(script) as up, RecordingProxy(up.url, redacted, redact=True) as inner:
        proc = subprocess.run([AGENTGRAPH, "record", "--upstream", inner.url, "-o", str(out), "--",
                               str(claude_cli), "-p", "go", "--allowedTools", "Bash", "Read", "Write", "Agent"],
                              cwd=work, env=cli_env(home, "http://127.0.0.1:9"), capture_output=True, text=True,
                              timeout=180, check=False)
    assert proc.returncode == 0, proc.stderr
    assert "recorded 6 call(s)" in proc.stderr
    recorded = import_paths([out])
    transcript = import_paths([home / ".claude" / "projects"])
    assert recorded.issues == () and transcript.issues == ()

    def shape(trace: Any) -> list[tuple[Any, ...]]:
        return [(h.agent_id, h.index, h.prompt_tokens, h.output_tokens, h.usage,
                 [(t.name, json.loads(t.input_json), t.is_error) for t in h.tool_calls]) for h in trace]

    assert shape(recorded.trace) == shape(transcript.trace)
    assert sorted((e.kind, e.src, e.dst) for e in recorded.trace.edges) == sorted(
        (e.kind, e.src, e.dst) for e in transcript.trace.edges)
    assert [(a.agent_id, a.parent_agent_id, a.spawn_tool_use_id) for a in recorded.trace.agents] == [
        (a.agent_id, a.parent_agent_id, a.spawn_tool_use_id) for a in transcript.trace.agents]
    assert [h.shared_prefix_tokens for h in recorded.trace if h.index] == [
        h.usage.cache_read_tokens for h in recorded.trace if h.index and h.usage]
    reads = [h.usage.cache_read_tokens for h in recorded.trace if h.agent_id == "main" and h.usage]
    assert reads[0] == 0 and all(a < b for a, b in pairwise(reads))  # grows
    assert b"sk-agentgraph-emulator" not in out.read_bytes()
    # the same calls recorded redacted one hop further: same blocks, none of the CLI's text
    hidden = import_paths([redacted])
    assert hidden.issues == ()
    assert [(h.hash_ids, h.prompt_tokens, h.usage) for h in hidden.trace] == [
        (h.hash_ids, h.prompt_tokens, h.usage) for h in recorded.trace]
    assert sorted((e.kind, e.src, e.dst) for e in hidden.trace.edges) == sorted(
        (e.kind, e.src, e.dst) for e in recorded.trace.edges)
    system_text = orjson.loads(out.read_bytes().splitlines()[1])["request"]["system"][-1]["text"]
    as_written = orjson.dumps(system_text[:200])[1:-1]  # JSON-escaped, as it sits in the files
    assert as_written in out.read_bytes()
    assert as_written not in redacted.read_bytes()
    assert b"Count the files" not in redacted.read_bytes()


def test_damaged_recording_keeps_the_good_calls(tmp_path: Path) -> None:
    """Bad lines and failed calls in a recording are reported by line; good calls import."""
    out = tmp_path / "r.jsonl"
    with ScriptedUpstream(SCRIPT) as up, RecordingProxy(up.url, out) as proxy:
        _post(proxy.url, _body(0))
        _post(proxy.url, _body(1))
    header, first, second = out.read_bytes().splitlines()
    cut = orjson.loads(second) | {"response": None, "error": "stream cut"}
    failed = orjson.loads(second) | {"status": 529}
    odd = {"kind": "note"}
    out.write_bytes(b"\n".join([header, first, orjson.dumps(cut), orjson.dumps(failed), orjson.dumps(odd),
                                second, b'{"kind": "call", "seq"']))
    result = import_paths([out])
    assert [str(i) for i in result.issues] == [
        f"{out}:3: call not imported: the call failed mid-way (stream cut)",
        f"{out}:4: call not imported: status 529 (upstream error)",
        f"{out}:5: unknown record kind 'note'; skipped",
        f"{out}:7: truncated last line (no newline, incomplete JSON); skipped",
    ]
    assert [h.index for h in result.trace] == [0, 1]


def test_64_concurrent_streams_lose_no_record_and_corrupt_no_stream(tmp_path: Path) -> None:
    """64 sessions streaming at once: every client stream is complete and well-formed, and the
    file holds exactly one record per session, each matching what its client received."""
    from concurrent.futures import ThreadPoolExecutor

    from agentgraph.record import SSEAssembler

    out = tmp_path / "r.jsonl"

    def one(args: tuple[str, int]) -> tuple[int, bytes]:
        url, n = args
        body = _body(0) | {"system": [{"type": "text", "text": f"session {n} " * 600,
                                       "cache_control": {"type": "ephemeral"}}]}
        request = urllib.request.Request(url + "/v1/messages", data=orjson.dumps(body), method="POST",
                                         headers={"content-type": "application/json",
                                                  "x-claude-code-session-id": f"s{n:02d}"})
        with urllib.request.urlopen(request, timeout=60) as response:
            return n, response.read()

    with ScriptedUpstream(SCRIPT) as up, RecordingProxy(up.url, out) as proxy, \
            ThreadPoolExecutor(64) as pool:
        streams = dict(pool.map(one, [(proxy.url, n) for n in range(64)]))
    records = {r["request_headers"]["x-claude-code-session-id"]: r
               for r in map(orjson.loads, out.read_bytes().splitlines()[1:])}
    assert sorted(records) == [f"s{n:02d}" for n in range(64)]
    for n, raw in streams.items():
        assert raw.endswith(b"event: message_stop\ndata: {\"type\":\"message_stop\"}\n\n")
        sse = SSEAssembler()
        sse.feed(raw)
        assert sse.error is None and sse.message == records[f"s{n:02d}"]["response"]
        assert sse.message is not None and sse.message["usage"]["cache_creation_input_tokens"] > 0


def test_emulate_and_record_commands_work_together(tmp_path: Path) -> None:
    """`agentgraph emulate` serves a script; `agentgraph record -- CMD` runs CMD against it
    through the proxy and exits with CMD's status."""
    script = tmp_path / "s.json"
    script.write_bytes(orjson.dumps(SCRIPT))
    emu = subprocess.Popen([AGENTGRAPH, "emulate", "--script", str(script), "--port", "0"],
                           stderr=subprocess.PIPE, text=True)
    try:
        assert emu.stderr is not None
        found = re.search(r"at (http://\S+)", emu.stderr.readline())
        assert found, "emulate did not announce its address"
        client = ("import os, sys, urllib.request as u; r = u.urlopen(u.Request(os.environ['ANTHROPIC_BASE_URL'] "
                  "+ '/v1/messages', data=sys.argv[1].encode(), method='POST', headers={'content-type': "
                  "'application/json'})); sys.exit(0 if b'first' in r.read() else 5)")
        out = tmp_path / "r.jsonl"
        ok = subprocess.run([AGENTGRAPH, "record", "--upstream", found.group(1), "-o", str(out), "--",
                             sys.executable, "-c", client, json.dumps(_body(0))], capture_output=True,
                            text=True, timeout=60, check=False)
        failing = subprocess.run([AGENTGRAPH, "record", "--upstream", found.group(1), "-o", str(out), "--",
                                  sys.executable, "-c", "import sys; sys.exit(7)"], timeout=60, check=False,
                                 capture_output=True)
    finally:
        emu.send_signal(signal.SIGINT)
        emu.wait(30)
        assert emu.stderr is not None
        emu.stderr.close()
    assert (ok.returncode, failing.returncode, emu.returncode) == (0, 7, 0)
    assert "recorded 1 call(s)" in ok.stderr
    assert len(import_paths([out]).trace) == 1


REPLAYS = Path(__file__).resolve().parents[1] / "replays" / "recorded"


def test_bundled_recordings_have_their_shapes() -> None:
    """replays/recorded: a 22-call loop, a fan-out to three sub-agents, pauses past the TTL."""
    loop = import_paths([REPLAYS / "long-loop.record.jsonl"]).trace
    assert (len(loop), {h.agent_id for h in loop}) == (22, {"main"})
    assert [h.shared_prefix_tokens for h in loop][1:] == [h.prompt_tokens for h in loop][:-1]

    fan = import_paths([REPLAYS / "fan-out.record.jsonl"]).trace
    subs = [a for a in fan.agents if a.agent_id != "main"]
    assert len(subs) == 3 and all(a.parent_agent_id == "main" for a in subs)
    kinds = sorted(e.kind.value for e in fan.edges)
    assert kinds.count("spawn") == 3 and kinds.count("join") == 3

    ttl = import_paths([REPLAYS / "ttl-pauses.record.jsonl"]).trace
    reads = [h.usage.cache_read_tokens for h in ttl if h.usage]
    waits = [h.tool_wait_s for h in ttl]
    # the emulator's cache clock ran 100x: a 4 s tool pause is 400 s, past the 300 s TTL
    assert [w > 3.5 for w in waits] == [True, False, True, False]
    assert reads[1] == 0 and reads[3] == 0 and reads[2] > 0
    for path in REPLAYS.glob("*.jsonl"):  # redacted: none of the CLI's or the script's text
        assert b"Claude" not in path.read_bytes().replace(b"claude-code", b"").replace(b"claude-cli", b"")


def _faulty_upstream(kind: str) -> Any:
    """An upstream that streams a message start, then an error event (or cuts the connection)."""
    from aiohttp import web

    from agentgraph.serving import BackgroundApp

    start = {"type": "message_start", "message": {"id": "m1", "type": "message", "role": "assistant",
                                                   "model": "x", "content": [], "usage": {"input_tokens": 5}}}

    async def handler(request: web.Request) -> web.StreamResponse:
        await request.read()
        response = web.StreamResponse(headers={"content-type": "text/event-stream", "request-id": "req_f"})
        await response.prepare(request)
        await response.write(b"event: message_start\ndata: " + orjson.dumps(start) + b"\n\n")
        if kind == "error":
            error = {"type": "error", "error": {"type": "overloaded_error", "message": "Overloaded"}}
            await response.write(b"event: error\ndata: " + orjson.dumps(error) + b"\n\n")
            await response.write_eof()
        elif kind == "garbled":  # an event the recorder cannot apply (index is not a number)
            await response.write(b'event: content_block_delta\ndata: {"type":"content_block_delta","index":"x"}\n\n')
            await response.write(b'event: message_stop\ndata: {"type":"message_stop"}\n\n')
            await response.write_eof()
        else:
            assert request.transport is not None
            request.transport.close()  # the upstream drops the connection mid-stream
        return response

    def app() -> web.Application:
        application = web.Application()
        application.router.add_post("/v1/messages", handler)
        return application

    return BackgroundApp(app, name=f"faulty-{kind}")


def _raw_stream(url: str) -> tuple[bytes, str | None]:
    request = urllib.request.Request(url + "/v1/messages", data=orjson.dumps(_body(0)), method="POST",
                                     headers={"content-type": "application/json"})
    data = b""
    try:
        with urllib.request.urlopen(request, timeout=30) as response:
            while chunk := response.read1(65536):
                data += chunk
    except Exception as exc:  # the cut stream surfaces as a client-side error
        return data, type(exc).__name__
    return data, None


def _direct_and_proxied(kind: str, out: Path) -> tuple[tuple[bytes, str | None], tuple[bytes, str | None]]:
    """What a client reads from a faulty upstream directly, then through a recording proxy."""
    server = _faulty_upstream(kind)
    server.start()
    try:
        direct = _raw_stream(server.url)
        with RecordingProxy(server.url, out) as proxy:
            return direct, _raw_stream(proxy.url)
    finally:
        server.stop()


@pytest.mark.parametrize("kind", ["error", "cut"])
def test_error_events_and_cut_streams_reach_the_client_as_they_came(tmp_path: Path, kind: str) -> None:
    """An `error` event passes through byte for byte; a connection the upstream drops is
    dropped for the client too (after the same bytes); both are recorded and not imported."""
    out = tmp_path / "r.jsonl"
    direct, proxied = _direct_and_proxied(kind, out)
    assert proxied[0] == direct[0]
    assert (proxied[1] is None) == (direct[1] is None) == (kind == "error")
    rec = orjson.loads(out.read_bytes().splitlines()[1])
    if kind == "error":
        assert rec["stream_error"] == {"type": "overloaded_error", "message": "Overloaded"}
    else:
        assert rec["error"].startswith("stream cut")
    assert import_paths([out]).trace.hop_list == ()


def test_an_unparsable_stream_still_reaches_the_client(tmp_path: Path) -> None:
    """Events the recorder cannot make sense of cost the record, never the client's stream."""
    out = tmp_path / "r.jsonl"
    direct, proxied = _direct_and_proxied("garbled", out)
    assert proxied == direct and direct[1] is None and direct[0].endswith(b'{"type":"message_stop"}\n\n')
    rec = orjson.loads(out.read_bytes().splitlines()[1])
    assert rec["record_error"].startswith("could not parse the response: ValueError")


def _tiny_upstream(handler: Any) -> Any:
    from aiohttp import web

    from agentgraph.serving import BackgroundApp

    def app() -> web.Application:
        application = web.Application()
        application.router.add_route("*", "/{tail:.*}", handler)
        return application

    return BackgroundApp(app, name="tiny")


def test_redirects_are_passed_on_not_followed(tmp_path: Path) -> None:
    """A 307 reaches the client as a 307 (the proxy never sends the API key elsewhere), with
    its Location; repeated response headers stay repeated."""
    from aiohttp import web

    async def handler(request: web.Request) -> web.Response:
        response = web.Response(status=307, headers={"Location": "http://127.0.0.1:9/elsewhere"})
        response.headers.add("Set-Cookie", "a=1")
        response.headers.add("Set-Cookie", "b=2")
        return response

    server = _tiny_upstream(handler)
    server.start()
    try:
        with RecordingProxy(server.url, tmp_path / "r.jsonl") as proxy:
            request = urllib.request.Request(proxy.url + "/v1/messages", data=b"{}", method="POST",
                                             headers={"x-api-key": KEY})
            opener = urllib.request.build_opener(type("NoRedirect", (urllib.request.HTTPRedirectHandler,),
                                                      {"redirect_request": lambda *a, **k: None}))
            with pytest.raises(urllib.error.HTTPError) as err:
                opener.open(request, timeout=10)
    finally:
        server.stop()
    with err.value:  # an HTTPError holds the connection until closed
        assert err.value.code == 307
        assert err.value.headers["Location"] == "http://127.0.0.1:9/elsewhere"
        assert err.value.headers.get_all("Set-Cookie") == ["a=1", "b=2"]
    assert KEY.encode() not in (tmp_path / "r.jsonl").read_bytes()


def test_redaction_keeps_only_safe_parameters(tmp_path: Path) -> None:
    """--redact keeps an allowlist of parameters; MCP tokens are removed even without it."""
    from agentgraph.record import CallRecord, redact

    body = _body(0, stream=False) | {
        "stop_sequences": ["SECRET-STOP"], "metadata": {"user_id": "SECRET-USER"},
        "mcp_servers": [{"url": "https://mcp.example/SECRET-URL", "authorization_token": "SECRET-TOKEN"}],
        "output_config": {"effort": "low", "format": {"schema": "SECRET-SCHEMA"}}}
    full, red = tmp_path / "full.jsonl", tmp_path / "red.jsonl"
    with ScriptedUpstream(SCRIPT) as up, RecordingProxy(up.url, full) as a, \
            RecordingProxy(a.url, red, redact=True) as b:
        _post(b.url, body)
    assert b"SECRET-TOKEN" not in full.read_bytes() and b"SECRET-URL" in full.read_bytes()
    assert b"SECRET" not in red.read_bytes()
    kept = orjson.loads(red.read_bytes().splitlines()[1])["request"]
    assert {k: kept[k] for k in ("model", "max_tokens", "stream", "output_config")} == {
        "model": "claude-test-1", "max_tokens": 100, "stream": False, "output_config": {"effort": "low"}}
    odd = CallRecord(seq=1, method="POST", path="/v1/messages", t_request_s=0.0,
                     request={"messages": "not a list", "system": "SECRET"})
    assert redact(odd).request == {"redacted": True}


def test_stopping_with_a_call_in_flight_is_quick_and_records_it(tmp_path: Path) -> None:
    """Leaving the proxy while a call streams: the call is cut within the shutdown grace and
    still recorded."""
    import threading

    out = tmp_path / "r.jsonl"
    with ScriptedUpstream(SCRIPT) as up:
        proxy = RecordingProxy(up.url, out).__enter__()
        outcome: list[object] = []

        def call() -> None:
            import http.client

            host, port = proxy.url.removeprefix("http://").split(":")
            connection = http.client.HTTPConnection(host, int(port), timeout=30)
            try:
                connection.request("POST", "/v1/messages", orjson.dumps(_body(2)),
                                   {"content-type": "application/json"})
                outcome.append(connection.getresponse().read())
            except Exception as exc:  # the cut connection surfaces here
                outcome.append(exc)
            finally:
                connection.close()

        caller = threading.Thread(target=call, daemon=True)
        caller.start()
        time.sleep(0.5)  # the third turn answers after 5 s
        started = time.monotonic()
        proxy.__exit__(None, None, None)
        assert time.monotonic() - started < 5
        caller.join(30)
    lines = out.read_bytes().splitlines()
    assert len(lines) == 2 and orjson.loads(lines[1])["seq"] == 1
    assert len(outcome) == 1  # the client was answered or cut, not left hanging


def test_recording_after_a_torn_line_starts_a_new_line(tmp_path: Path) -> None:
    """A file whose last record was torn (kill -9 mid-write) gets its next record on a new line."""
    out = tmp_path / "r.jsonl"
    out.write_bytes(b'{"format": "agentgraph.record", "version": 1}\n{"kind": "call", "se')
    with ScriptedUpstream(SCRIPT) as up, RecordingProxy(up.url, out) as proxy:
        _post(proxy.url, _body(0))
    result = import_paths([out])
    assert len(result.trace) == 1
    assert [str(i) for i in result.issues] == [f"{out}:2: invalid JSON; skipped"]


def test_calls_without_session_headers_are_reported(tmp_path: Path) -> None:
    """Clients that send no Claude Code session header are grouped as one session, and told so."""
    out = tmp_path / "r.jsonl"
    with ScriptedUpstream(SCRIPT) as up, RecordingProxy(up.url, out) as proxy:
        urllib.request.urlopen(urllib.request.Request(proxy.url + "/v1/messages", data=orjson.dumps(_body(0)),
                                                      method="POST", headers={"content-type": "application/json"}),
                               timeout=30).read()
    assert [str(i) for i in import_paths([out]).issues] == [
        f"{out}: 1 call(s) carry no x-claude-code-session-id header: they are read as one session "
        "'recording' with one agent, in time order"]


@pytest.mark.parametrize("args", [
    ["emulate", "--port", "99999"],
    ["emulate", "--port", "-1"],
    ["record", "--port", "-5"],
    ["record", "--port", "65536"],
    ["record", "--upstream", "notaurl"],
    ["record", "--upstream", "ftp://127.0.0.1:9"],
    ["record", "--upstream", "http://127.0.0.1:99999"],
    ["record", "--upstream", "http://bot:sk-ant-fake-in-a-bad-url-0123456789@127.0.0.1:99999"],
    ["record", "--upstream", "http://127.0.0.1:9/?key=1"],
    ["record", "--max-record-bytes", "-1"],
    ["record", "--max-inflight-bytes", "0"],
], ids=lambda a: " ".join(a[:3])[:40])
def test_bad_record_and_emulate_options_exit_2_at_once(args: list[str], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A bad port, upstream URL or limit: exit 2 within 10 s with one error line (or argparse's
    usage error), no traceback, the command not started, nothing written, no credential echoed."""
    from agentgraph.cli import main

    script, out, marker = tmp_path / "s.json", tmp_path / "r.jsonl", tmp_path / "started"
    script.write_bytes(orjson.dumps(SCRIPT))
    argv = ([*args, "--script", str(script)] if args[0] == "emulate" else
            [*args, *([] if "--upstream" in args else ["--upstream", "http://127.0.0.1:9"]), "-o", str(out),
             "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    started = time.monotonic()
    assert main(argv) == 2
    assert time.monotonic() - started < 10
    err = capsys.readouterr().err
    errors = [line for line in err.splitlines() if "error:" in line]
    assert len(errors) == 1 and (errors[0].startswith("error: ") or errors[0].startswith("usage:") or
                                 errors[0].startswith(f"agentgraph {args[0]}: error: ")), err
    assert err.splitlines()[-1] == errors[0]
    assert "Traceback" not in err and "sk-ant-fake" not in err
    assert not marker.exists() and not out.exists()


@pytest.mark.parametrize("where", ["bad-host", "port-in-use"])
def test_a_proxy_that_cannot_listen_says_where_in_one_line(where: str, tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """`--host 256.1.1.1` or a `--port` already taken: exit 2, one `error:` line naming host:port
    and the OS's reason, the command not started."""
    import socket

    from agentgraph.cli import main

    marker = tmp_path / "started"
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        host, port = ("256.1.1.1", "0") if where == "bad-host" else ("127.0.0.1", str(taken.getsockname()[1]))
        code = main(["record", "--host", host, "--port", port, "--upstream", "http://127.0.0.1:9",
                     "-o", str(tmp_path / "r.jsonl"), "--", sys.executable, "-c", f"open({str(marker)!r}, 'w')"])
    err = capsys.readouterr().err  # the resolver's words for a bad host vary by system
    assert code == 2 and len(err.splitlines()) == 1 and err.startswith(f"error: cannot listen on {host}:{port}: "), err
    assert where == "bad-host" or err.endswith(": Address already in use\n"), err
    assert not marker.exists()
