"""Mooncake import (plain rows, agentic v1, agentic v2) and agentic Mooncake v2 export."""

from __future__ import annotations

import hashlib
import io
import math
from pathlib import Path

import orjson
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentgraph.errors import ImportIssue
from agentgraph.model import Agent, Edge, EdgeKind, Hop, Trace
from agentgraph.sources.mooncake import read_mooncake, write_agentic_mooncake

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "mooncake"
SYNTHETIC = FIXTURES / "synthetic_trace.jsonl"  # third-party (Apache-2.0): fixtures/mooncake/README.md

SEQ, SPAWN, JOIN = EdgeKind.SEQUENCE, EdgeKind.SPAWN, EdgeKind.JOIN


def _read(path: Path) -> tuple[Trace, list[ImportIssue]]:
    issues: list[ImportIssue] = []
    return read_mooncake(path, issues), issues


def _read_text(tmp_path: Path, text: str) -> tuple[Trace, list[ImportIssue]]:
    path = tmp_path / "trace.jsonl"
    path.write_text(text)
    return _read(path)


def _hops(trace: Trace) -> list[tuple[object, ...]]:
    """(hop_id, session, agent, index, start_s, prompt, shared prefix, output, hash_ids)."""
    return [(h.hop_id, h.session_id, h.agent_id, h.index, h.start_s, h.prompt_tokens,
             h.shared_prefix_tokens, h.output_tokens, h.hash_ids) for h in trace]


def _messages(issues: list[ImportIssue]) -> list[tuple[int | None, str]]:
    return [(i.line, i.message) for i in issues]


def _export(trace: Trace) -> bytes:
    buf = io.BytesIO()
    write_agentic_mooncake(trace, buf)
    return buf.getvalue()


def _round_trip(trace: Trace, tmp_path: Path) -> tuple[Trace, list[ImportIssue]]:
    path = tmp_path / "export.jsonl"
    path.write_bytes(_export(trace))
    return _read(path)


# --------------------------------------------------------------------------- plain rows


def test_plain_rows_are_one_session_each() -> None:
    """A plain row is its own session mooncake-<line>: agent main, one hop, no edges."""
    trace, issues = _read(FIXTURES / "plain.jsonl")
    assert issues == []
    assert trace.block_size == 512
    assert _hops(trace) == [
        ("mooncake-1/main/0", "mooncake-1", "main", 0, 0.0, 1000, 0, 10, (1, 2)),
        ("mooncake-2/main/0", "mooncake-2", "main", 0, 1.5, 600, 0, 5, (1, 3)),
        ("mooncake-3/main/0", "mooncake-3", "main", 0, 2.25, 512, 0, 1, (4,)),
    ]
    assert [h.end_s for h in trace] == [h.start_s for h in trace]
    assert trace.edges == ()
    assert trace.agents == tuple(Agent(f"mooncake-{n}", "main") for n in (1, 2, 3))


def test_missing_input_length_means_whole_blocks(tmp_path: Path) -> None:
    """Without input_length a row is len(hash_ids) whole blocks long (Dynamo's reading)."""
    trace, issues = _read_text(tmp_path, '{"timestamp": 7, "output_length": 3, "hash_ids": [5, 6]}\n')
    assert issues == []
    assert [(h.prompt_tokens, h.start_s) for h in trace] == [(1024, 0.007)]


def test_dynamo_aliases_are_read(tmp_path: Path) -> None:
    """input_tokens, output_tokens, created_time and delay_ms are Dynamo's aliases."""
    text = ('{"session_id": "s", "created_time": 100, "input_tokens": 10, "output_tokens": 2,'
            ' "hash_ids": [1]}\n'
            '{"session_id": "s", "delay_ms": 50, "input_tokens": 20, "output_tokens": 3,'
            ' "hash_ids": [2]}\n')
    trace, issues = _read_text(tmp_path, text)
    assert issues == []
    assert [(h.hop_id, h.start_s, h.prompt_tokens, h.output_tokens) for h in trace] == [
        ("s/main/0", 0.1, 10, 2), ("s/main/1", 0.15, 20, 3)]
    assert trace.edges == (Edge("s/main/0", "s/main/1", SEQ, 0.05, 20),)


def test_timestamped_rows_of_one_session_form_a_closed_loop(tmp_path: Path) -> None:
    """Plain rows sharing a session_id are consecutive turns: sequence edges, wait = gap."""
    text = ''.join(f'{{"session_id": "s", "timestamp": {t}, "input_length": {n},'
                   f' "output_length": 1, "hash_ids": {ids}}}\n'
                   for t, n, ids in ((0, 512, [1]), (3000, 1024, [1, 2])))
    trace, issues = _read_text(tmp_path, text)
    assert issues == []
    assert _hops(trace) == [("s/main/0", "s", "main", 0, 0.0, 512, 0, 1, (1,)),
                            ("s/main/1", "s", "main", 1, 3.0, 1024, 512, 1, (1, 2))]
    assert trace.edges == (Edge("s/main/0", "s/main/1", SEQ, 3.0, 512),)


# --------------------------------------------------------------------------- agentic v1


def test_v1_wait_for_builds_sequence_spawn_and_join() -> None:
    """v1: a session whose first row waits for another is its sub-agent; wait = delay + tools."""
    trace, issues = _read(FIXTURES / "agentic_v1.jsonl")
    assert issues == []
    assert trace.block_size == 512
    assert _hops(trace) == [
        ("chat/main/0", "chat", "main", 0, 0.5, 512, 0, 8, (30,)),
        ("r1", "s1", "main", 0, 1.0, 1024, 0, 20, (10, 11)),
        ("c1", "s1", "c1", 0, 1.3, 700, 0, 30, (20, 21)),
        ("r2", "s1", "main", 1, 1.5, 1500, 1024, 15, (10, 11, 12)),
        ("c2", "s1", "c1", 1, 1.55, 1200, 700, 40, (20, 21, 22)),
        ("chat/main/1", "chat", "main", 1, 2.5, 700, 512, 9, (30, 31)),
        ("r3", "s1", "main", 2, 3.0, 2048, 1500, 25, (10, 11, 12, 13)),
    ]
    assert trace.edges == (
        Edge("r1", "c1", SPAWN, 0.05, 0),
        Edge("r1", "r2", SEQ, 0.5, 476),
        Edge("c1", "c2", SEQ, 0.25, 500),
        Edge("chat/main/0", "chat/main/1", SEQ, 2.0, 188),
        Edge("r2", "r3", SEQ, 0.02, 548),
        Edge("c2", "r3", JOIN, 0.02, 0),
    )
    assert trace.agents == (Agent("chat", "main"), Agent("s1", "main"),
                            Agent("s1", "c1", parent_agent_id="main"))
    assert [h.request_id for h in trace] == [None, "r1", "c1", "r2", "c2", None, "r3"]


def test_v1_row_without_wait_for_is_open_loop(tmp_path: Path) -> None:
    """A v1 row with a request_id but no wait_for, delay or tool wait starts at its timestamp."""
    text = ''.join(f'{{"request_id": "{r}", "session_id": "s", "timestamp": {t},'
                   f' "input_length": 512, "output_length": 1, "hash_ids": [1]}}\n'
                   for r, t in (("a", 0), ("b", 900)))
    trace, issues = _read_text(tmp_path, text)
    assert issues == []
    assert [(h.hop_id, h.index, h.start_s, h.shared_prefix_tokens) for h in trace] == [
        ("a", 0, 0.0, 0), ("b", 1, 0.9, 512)]
    assert trace.edges == ()


def test_v1_forward_reference_and_cycle_are_resolved(tmp_path: Path) -> None:
    """Dependencies may name later rows; a cycle is cut at its first row with an issue."""
    row = ('{{"request_id": "{r}", "session_id": "s", "input_length": 512, "output_length": 1,'
           ' "hash_ids": [1], "wait_for": ["{w}"], "delay": 10}}\n')
    trace, issues = _read_text(tmp_path, row.format(r="a", w="b") + row.format(r="b", w="a"))
    assert _messages(issues) == [(1, "dependency cycle: dependencies on 'b' ignored")]
    assert [(h.hop_id, h.start_s) for h in trace] == [("a", 0.0), ("b", 0.01)]
    assert trace.edges == (Edge("a", "b", SEQ, 0.01, 0),)


# --------------------------------------------------------------------------- agentic v2


def test_v2_header_and_typed_dependencies() -> None:
    """v2: play = session, session_id = agent, typed relations; replay_barrier is no edge."""
    trace, issues = _read(FIXTURES / "agentic_v2.jsonl")
    assert issues == []
    assert trace.block_size == 64
    assert _hops(trace) == [
        ("root", "p1", "main", 0, 0.0, 128, 0, 3, (1, 2)),
        ("solo", "p2", "main", 0, 0.05, 64, 0, 2, (40,)),
        ("kid-1", "p1", "kid", 0, 0.1, 128, 0, 6, (5, 6)),
        ("kid-2", "p1", "kid", 1, 0.3, 150, 128, 7, (5, 6, 7)),
        ("join", "p1", "main", 1, 0.4, 200, 128, 4, (1, 2, 3, 9)),
    ]
    assert trace.edges == (
        Edge("root", "kid-1", SPAWN, 0.1, 0),
        Edge("kid-1", "kid-2", SEQ, 0.12, 22),
        Edge("root", "join", SEQ, 0.15, 72),
        Edge("kid-2", "join", JOIN, 0.03, 0),
    )
    assert trace.agents == (Agent("p1", "main"), Agent("p2", "main"),
                            Agent("p1", "kid", parent_agent_id="main"))
    assert {h.model for h in trace} == {"m"}
    assert trace.meta["hash_id_scope"] == "local"


@pytest.mark.parametrize(("header", "message"), [
    ('{"schema": "other.format", "version": 2, "block_size": 64}',
     "unknown schema 'other.format' (expected 'dynamo.agentic_mooncake'); file skipped"),
    ('{"schema": "dynamo.agentic_mooncake", "version": 3, "block_size": 64}',
     "unsupported dynamo.agentic_mooncake version 3 (this reader: 2); file skipped"),
    ('{"schema": "dynamo.agentic_mooncake", "version": 2, "block_size": 0}',
     "header field 'block_size' must be a positive integer, got 0; file skipped"),
    ('{"schema": "dynamo.agentic_mooncake", "version": 2}',
     "header field 'block_size' must be a positive integer, got null; file skipped"),
])
def test_unusable_v2_header_skips_the_file(tmp_path: Path, header: str, message: str) -> None:
    """A header that cannot be read yields one issue on line 1 and an empty trace."""
    row = ('{"request_id": "a", "play_id": "p", "session_id": "s", "not_before_ms": 0,'
           ' "input_length": 4, "output_length": 1, "hash_ids": [1]}')
    trace, issues = _read_text(tmp_path, f"{header}\n{row}\n")
    assert _messages(issues) == [(1, message)]
    assert len(trace) == 0


def test_v2_bad_rows_and_dependencies(tmp_path: Path) -> None:
    """v2 rows need request_id, play_id, session_id, not_before_ms; bad deps are reported."""
    head = '{"schema": "dynamo.agentic_mooncake", "version": 2, "block_size": 4}'
    base = '"input_length": 4, "output_length": 1, "hash_ids": [1]'
    lines = [
        head,
        f'{{"request_id": "a", "play_id": "p", "session_id": "m", "not_before_ms": 0, {base}}}',
        f'{{"request_id": "b", "session_id": "m", "not_before_ms": 1, {base}}}',
        f'{{"request_id": "c", "play_id": "p", "session_id": "m", "not_before_ms": 2, {base},'
        ' "dependencies": [{"request_id": "a", "trigger": "later", "delay_ms": 0,'
        ' "relation": "sequence"}]}',
        f'{{"request_id": "d", "play_id": "q", "session_id": "m", "not_before_ms": 3, {base},'
        ' "dependencies": [{"request_id": "a", "trigger": "completion", "delay_ms": 0,'
        ' "relation": "sequence"}]}',
        f'{{"request_id": "e", "play_id": "p", "session_id": "m", "not_before_ms": 4, {base},'
        ' "dependencies": [{"request_id": "a", "trigger": "completion", "relation": "join"}]}',
    ]
    trace, issues = _read_text(tmp_path, "\n".join(lines) + "\n")
    assert _messages(issues) == [
        (3, "missing field 'play_id'; row skipped"),
        (4, "dependency 0: field 'trigger' must be one of completion, dispatch, "
            "got a string 'later'; row skipped"),
        (6, "dependency 0: missing field 'delay_ms'; row skipped"),
        (5, "dependency on 'a' of another play ('p') ignored"),
    ]
    assert [(h.hop_id, h.session_id) for h in trace] == [("a", "p"), ("d", "q")]
    assert trace.edges == ()


# --------------------------------------------------------------------------- bad input


def test_bad_rows_are_reported_and_good_rows_survive() -> None:
    """Each bad row gives one issue at its line; the rows around it still import."""
    trace, issues = _read(FIXTURES / "bad_rows.jsonl")
    assert _messages(issues) == [
        (2, "invalid JSON; skipped"),
        (3, "field 'input_length' must be a non-negative integer, got a string '600'; "
            "row skipped"),
        (4, "missing field 'output_length'; row skipped"),
        (5, "field 'hash_ids' must be an array of non-negative integers, got a string '2' "
            "at index 1; row skipped"),
        (6, "expected a JSON object, got an array"),
        (7, "hash_ids has 1 blocks but input_length 2000 needs 4 at block size 512; "
            "row skipped"),
        (8, "field 'output_length' must be a non-negative integer, got -3; row skipped"),
        (9, "field 'timestamp' must be a number, got a boolean; row skipped"),
        (11, "duplicate request_id 'a' (first on line 10); row skipped"),
        (12, "dependency on unknown request 'zzz' ignored"),
    ]
    assert {i.path for i in issues} == {str(FIXTURES / "bad_rows.jsonl")}
    assert [(h.hop_id, h.session_id, h.start_s) for h in trace] == [
        ("mooncake-1/main/0", "mooncake-1", 0.0),
        ("a", "mooncake-10", 0.07),
        ("b", "s", 0.09),
        ("mooncake-13/main/0", "mooncake-13", 0.1),
    ]
    assert trace.edges == ()


def test_header_after_the_first_line_is_a_bad_row(tmp_path: Path) -> None:
    """A v2 header is only valid as the first line; later it is a skipped row."""
    text = ('{"timestamp": 0, "input_length": 1, "output_length": 1, "hash_ids": [1]}\n'
            '{"schema": "dynamo.agentic_mooncake", "version": 2, "block_size": 64}\n')
    trace, issues = _read_text(tmp_path, text)
    assert _messages(issues) == [
        (2, "a dynamo.agentic_mooncake header is only valid on the first line; row skipped")]
    assert len(trace) == 1


@pytest.mark.parametrize("text", ["", "\n\n", "[]\n", "not json\n"])
def test_no_usable_row_gives_an_empty_trace(tmp_path: Path, text: str) -> None:
    """A file without a usable row returns an empty trace; the caller decides it is an error."""
    trace, _ = _read_text(tmp_path, text)
    assert (len(trace), trace.edges, trace.agents, trace.block_size) == (0, (), (), 512)


def test_missing_file_is_an_issue_not_an_exception(tmp_path: Path) -> None:
    """An unreadable path is reported as an issue with no line."""
    trace, issues = _read(tmp_path / "absent.jsonl")
    assert len(trace) == 0
    assert [(i.line, i.message.split(":")[0]) for i in issues] == [(None, "cannot open")]


# --------------------------------------------------------------------------- the synthetic sample


@pytest.fixture(scope="module")
def synthetic() -> Trace:
    trace, issues = _read(SYNTHETIC)
    assert issues == []
    return trace


def test_synthetic_sample_is_the_published_file_beside_its_license() -> None:
    """The third-party sample is byte-for-byte the published file, with its Apache-2.0 text and
    attribution beside it."""
    digest = hashlib.sha256(SYNTHETIC.read_bytes()).hexdigest()
    assert digest == "bd070915a98fc0ed264d7cfef2ce746002eb3076a695ec31ba2674c0111ec131"
    assert (FIXTURES / "LICENSE-APACHE").read_text().split()[:3] == ["Apache", "License", "Version"]
    assert "kvcache-ai/Mooncake" in (FIXTURES / "README.md").read_text()


def test_synthetic_trace_imports_every_request(synthetic: Trace) -> None:
    """The Mooncake FAST'25 synthetic trace: 3,993 hops of 512-token blocks, one per session."""
    assert len(synthetic) == 3993
    assert synthetic.block_size == 512
    assert len(synthetic.sessions()) == 3993
    assert synthetic.edges == ()
    assert sum(h.prompt_tokens for h in synthetic) == 61_194_628
    assert sum(h.output_tokens for h in synthetic) == 595_432
    assert synthetic.hop_list[-1].start_s == 1022.025


def test_synthetic_trace_prefix_hit_ratio(synthetic: Trace) -> None:
    """With one unlimited cache, a block seen before is a hit of one whole block: 65.1%."""
    seen: set[int] = set()
    hit_tokens = 0
    for hop in synthetic:
        hits = sum(1 for h in hop.hash_ids if h in seen)
        hit_tokens += min(hits * synthetic.block_size, hop.prompt_tokens)
        seen.update(hop.hash_ids)
    total = sum(h.prompt_tokens for h in synthetic)
    assert hit_tokens == 39_852_661
    assert hit_tokens / total == pytest.approx(0.651, abs=0.002)


# --------------------------------------------------------------------------- export


def test_export_writes_dynamo_v2_rows() -> None:
    """Export: header, then one row per hop with typed completion dependencies from edges."""
    trace, _ = _read(FIXTURES / "agentic_v1.jsonl")
    lines = [orjson.loads(line) for line in _export(trace).splitlines()]
    header, rows = lines[0], {row["request_id"]: row for row in lines[1:]}
    assert {k: header[k] for k in ("schema", "version", "block_size", "hash_id_scope")} == {
        "schema": "dynamo.agentic_mooncake", "version": 2, "block_size": 512,
        "hash_id_scope": "local"}
    assert header["source"]["format"] == "agentgraph"
    assert len(header["source"]["digest"]) == 64
    assert rows["r3"] == {
        "request_id": "r3", "play_id": "s1", "session_id": "main", "model": "unknown",
        "input_length": 2048, "output_length": 25, "hash_ids": [10, 11, 12, 13],
        "not_before_ms": 3000.0,
        "dependencies": [
            {"request_id": "r2", "trigger": "completion", "delay_ms": 20.0, "relation": "sequence"},
            {"request_id": "c2", "trigger": "completion", "delay_ms": 20.0, "relation": "join"},
        ],
    }
    assert rows["c1"]["session_id"] == "c1"
    assert rows["c1"]["dependencies"][0]["relation"] == "spawn"
    assert list(rows) == [h.hop_id for h in trace]


def test_export_is_deterministic_and_empty_trace_is_header_only() -> None:
    """The same trace gives the same bytes; an empty trace is just the header."""
    trace, _ = _read(FIXTURES / "agentic_v2.jsonl")
    assert _export(trace) == _export(trace)
    empty = _export(Trace((), block_size=16)).splitlines()
    assert len(empty) == 1
    assert orjson.loads(empty[0])["block_size"] == 16


@pytest.mark.parametrize("name", ["plain.jsonl", "agentic_v1.jsonl", "agentic_v2.jsonl"])
def test_fixture_round_trips_through_export(tmp_path: Path, name: str) -> None:
    """import → export → import keeps hops, times, sessions, agents and edges."""
    trace, _ = _read(FIXTURES / name)
    again, issues = _round_trip(trace, tmp_path)
    assert issues == []
    assert again.block_size == trace.block_size
    assert _hops(again) == _hops(trace)
    assert again.edges == trace.edges
    assert again.agents == trace.agents


# --------------------------------------------------------------------------- round-trip property


@st.composite
def agent_traces(draw: st.DrawFn) -> Trace:
    """Small traces: per session a main chain, maybe one sub-agent spawned and joined back."""
    block = draw(st.sampled_from([4, 16, 64]))
    clock_ms = 0
    hops: list[Hop] = []
    edges: list[Edge] = []
    for s in range(draw(st.integers(1, 3))):
        n_main = draw(st.integers(1, 4))
        plan = [("main", k) for k in range(n_main)]
        spawn_at = draw(st.none() | st.integers(0, n_main - 1))
        if spawn_at is not None:
            plan[spawn_at + 1:spawn_at + 1] = [("sub", k) for k in range(draw(st.integers(1, 3)))]
        by_key: dict[tuple[str, int], Hop] = {}
        for agent, k in plan:
            clock_ms += draw(st.integers(1, 5000))
            prompt = draw(st.integers(0, 5 * block))
            n_blocks = -(-prompt // block)
            hash_ids = tuple(draw(st.lists(st.integers(0, 30), min_size=n_blocks,
                                           max_size=n_blocks)))
            hop = Hop(f"s{s}/{agent}/{k}", f"s{s}", agent, k, "m", clock_ms / 1000,
                      clock_ms / 1000, prompt, draw(st.integers(0, 100)), 0, hash_ids)
            by_key[agent, k] = hop
            hops.append(hop)
        edges += _plan_edges(draw, by_key, spawn_at)
    return Trace(tuple(hops), tuple(edges), (), block)


def _plan_edges(draw: st.DrawFn, by_key: dict[tuple[str, int], Hop],
                spawn_at: int | None) -> list[Edge]:
    def wait() -> float:
        return draw(st.integers(0, 5000)) / 1000

    edges = [Edge(by_key[a, k - 1].hop_id, hop.hop_id, SEQ, wait())
             for (a, k), hop in by_key.items() if k > 0]
    if spawn_at is None:
        return edges
    last_sub = max(k for a, k in by_key if a == "sub")
    edges.append(Edge(by_key["main", spawn_at].hop_id, by_key["sub", 0].hop_id, SPAWN, wait()))
    if ("main", spawn_at + 1) in by_key:
        edges.append(Edge(by_key["sub", last_sub].hop_id, by_key["main", spawn_at + 1].hop_id,
                          JOIN, wait()))
    return edges


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(trace=agent_traces())
def test_export_then_import_keeps_the_graph(tmp_path: Path, trace: Trace) -> None:
    """Any trace survives export → import: token counts, hash_ids, sessions, agents, edges."""
    again, issues = _round_trip(trace, tmp_path)
    assert issues == []
    assert again.block_size == trace.block_size
    view = {(h.hop_id, h.session_id, h.agent_id, h.index, h.prompt_tokens, h.output_tokens,
             h.hash_ids) for h in trace}
    assert {(h.hop_id, h.session_id, h.agent_id, h.index, h.prompt_tokens, h.output_tokens,
             h.hash_ids) for h in again} == view
    assert all(math.isclose(a.start_s, b.start_s) for a, b in zip(
        sorted(trace, key=lambda h: h.hop_id), sorted(again, key=lambda h: h.hop_id),
        strict=True))
    waits = {(e.src, e.dst, e.kind): e.wait_s for e in trace.edges}
    again_waits = {(e.src, e.dst, e.kind): e.wait_s for e in again.edges}
    assert again_waits.keys() == waits.keys()
    assert all(math.isclose(again_waits[k], w, abs_tol=1e-9) for k, w in waits.items())
