"""The scripted upstream, through real HTTP on 127.0.0.1, and the real Claude Code CLI on it."""

from __future__ import annotations

import json
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

import orjson
import pytest

from agentgraph.emulator import ScriptedUpstream, parse_script
from agentgraph.errors import TraceFormatError
from agentgraph.tokens import canonical_json, estimate_tokens
from tests.realcli import ClaudeSession

SCRIPTS = Path(__file__).parent.parent / "fixtures" / "scripts"
SUB = {"x-claude-code-agent-id": "a0123456789abcdef"}

SCRIPT: dict[str, Any] = {
    "agents": {
        "main": {
            "turns": [
                {"text": "Looking.", "tool_use": [{"name": "Bash", "input": {"command": "ls"}}]},
                {"tool_use": [
                    {"name": "Read", "input": {"file_path": "/a"}},
                    {"name": "Read", "input": {"file_path": "/b"}},
                ]},
                {"text": "Done.", "output_tokens": 7},
            ]
        },
        "counter": {"match": "Count the files", "turns": [{"text": "3 files."}]},
        "shadowed": {"match": "Count", "turns": [{"text": "never"}]},
    }
}  # fmt: skip


class FakeClock:
    """A clock the test moves by hand."""

    def __init__(self) -> None:
        self.now_s = 1000.0

    def __call__(self) -> float:
        return self.now_s


def post(url: str, body: object, headers: dict[str, str] | None = None, path: str = "/v1/messages") -> tuple[int, Any]:
    """POST ``body`` (JSON, or raw bytes) and return the status and the decoded answer."""
    data = body if isinstance(body, bytes) else json.dumps(body).encode()
    request = urllib.request.Request(
        url + path, data=data, headers={"content-type": "application/json", **(headers or {})}
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            raw, status, kind = response.read(), response.status, response.headers["content-type"]
    except urllib.error.HTTPError as exc:
        return exc.code, json.loads(exc.read())
    return status, (parse_sse(raw) if kind.startswith("text/event-stream") else json.loads(raw))


def parse_sse(raw: bytes) -> list[tuple[str, Any]]:
    """``(event, data)`` pairs of a server-sent event stream."""
    events = []
    for chunk in raw.decode().split("\n\n"):
        if chunk:
            name, data = chunk.split("\n")
            events.append((name.removeprefix("event: "), json.loads(data.removeprefix("data: "))))
    return events


def user(text: str, cache: bool = False) -> dict[str, Any]:
    block: dict[str, Any] = {"type": "text", "text": text}
    if cache:
        block["cache_control"] = {"type": "ephemeral"}
    return {"role": "user", "content": [block]}


def assistant(text: str) -> dict[str, Any]:
    return {"role": "assistant", "content": [{"type": "text", "text": text}]}


def request(*messages: dict[str, Any], **extra: Any) -> dict[str, Any]:
    return {"model": "claude-test", "max_tokens": 100, "messages": list(messages), **extra}


def tokens_of(*units: object) -> int:
    """The rule: the estimate of each unit's canonical JSON, summed."""
    return sum(estimate_tokens(canonical_json(u)) for u in units)


def msg_unit(message: dict[str, Any]) -> dict[str, Any]:
    """A message's unit: role and content with every cache_control removed."""
    content = [{k: v for k, v in b.items() if k != "cache_control"} for b in message["content"]]
    return {"role": message["role"], "content": content}


# --------------------------------------------------------------------------- routing and ids


def test_turn_is_the_number_of_assistant_messages() -> None:
    """Each request is answered with the turn its assistant-message count names."""
    with ScriptedUpstream(SCRIPT) as up:
        _, first = post(up.url, request(user("hi")))
        _, third = post(up.url, request(user("hi"), assistant("a"), user("b"), assistant("c")))
        _, again = post(up.url, request(user("hi")))
    assert first["content"][1]["id"] == "toolu_main_00_0"
    assert third["content"] == [{"type": "text", "text": "Done."}]
    assert again == first
    assert [(e.agent, e.turn) for e in up.log] == [("main", 0), ("main", 2), ("main", 0)]


def test_ids_are_deterministic_per_agent_turn_and_block() -> None:
    """tool_use ids are toolu_<agent>_<turn>_<k>, message ids msg_<agent>_<turn>."""
    with ScriptedUpstream(SCRIPT) as up:
        _, reply = post(up.url, request(user("hi"), assistant("x")))
    assert reply["id"] == "msg_main_01"
    assert [b["id"] for b in reply["content"]] == ["toolu_main_01_0", "toolu_main_01_1"]
    assert reply["stop_reason"] == "tool_use"


def test_sub_agent_is_routed_by_the_first_matching_script() -> None:
    """A request with an agent id goes to the first agent whose match is in its user text."""
    with ScriptedUpstream(SCRIPT) as up:
        _, reply = post(up.url, request(user("Count the files in the working directory")), SUB)
    assert reply["content"] == [{"type": "text", "text": "3 files."}]
    assert reply["id"] == "msg_counter_00"
    assert reply["stop_reason"] == "end_turn"
    assert (up.log[0].agent, up.log[0].agent_id) == ("counter", SUB["x-claude-code-agent-id"])


def test_beta_query_and_log_fields() -> None:
    """?beta=true is accepted; the log keeps body, usage, time and the session header."""
    clock = FakeClock()
    body = request(user("hi"))
    with ScriptedUpstream(SCRIPT, clock=clock) as up:
        status, reply = post(up.url, body, {"X-Claude-Code-Session-Id": "s1"}, "/v1/messages?beta=true")
    assert status == 200
    entry = up.log[0]
    assert (entry.body, entry.usage, entry.time_s) == (body, reply["usage"], 1000.0)
    assert (entry.session_id, entry.agent_id) == ("s1", None)


# --------------------------------------------------------------------------- streaming


def test_stream_events_follow_the_api_exactly() -> None:
    """message_start, ping, per block start/delta(s)/stop, message_delta, message_stop."""
    with ScriptedUpstream(SCRIPT) as up:
        _, events = post(up.url, request(user("hi"), stream=True))
    total = tokens_of(msg_unit(user("hi")))
    usage = {
        "input_tokens": total, "cache_creation_input_tokens": 0, "cache_read_input_tokens": 0,
        "cache_creation": {"ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": 0},
        "output_tokens": 1, "service_tier": "standard",
    }  # fmt: skip
    output = up.log[0].usage["output_tokens"]
    tool = {"type": "tool_use", "id": "toolu_main_00_0", "name": "Bash", "input": {}}
    assert events == [
        ("message_start", {"type": "message_start", "message": {
            "id": "msg_main_00", "type": "message", "role": "assistant", "model": "claude-test",
            "content": [], "stop_reason": None, "stop_sequence": None, "usage": usage}}),
        ("ping", {"type": "ping"}),
        ("content_block_start", {"type": "content_block_start", "index": 0,
                                 "content_block": {"type": "text", "text": ""}}),
        ("content_block_delta", {"type": "content_block_delta", "index": 0,
                                 "delta": {"type": "text_delta", "text": "Looking."}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 0}),
        ("content_block_start", {"type": "content_block_start", "index": 1, "content_block": tool}),
        ("content_block_delta", {"type": "content_block_delta", "index": 1, "delta": {
            "type": "input_json_delta", "partial_json": '{"command":"ls"}'}}),
        ("content_block_stop", {"type": "content_block_stop", "index": 1}),
        ("message_delta", {"type": "message_delta",
                           "delta": {"stop_reason": "tool_use", "stop_sequence": None},
                           "usage": {"output_tokens": output}}),
        ("message_stop", {"type": "message_stop"}),
    ]  # fmt: skip


def test_long_tool_input_streams_in_chunks_that_join_to_the_input() -> None:
    """A long input is split into several input_json_delta pieces that concatenate to its JSON."""
    long_input = {"command": "echo " + "x" * 200}
    script = {"agents": {"main": {"turns": [{"tool_use": [{"name": "Bash", "input": long_input}]}]}}}
    with ScriptedUpstream(script) as up:
        _, events = post(up.url, request(user("hi"), stream=True))
    pieces = [d["delta"]["partial_json"] for n, d in events if n == "content_block_delta"]
    assert len(pieces) > 1
    assert json.loads("".join(pieces)) == long_input


# --------------------------------------------------------------------------- usage and caching


def test_usage_of_a_small_request_is_the_sum_of_its_unit_estimates() -> None:
    """input_tokens = estimate of each tool, system block and message; output from the content."""
    tool = {"name": "Bash", "description": "Run a command", "input_schema": {"type": "object"}}
    body = request(user("hi"), tools=[tool], system="You are terse.")
    with ScriptedUpstream(SCRIPT) as up:
        _, reply = post(up.url, body)
    system = {"type": "text", "text": "You are terse."}
    content = [{"type": "text", "text": "Looking."},
               {"type": "tool_use", "id": "toolu_main_00_0", "name": "Bash",
                "input": {"command": "ls"}}]  # fmt: skip
    assert reply["usage"]["input_tokens"] == tokens_of(tool, system, msg_unit(user("hi")))
    assert reply["usage"]["output_tokens"] == estimate_tokens(canonical_json(content))
    assert reply["usage"]["cache_read_input_tokens"] == 0


def test_scripted_output_tokens_override_the_estimate() -> None:
    """A turn's output_tokens is reported as is."""
    with ScriptedUpstream(SCRIPT) as up:
        _, reply = post(up.url, request(user("a"), assistant("b"), user("c"), assistant("d")))
    assert reply["usage"]["output_tokens"] == 7


def test_string_content_counts_as_one_text_block() -> None:
    """A message spelled as a string has the tokens of the same text as a text block."""
    with ScriptedUpstream(SCRIPT) as up:
        _, as_string = post(up.url, request({"role": "user", "content": "hi"}))
        _, as_block = post(up.url, request(user("hi")))
    assert as_string["usage"] == as_block["usage"]


def test_count_tokens_reports_the_prompt_total() -> None:
    """count_tokens answers with the same total a message request would count."""
    system = [{"type": "text", "text": "S" * 400, "cache_control": {"type": "ephemeral"}}]
    body = request(user("hi"), system=system)
    with ScriptedUpstream(SCRIPT) as up:
        status, reply = post(up.url, body, path="/v1/messages/count_tokens?beta=true")
    expected = tokens_of({"type": "text", "text": "S" * 400}, msg_unit(user("hi")))
    assert (status, reply) == (200, {"input_tokens": expected})
    assert up.log == []


BIG = "x" * 8000  # 2,000+ tokens: above the minimum cacheable prefix


def cached_system() -> list[dict[str, Any]]:
    return [{"type": "text", "text": BIG, "cache_control": {"type": "ephemeral"}}]


def test_second_request_reads_the_prefix_the_first_one_wrote() -> None:
    """Request 1 writes up to its breakpoint; request 2 reads it and writes only the new part."""
    first = request(user("question"), system=cached_system())
    second = request(user("question"), assistant("answer"), user("more", cache=True),
                     system=cached_system())  # fmt: skip
    sys_tokens = tokens_of({"type": "text", "text": BIG})
    q, a, m = (tokens_of(msg_unit(x)) for x in (user("question"), assistant("answer"), user("more")))
    with ScriptedUpstream(SCRIPT) as up:
        _, one = post(up.url, first)
        _, two = post(up.url, second)
    assert (one["usage"]["cache_creation_input_tokens"], one["usage"]["cache_read_input_tokens"],
            one["usage"]["input_tokens"]) == (sys_tokens, 0, q)  # fmt: skip
    assert two["usage"]["cache_read_input_tokens"] == sys_tokens
    assert two["usage"]["cache_creation_input_tokens"] == q + a + m
    assert two["usage"]["cache_creation"]["ephemeral_5m_input_tokens"] == q + a + m
    assert two["usage"]["input_tokens"] == 0


def test_cache_entries_expire_after_five_minutes_unless_read() -> None:
    """A read refreshes the 300 s TTL; 300 s without a read drops the entry."""
    clock = FakeClock()
    body = request(user("question"), system=cached_system())
    sys_tokens = tokens_of({"type": "text", "text": BIG})
    reads = []
    with ScriptedUpstream(SCRIPT, clock=clock) as up:
        for now_s in (0, 299, 598, 898, 899):
            clock.now_s = 1000.0 + now_s
            reads.append(post(up.url, body)[1]["usage"]["cache_read_input_tokens"])
    assert reads == [0, sys_tokens, sys_tokens, 0, sys_tokens]


def test_one_hour_ttl_is_reported_and_kept() -> None:
    """A "1h" breakpoint writes ephemeral_1h tokens and still hits after 50 minutes."""
    clock = FakeClock()
    system = [{"type": "text", "text": BIG, "cache_control": {"type": "ephemeral", "ttl": "1h"}}]
    body = request(user("question"), system=system)
    with ScriptedUpstream(SCRIPT, clock=clock) as up:
        _, one = post(up.url, body)
        clock.now_s += 3000
        _, two = post(up.url, body)
    sys_tokens = tokens_of({"type": "text", "text": BIG})
    assert one["usage"]["cache_creation"] == {
        "ephemeral_5m_input_tokens": 0, "ephemeral_1h_input_tokens": sys_tokens}  # fmt: skip
    assert two["usage"]["cache_read_input_tokens"] == sys_tokens


def test_prefix_below_the_minimum_is_not_cached() -> None:
    """A breakpoint prefix under 1,024 tokens writes nothing, so the repeat reads nothing."""
    system = [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}]
    body = request(user("question"), system=system)
    with ScriptedUpstream(SCRIPT) as up:
        usages = [post(up.url, body)[1]["usage"] for _ in range(2)]
    total = tokens_of({"type": "text", "text": "short"}, msg_unit(user("question")))
    for usage in usages:
        assert (usage["input_tokens"], usage["cache_creation_input_tokens"],
                usage["cache_read_input_tokens"]) == (total, 0, 0)  # fmt: skip


def test_minimum_is_configurable() -> None:
    """With min_cacheable_tokens=1 even a tiny prefix is written and read back."""
    system = [{"type": "text", "text": "short", "cache_control": {"type": "ephemeral"}}]
    body = request(user("question"), system=system)
    with ScriptedUpstream(SCRIPT, min_cacheable_tokens=1) as up:
        _, one = post(up.url, body)
        _, two = post(up.url, body)
    sys_tokens = tokens_of({"type": "text", "text": "short"})
    assert one["usage"]["cache_creation_input_tokens"] == sys_tokens
    assert two["usage"]["cache_read_input_tokens"] == sys_tokens


def test_only_four_breakpoints_are_honored() -> None:
    """A fifth cache_control marker is ignored: nothing after the fourth is written."""
    blocks = [{"type": "text", "text": BIG + str(i), "cache_control": {"type": "ephemeral"}}
              for i in range(5)]  # fmt: skip
    with ScriptedUpstream(SCRIPT) as up:
        _, reply = post(up.url, request(user("q"), system=blocks))
    block_tokens = [tokens_of({"type": "text", "text": BIG + str(i)}) for i in range(5)]
    assert reply["usage"]["cache_creation_input_tokens"] == sum(block_tokens[:4])
    assert reply["usage"]["input_tokens"] == block_tokens[4] + tokens_of(msg_unit(user("q")))


def test_a_request_without_breakpoints_neither_reads_nor_writes() -> None:
    """No cache_control: everything is input, even when a cached prefix exists."""
    with ScriptedUpstream(SCRIPT) as up:
        post(up.url, request(user("q"), system=cached_system()))
        _, reply = post(up.url, request(user("q"), system=[{"type": "text", "text": BIG}]))
    assert reply["usage"]["cache_read_input_tokens"] == 0
    assert reply["usage"]["cache_creation_input_tokens"] == 0


# --------------------------------------------------------------------------- errors


@pytest.mark.parametrize(
    ("body", "headers", "needle"),
    [
        (request(user("hello")), SUB, "no sub-agent script matches"),
        (request(user("a"), assistant("b"), user("c"), assistant("d"), user("e"), assistant("f")),
         {}, "agent 'main' has 3 scripted turns"),
        (b"{not json", {}, "not valid JSON"),
        (b"[1, 2]", {}, "must be a JSON object"),
        ({"model": "m", "messages": "hi"}, {}, "messages: expected a list"),
        (request(user("hi"), tools={"name": "Bash"}), {}, "tools: expected a list"),
    ],
)  # fmt: skip
def test_unscripted_requests_get_an_api_error(body: object, headers: dict[str, str], needle: str) -> None:
    """Requests the script cannot answer get HTTP 400 in the API's error shape, saying why."""
    with ScriptedUpstream(SCRIPT) as up:
        status, reply = post(up.url, body, headers)
    assert status == 400
    assert reply["type"] == "error"
    assert reply["error"]["type"] == "invalid_request_error"
    assert needle in reply["error"]["message"]
    assert up.log == [] and [r.status for r in up.rejected] == [400]


def test_unknown_path_is_not_found() -> None:
    """Other paths answer 404 with a not_found_error."""
    with ScriptedUpstream(SCRIPT) as up:
        status, reply = post(up.url, {}, path="/v1/complete")
    assert (status, reply["error"]["type"]) == (404, "not_found_error")


# --------------------------------------------------------------------------- scripts


@pytest.mark.parametrize(
    ("data", "needle"),
    [
        ({"agents": {}}, 'no "main" agent'),
        ({"agents": {"main": {"turns": [{}]}}}, "needs text or a tool_use list"),
        ({"agents": {"main": {"turns": [{"txt": "typo"}]}}}, "expected an object with keys"),
        ({"agents": {"main": {"turns": [{"text": "a"}]}, "sub": {"turns": [{"text": "b"}]}}},
         "agents.sub.match"),
        ({"agents": {"main": {"turns": [{"tool_use": [{"name": "Bash"}]}]}}},
         "tool_use[0].input"),
    ],
)  # fmt: skip
def test_bad_scripts_are_rejected_with_their_location(data: object, needle: str) -> None:
    """Script mistakes raise TraceFormatError naming where they are."""
    with pytest.raises(TraceFormatError) as info:
        parse_script(data)
    assert needle in str(info.value)


def test_variables_are_substituted_and_unknown_ones_kept() -> None:
    """${NAME} is replaced from the variables; other ${...} stay for the shell."""
    data = {"agents": {"main": {"turns": [{"tool_use": [
        {"name": "Bash", "input": {"command": "cat ${WORK_DIR}/a ${HOME}/b"}}]}]}}}  # fmt: skip
    script = parse_script(data, {"WORK_DIR": "/w"})
    assert script.agent("main").turns[0].tool_use[0].input == {"command": "cat /w/a ${HOME}/b"}


@pytest.mark.parametrize("path", sorted(SCRIPTS.glob("*.json")), ids=lambda p: p.stem)
def test_fixture_scripts_parse(path: Path) -> None:
    """Every script under fixtures/scripts is valid."""
    parse_script(orjson.loads(path.read_bytes()), {"WORK_DIR": "/w"})


# --------------------------------------------------------------------------- real CLI


@pytest.mark.realcli
def test_real_cli_runs_tools_and_a_sub_agent(claude_session: ClaudeSession) -> None:
    """Claude Code runs the script: 4 main + 2 sub-agent calls, transcripts and the file exist."""
    script = orjson.loads((SCRIPTS / "tools_and_subagent.json").read_bytes())
    run = claude_session(script, "Take notes, then have a helper count the files.")
    assert [(e.agent, e.turn) for e in run.log] == [
        ("main", 0), ("main", 1), ("main", 2), ("counter", 0), ("counter", 1), ("main", 3)]  # fmt: skip
    assert run.session_file.is_file()
    assert len(run.subagent_files) == 1
    meta = json.loads(run.subagent_files[0].with_suffix(".meta.json").read_text())
    assert meta["toolUseId"] == "toolu_main_02_0"
    notes = run.work_dir / "notes.txt"
    assert notes.read_text() == script["agents"]["main"]["turns"][1]["tool_use"][0]["input"]["content"]


def test_scripted_error_is_served_then_the_turn_answers() -> None:
    """A turn with an error answers its first request with that API error, then normally."""
    script = {"agents": {"main": {"turns": [
        {"text": "ok", "error": {"status": 529, "type": "overloaded_error", "message": "busy"}}]}}}
    with ScriptedUpstream(script) as up:
        first = post(up.url, request(user("hi")))
        second = post(up.url, request(user("hi")))
    assert first == (529, {"type": "error", "error": {"type": "overloaded_error", "message": "busy"}})
    assert second[0] == 200 and second[1]["content"] == [{"type": "text", "text": "ok"}]
    assert [(r.status, r.message) for r in up.rejected] == [(529, "busy")]


def test_bad_scripted_error_is_rejected_with_its_place() -> None:
    """An error entry with a status outside 400-599 is a script error naming where it is."""
    from agentgraph.errors import TraceFormatError

    with pytest.raises(TraceFormatError, match=r"agents.main.turns\[0\].error: status must be 400-599"):
        parse_script({"agents": {"main": {"turns": [{"text": "x", "error": {"status": 200, "type": "x"}}]}}})
