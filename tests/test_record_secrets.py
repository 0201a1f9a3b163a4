"""No secret reaches disk: every place a key was once found, each with its own fake key, grepping
every byte the proxy wrote (record, stderr, stdout, logs, the banner) and every byte the client got."""

from __future__ import annotations

import base64
import logging
import re
import sys
import urllib.request
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson
import pytest
from aiohttp import web

from agentgraph.cli import main
from agentgraph.record import (
    RECORDED_REQUEST_HEADERS,
    REMOVED,
    TOO_DEEP,
    CallRecord,
    MemorySink,
    RecordingProxy,
    RecordKind,
    request_secrets,
    scrub,
)
from agentgraph.serving import BackgroundApp

MESSAGE = {"id": "msg_1", "type": "message", "role": "assistant", "model": "m", "stop_reason": "end_turn",
           "content": [{"type": "text", "text": "ok"}], "usage": {"input_tokens": 3, "output_tokens": 1}}
CLIENT = """\
import json, os, sys, urllib.error, urllib.request
path, body, headers, out = sys.argv[1:5]
request = urllib.request.Request(os.environ["ANTHROPIC_BASE_URL"] + path, data=open(body, "rb").read(),
                                 method="POST", headers=json.loads(headers))
try:
    response = urllib.request.urlopen(request, timeout=30)
except urllib.error.HTTPError as err:
    response = err
with response:
    data = response.read()
open(out, "wb").write(f"{response.status}\\n{response.headers}\\n".encode() + data)
"""


class _Upstream:
    """A real aiohttp upstream on 127.0.0.1 that keeps what it got and answers 200, or 401 echoing
    the request's x-api-key (as some gateways do)."""

    def __init__(self, echo_key: bool = False) -> None:
        self.echo_key = echo_key
        self.seen: list[tuple[str, dict[str, str], bytes]] = []
        self.server = BackgroundApp(self._app, name="secrets-upstream")

    def _app(self) -> web.Application:
        app = web.Application()
        app.router.add_route("*", "/{tail:.*}", self._handle)
        return app

    async def _handle(self, request: web.Request) -> web.Response:
        self.seen.append((request.raw_path, dict(request.headers), await request.read()))
        if self.echo_key:
            error = {"type": "authentication_error", "message": f"invalid x-api-key: {request.headers['x-api-key']}"}
            return web.json_response({"type": "error", "error": error}, status=401)
        return web.json_response(MESSAGE, headers={"request-id": "req_1"})

    def __enter__(self) -> _Upstream:
        self.server.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.stop()


@dataclass(frozen=True)
class Case:
    """One place a key was found on disk: what the client sends, and what the record must say."""

    path: str = "/v1/messages"
    headers: Callable[[str], dict[str, str]] = lambda key: {"x-api-key": "sk-ant-header-key-of-this-run-01"}
    body: Callable[[str], dict[str, Any]] = lambda key: {"model": "m", "max_tokens": 5,
                                                        "messages": [{"role": "user", "content": "hi"}]}
    userinfo: bool = False  # the key is the password in --upstream
    unreachable: bool = False
    echo_key: bool = False  # the upstream's 401 body echoes the request's x-api-key
    check: Callable[[dict[str, Any], str], None] = lambda rec, key: None
    forwarded: Callable[[tuple[str, dict[str, str], bytes], str], None] = field(
        default=lambda seen, key: None)


def _body_with_credentials(key: str) -> dict[str, Any]:
    return {
        "model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": "hi"}],
        "metadata": {"user_id": "u1", "Api-Key": key},
        "mcp_servers": [{"type": "url", "name": "docs", "url": f"https://bot:{key}@mcp.example/sse?token={key}&v=1",
                         "authorization_token": key, "headers": {"Authorization": f"Bearer {key}", "X-Trace": key}}],
        "nested": [{"deeper": {"Client_Secret": key, "refresh-token": key, "ACCESS_TOKEN": key, "password": key}}],
    }


def _check_body(rec: dict[str, Any], key: str) -> None:
    if rec["request"].get("redacted"):
        return
    server = rec["request"]["mcp_servers"][0]
    assert server["url"] == f"https://mcp.example/sse?token={REMOVED}&v=1"
    assert server["authorization_token"] == REMOVED and server["headers"] == {"Authorization": REMOVED,
                                                                                "X-Trace": REMOVED}
    assert rec["request"]["metadata"] == {"user_id": "u1", "Api-Key": REMOVED}
    assert rec["request"]["max_tokens"] == 5


CASES = {
    "query-string": Case(
        path="/v1/messages?beta=true&api_key={key}&key={key}",
        check=lambda rec, key: _equal(rec["path"], f"/v1/messages?beta=true&api_key={REMOVED}&key={REMOVED}"),
        forwarded=lambda seen, key: _equal(seen[0], f"/v1/messages?beta=true&api_key={key}&key={key}")),
    "upstream-credentials": Case(
        userinfo=True,
        forwarded=lambda seen, key: _equal(seen[1]["Authorization"],
                                           "Basic " + base64.b64encode(f"bot:{key}".encode()).decode())),
    "upstream-credentials-502": Case(
        userinfo=True, unreachable=True, check=lambda rec, key: _equal(rec["status"], 502)),
    "request-body-fields": Case(body=_body_with_credentials, check=_check_body),
    "error-body-echo": Case(
        headers=lambda key: {"x-api-key": key}, echo_key=True,
        check=lambda rec, key: _equal(rec["response"]["error"]["message"], f"invalid x-api-key: {REMOVED}")),
    "request-headers": Case(
        headers=lambda key: {"x-api-key": key, "authorization": f"Bearer {key}", "cookie": f"s={key}",
                             "proxy-authorization": f"Basic {key}", "x-custom-token": key,
                             "anthropic-beta": "b1", "user-agent": "ua/1"},
        check=lambda rec, key: _equal(sorted(rec["request_headers"]),
                                      ["anthropic-beta", "content-type", "user-agent"])),
    "key-in-prompt": Case(
        headers=lambda key: {"authorization": f"Bearer {key}"},
        body=lambda key: {"model": "m", "max_tokens": 5, "messages": [{"role": "user", "content": f"my key: {key}"}]},
        check=lambda rec, key: rec["request"].get("redacted") or _equal(
            rec["request"]["messages"][0]["content"], f"my key: {REMOVED}")),
}


def _equal(got: Any, want: Any) -> None:
    assert got == want


@pytest.mark.parametrize("redact", [False, True], ids=["full", "redacted"])
@pytest.mark.parametrize("name", sorted(CASES))
def test_no_key_reaches_disk_or_the_client(name: str, redact: bool, tmp_path: Path,
                                           capfd: pytest.CaptureFixture[str], caplog: pytest.LogCaptureFixture) -> None:
    """`agentgraph record -- CLIENT`: the case's key is in no record, no output line, no log and
    nothing the proxy itself sent the client; the record says what the case's rule says."""
    caplog.set_level(logging.DEBUG)
    case, key = CASES[name], f"sk-ant-fake-{name}-{uuid.uuid4().hex}"
    out, got, body = tmp_path / "r.jsonl", tmp_path / "client.bin", tmp_path / "body.json"
    body.write_bytes(orjson.dumps(case.body(key)))
    headers = {"content-type": "application/json", **case.headers(key)}
    with _Upstream(echo_key=case.echo_key) as up:
        port = 9 if case.unreachable else up.server.port
        upstream = f"http://{'bot:' + key + '@' if case.userinfo else ''}127.0.0.1:{port}"
        status = main(["record", "--upstream", upstream, "-o", str(out), *(["--redact"] if redact else []), "--",
                       sys.executable, "-c", CLIENT, case.path.format(key=key), str(body),
                       orjson.dumps(headers).decode(), str(got)])
    printed = capfd.readouterr()
    assert status == 0, printed.err
    assert "recording http://127.0.0.1:" in printed.err and f"-> http://127.0.0.1:{port} into" in printed.err
    written = out.read_bytes() + printed.out.encode() + printed.err.encode() + caplog.text.encode()
    for form in (key, base64.b64encode(f"bot:{key}".encode()).decode()):
        assert form.encode() not in written
    client = got.read_bytes()
    if case.echo_key:  # the upstream's own answer reaches the client unchanged, echo included
        assert client.startswith(b"401\n") and key.encode() in client
    else:
        assert key.encode() not in client
    if not case.unreachable:
        assert len(up.seen) == 1
        case.forwarded(up.seen[0], key)
    _header, rec = map(orjson.loads, out.read_bytes().splitlines())
    assert rec["request"] is None or rec["request"].get("redacted", False) == redact
    case.check(rec, key)


def _call(request: Any, **kw: Any) -> CallRecord:
    return CallRecord(seq=1, method="POST", path=kw.pop("path", "/v1/messages"), t_request_s=0.0, request=request,
                      status=kw.pop("status", 200), **kw)


@pytest.mark.parametrize(("body", "scrubbed"), [
    ({"api_key": "v"}, {"api_key": REMOVED}),
    ({"Authorization": "v", "X-API-KEY": "v", "apikey": "v", "api-key": "v"},
     {"Authorization": REMOVED, "X-API-KEY": REMOVED, "apikey": REMOVED, "api-key": REMOVED}),
    ({"a": [{"b": {"Client_Secret": "v", "refresh-token": "v", "ACCESS_TOKEN": "v", "secret": "v", "password": "v",
                   "token": {"nested": "v"}}}]},
     {"a": [{"b": {"Client_Secret": REMOVED, "refresh-token": REMOVED, "ACCESS_TOKEN": REMOVED, "secret": REMOVED,
                   "password": REMOVED, "token": REMOVED}}]}),
    ({"max_tokens": 5, "tokens": 1, "token_count": 2, "input_tokens": 3, "passwords_seen": 0, "my_secret_sauce": "x"},
     {"max_tokens": 5, "tokens": 1, "token_count": 2, "input_tokens": 3, "passwords_seen": 0, "my_secret_sauce": "x"}),
    ({"tools": [{"name": "login", "api_key": "v", "input_schema": {"type": "object", "properties": {
        "password": {"type": "string"}, "token": {"default": "t-0"}}}}]},
     {"tools": [{"name": "login", "api_key": REMOVED, "input_schema": {"type": "object", "properties": {
         "password": {"type": "string"}, "token": {"default": "t-0"}}}}]}),
    ({"messages": [{"role": "assistant", "content": [
        {"type": "tool_use", "id": "t1", "name": "login", "input": {"password": "hunter2", "token": "t"}}]}]},
     {"messages": [{"role": "assistant", "content": [
         {"type": "tool_use", "id": "t1", "name": "login", "input": {"password": "hunter2", "token": "t"}}]}]}),
    ({"mcp_servers": [{"url": "https://u:p@mcp.example/sse?token=t0&v=1&Api_Key=k", "authorization_token": "t1",
                       "headers": {"X-Goog-Api-Key": "t2", "X-Trace": "t3"}, "name": "docs"}]},
     {"mcp_servers": [{"url": f"https://mcp.example/sse?token={REMOVED}&v=1&Api_Key={REMOVED}",
                       "authorization_token": REMOVED, "headers": {"X-Goog-Api-Key": REMOVED, "X-Trace": REMOVED},
                       "name": "docs"}]}),
    ({"context": {"server_url": "http://admin:pw@host:8080/x"}}, {"context": {"server_url": "http://host:8080/x"}}),
    ({"x_api_key": "v", "xApiKey": "v", "auth_token": "v", "session_token": "v", "private_key": "v", "passwd": "v",
      "cookie": "v", "Client-Secret": "v", "credentials": {"a": "v"},
      "max_tokens": 5, "cache_read_input_tokens": 1, "budget_tokens": 2, "tokenizer": "x", "keys": 3},
     {"x_api_key": REMOVED, "xApiKey": REMOVED, "auth_token": REMOVED, "session_token": REMOVED,
      "private_key": REMOVED, "passwd": REMOVED, "cookie": REMOVED, "Client-Secret": REMOVED, "credentials": REMOVED,
      "max_tokens": 5, "cache_read_input_tokens": 1, "budget_tokens": 2, "tokenizer": "x", "keys": 3}),
    ({"tools": [{"name": "t", "input_schema": {"properties": {"cookie": {"default": "c"}, "xApiKey": {}}}}],
      "messages": [{"role": "assistant", "content": [{"type": "server_tool_use", "input": {"session_token": "s"}}]}]},
     {"tools": [{"name": "t", "input_schema": {"properties": {"cookie": {"default": "c"}, "xApiKey": {}}}}],
      "messages": [{"role": "assistant", "content": [{"type": "server_tool_use", "input": {"session_token": "s"}}]}]}),
    ({"serverUrl": "http://u:p@h/x?sig=s1&v=1", "docsURL": "https://h/?Signature=s2&X-Amz-Security-Token=s3",
      "mcp_url": "https://h/?auth=s4&key=s5&access_token=s6&%74oken=s7&page=2"},
     {"serverUrl": f"http://h/x?sig={REMOVED}&v=1",
      "docsURL": f"https://h/?Signature={REMOVED}&X-Amz-Security-Token={REMOVED}",
      "mcp_url": f"https://h/?auth={REMOVED}&key={REMOVED}&access_token={REMOVED}&%74oken={REMOVED}&page=2"}),
    ({"url": "http://u:KEY@[::1/x", "server_url": "http://u:p/w@h:[1/?token=t&v=1"},
     {"url": "http://[::1/x", "server_url": f"http://h:[1/?token={REMOVED}&v=1"}),
    ({"headers": [{"name": "X-Api-Key", "value": "v"}, {"name": "X-Trace", "value": {"nested": "v"}}]},
     {"headers": [{"name": "X-Api-Key", "value": REMOVED}, {"name": "X-Trace", "value": REMOVED}]}),
], ids=["api_key", "header-names", "any-depth", "not-credentials", "tool-schemas", "tool-inputs", "mcp-servers",
        "urls", "normalized-names", "normalized-names-not-in-schemas-or-inputs", "camel-case-url-query",
        "unparsable-urls", "headers-list"])
def test_request_fields_named_like_credentials_are_removed(body: dict[str, Any], scrubbed: dict[str, Any]) -> None:
    """Whole names after normalization (lowercase, no `-`/`_`), any depth; never tool schemas, tool
    inputs or `max_tokens`-like names; URL fields (`url`, `*_url`, `serverUrl`) lose `user:pass@`
    (textually when `urlsplit` refuses them) and credential query values, headers maps and
    `[{"name", "value"}]` lists every value."""
    assert scrub(_call(body)).request == scrubbed


def test_known_secrets_are_cut_from_every_string_from_16_characters() -> None:
    """A 16-character credential is cut out of prompt text, a 15-character one is not (it would
    rewrite ordinary text); in a failed call's response both are."""
    long, short = "L" * 16, "S" * 15
    text = f"a {long} b {short} c"
    body = {"messages": [{"role": "user", "content": text}], f"k{long}": 1}
    ok = scrub(_call(body, response={"content": [{"type": "text", "text": text}]}), [long, short])
    assert ok.request == {"messages": [{"role": "user", "content": f"a {REMOVED} b {short} c"}], f"k{REMOVED}": 1}
    assert ok.response == {"content": [{"type": "text", "text": f"a {REMOVED} b {short} c"}]}
    failed = scrub(_call(body, status=401, response={"error": {"message": text}}), [long, short])
    assert failed.response == {"error": {"message": f"a {REMOVED} b {REMOVED} c"}}


def test_request_secrets_are_the_credential_headers_query_and_upstream() -> None:
    """The values the last-line scrub knows: credential headers with and without their scheme
    word, credential query values, the upstream's user and password (and their Basic form)."""
    from agentgraph.record import Upstream

    secrets = request_secrets({"X-Api-Key": "k1", "Authorization": "Bearer t1", "x-app": "cli", "Cookie": "c=1",
                               "X-Custom-Auth": "a1", "X-Signature": "s1", "anthropic-beta": "b1"},
                              [("beta", "true"), ("api_key", "q1"), ("key", "q2"), ("page", "2")],
                              Upstream.parse("http://bot:pw1@h"))
    assert secrets == {"k1", "Bearer t1", "t1", "c=1", "a1", "s1", "q1", "q2", "2", "bot", "pw1",
                       base64.b64encode(b"bot:pw1").decode()}


def test_every_value_removed_is_cut_where_the_upstream_echoes_it() -> None:
    """Query values (bare items and `%62eta` too), headers-map values of any name, URL credentials
    and path segments of a non-Messages request: removed from the record, and cut wherever the
    upstream echoes them (a 404 quoting the URL, a 401 quoting a header)."""
    keys = [f"k{i}-{uuid.uuid4().hex}" for i in range(8)]
    path = f"/v1/messages?beta=true&x={keys[0]}&{keys[1]}&%62eta={keys[2]}"
    body = {"messages": [], "mcp_servers": [{"headers": {"X-My": keys[3]}, "url": f"http://u:{keys[4]}@h/?sig={keys[5]}"},
                                            {"headers": [{"name": "X-Other", "value": keys[6]}]}]}
    echoed = {"error": {"message": " ".join(keys)}}
    for status in (401, 404, 200):
        rec = scrub(_call(body, path=path, status=status, response=echoed))
        assert rec.path == f"/v1/messages?beta=true&x={REMOVED}&{REMOVED}&%62eta={REMOVED}"
        text = orjson.dumps(rec.to_json()).decode()
        assert not [k for k in keys[:7] if k in text], (status, text)
    other = scrub(CallRecord(seq=1, method="GET", path=f"/admin/{keys[7]}/x", t_request_s=0.0, kind=RecordKind.REQUEST,
                             status=404, response={"error": f"no such path /admin/{keys[7]}/x"}))
    assert other.path == f"/admin/{REMOVED}/{REMOVED}"
    assert other.response == {"error": f"no such path /admin/{REMOVED}/x"}


@pytest.mark.parametrize("password", ["ZZpw/BBBBBBBBBBBBBBBQ", "ZZpw?BBBBBBBBBBBBBBBQ", "ZZpw#BBBBBBBBBBBBBBBQ",
                                      "ZZpw@BBBB/BBBBBBBBBQ", "ZZ/pw?x#y@BBBBBBBBBBQ"],
                         ids=["slash", "question-mark", "hash", "at-and-slash", "all"])
def test_a_bad_upstream_never_echoes_its_password(password: str, tmp_path: Path,
                                                  capfd: pytest.CaptureFixture[str]) -> None:
    """A URL whose password holds `/`, `?`, `#` or `@` does not parse: the error cuts everything
    up to the last `@`, so no piece of the password is shown."""
    code = main(["record", "--upstream", f"http://user:{password}@127.0.0.1:18101", "-o", str(tmp_path / "r.jsonl"),
                 "--", "true"])
    out, err = capfd.readouterr()
    pieces = [p for p in re.split(r"[/?#@]", password) if len(p) >= 2]
    assert code == 2 and err.startswith("error: --upstream:") and len(err.splitlines()) == 1, err
    assert not [p for p in pieces if p in out + err], err


def test_records_reach_the_sink_scrubbed_and_typed(tmp_path: Path) -> None:
    """The proxy hands its sink CallRecords that went through the scrub: what a MemorySink gets
    is what a file would get."""
    key = f"sk-ant-fake-sink-{uuid.uuid4().hex}"
    sink = MemorySink()
    with _Upstream() as up, RecordingProxy(up.server.url, sink) as proxy:
        request = urllib.request.Request(proxy.url + f"/v1/messages?beta=true&token={key}", method="POST",
                                         data=orjson.dumps({"messages": [], "api_key": key}),
                                         headers={"x-api-key": key, "content-type": "application/json"})
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    (rec,) = sink.records
    assert isinstance(rec, CallRecord) and rec.status == 200 and rec.response == MESSAGE
    assert (rec.path, rec.request) == (f"/v1/messages?beta=true&token={REMOVED}", {"messages": [], "api_key": REMOVED})
    assert set(rec.request_headers) <= RECORDED_REQUEST_HEADERS
    assert key not in orjson.dumps(rec.to_json()).decode()
    assert proxy.calls == 1


class _BrokenSink(MemorySink):
    def write(self, record: CallRecord) -> None:
        raise RuntimeError(f"disk on fire, record {record.request}")


def test_a_failing_sink_is_reported_once_and_the_proxy_goes_on(capfd: pytest.CaptureFixture[str]) -> None:
    """A sink that raises costs its records, never the client's calls; one line says so, without
    the exception's text (it could quote the record)."""
    with _Upstream() as up, RecordingProxy(up.server.url, _BrokenSink()) as proxy:
        for _ in range(3):
            request = urllib.request.Request(proxy.url + "/v1/messages", data=b'{"messages": []}', method="POST")
            with urllib.request.urlopen(request, timeout=30) as response:
                assert response.status == 200 and orjson.loads(response.read()) == MESSAGE
    err = capfd.readouterr().err
    assert err.splitlines() == ["agentgraph record: cannot write a record (RuntimeError); the proxy goes on, "
                                "such records are dropped"]
    assert proxy.calls == 0



def test_json_nested_past_the_recursion_limit_is_recorded_cut_and_no_sink_failure(
        tmp_path: Path, capfd: pytest.CaptureFixture[str]) -> None:
    """A valid body 1,000 levels deep (orjson reads it, Python's recursion limit is passed):
    forwarded whole and recorded, nested deeper than MAX_DEPTH cut to a marker; no sink failure is
    reported, so a real one later still is."""
    deep = b"[" * 1000 + b"]" * 1000
    out = tmp_path / "r.jsonl"
    with _Upstream() as up, RecordingProxy(up.server.url, out) as proxy:
        request = urllib.request.Request(proxy.url + "/v1/messages", method="POST",
                                         data=b'{"messages": [], "deep": ' + deep + b"}")
        with urllib.request.urlopen(request, timeout=30) as response:
            assert response.status == 200
    assert up.seen[0][2].endswith(deep + b"}")
    assert "cannot write" not in capfd.readouterr().err
    (rec,) = (orjson.loads(line) for line in out.read_bytes().splitlines()[1:])
    value, depth = rec["request"]["deep"], 1
    while isinstance(value, list):
        (value,), depth = value, depth + 1
    assert value == TOO_DEEP and depth < 100
    assert proxy.calls == 1
