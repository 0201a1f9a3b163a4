"""Import does not depend on the order of lines, and absurd token counts cost bounded work."""

from __future__ import annotations

import functools
import shutil
import tempfile
import time
import tracemalloc
from pathlib import Path
from typing import Any

import orjson
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgraph import traceio
from agentgraph.sources import ImportResult, import_paths
from agentgraph.sources.jsonl import time_range
from agentgraph.tokens import MAX_PROMPT_TOKENS

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "claude_legacy" / "projects"
RESUMED, ORIGINAL = "afe7cc86-0b2c-4ecd-9fab-ca34569943c1", "df749bd1-e005-4a7b-83a9-949e8e0bdb18"
V1 = "bc0ffa8d-4bd9-4e06-b502-4860164c5bc8"
LAST_COPIED = "36065913-cfe2-4ffb-94cb-1db9a8968661"  # the original's last line, copied into RESUMED


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _resumed_project(root: Path) -> Path:
    project = root / "-work-resumed"
    shutil.copytree(FIXTURES / "-work-resumed", project)
    return project


def _hops_by_session(result: ImportResult) -> dict[str, int]:
    counts: dict[str, int] = {}
    for hop in result.trace:
        counts[hop.session_id] = counts.get(hop.session_id, 0) + 1
    return counts


def _import_resumed(shuffle: dict[str, list[bytes]] | None = None) -> tuple[ImportResult, bytes]:
    """Import a fresh copy of the resumed fixture, its files' lines replaced by ``shuffle``."""
    with tempfile.TemporaryDirectory() as tmp:
        project = _resumed_project(Path(tmp))
        for sid, lines in (shuffle or {}).items():
            (project / f"{sid}.jsonl").write_bytes(b"".join(lines))
        result = import_paths([project])
        return result, traceio.dumps(result.trace)


@functools.cache
def _unshuffled() -> bytes:
    return _import_resumed()[1]


def test_the_resumed_fixture_as_written() -> None:
    """The copy repeats the original's three calls; each session keeps its own three."""
    result, _ = _import_resumed()
    assert _hops_by_session(result) == {ORIGINAL: 3, RESUMED: 3}
    assert result.issues == ()


@pytest.mark.parametrize("shuffled", [(RESUMED,), (ORIGINAL,), (RESUMED, ORIGINAL)],
                         ids=["copy", "original", "both"])
@settings(max_examples=40, deadline=None)
@given(data=st.data())
def test_any_order_of_lines_gives_the_same_sessions_and_hops(shuffled: tuple[str, ...], data: Any) -> None:
    """Permuting the lines of either file (or both) changes no hop and raises no warning."""
    shuffle = {sid: data.draw(st.permutations(_lines(FIXTURES / "-work-resumed" / f"{sid}.jsonl")), sid)
               for sid in shuffled}
    result, dumped = _import_resumed(shuffle)
    assert _hops_by_session(result) == {ORIGINAL: 3, RESUMED: 3}
    assert dumped == _unshuffled()
    assert result.issues == ()


def test_reversed_files_keep_their_calls() -> None:
    """The worst order for the old first/last-line rule: both files back to front."""
    shuffle = {sid: _lines(FIXTURES / "-work-resumed" / f"{sid}.jsonl")[::-1] for sid in (RESUMED, ORIGINAL)}
    result, dumped = _import_resumed(shuffle)
    assert _hops_by_session(result) == {ORIGINAL: 3, RESUMED: 3}
    assert dumped == _unshuffled()


def _line(kind: str, uuid: str, parent: str, at: str, sid: str, **extra: Any) -> bytes:
    rec = {"parentUuid": parent, "isSidechain": False, "type": kind, "uuid": uuid,
           "timestamp": f"2025-11-03T{at}Z", "sessionId": sid, **extra}
    return orjson.dumps(rec) + b"\n"


def _continue(path: Path, sid: str, at: str, n: int = 1) -> None:
    """Append ``n`` new calls to a session file, answering its last copied line, at ``at``."""
    lines, parent = [], LAST_COPIED
    for i in range(n):
        user, reply = f"u-{sid[:4]}-{i}", f"a-{sid[:4]}-{i}"
        lines.append(_line("user", user, parent, at, sid,
                           message={"role": "user", "content": f"go on {i}"}))
        usage = {"input_tokens": 3, "cache_read_input_tokens": 30000, "cache_creation_input_tokens": 100,
                 "output_tokens": 9}
        lines.append(_line("assistant", reply, user, at.replace(".000", ".500"), sid, requestId=f"req_{sid[:4]}{i}",
                           message={"id": f"msg_{sid[:4]}{i}", "role": "assistant", "model": "claude-sonnet-4-5",
                                    "content": [{"type": "text", "text": "ok"}], "usage": usage}))
        parent = reply
    path.write_bytes(path.read_bytes() + b"".join(lines))


def test_an_original_continued_after_the_copy_ends_is_a_guess_and_warned(tmp_path: Path) -> None:
    """Both sessions went on after the shared calls and the original ends last: the copy sorts
    first and keeps the shared calls; the original's file says so, naming the copy."""
    project = _resumed_project(tmp_path)
    original = project / f"{ORIGINAL}.jsonl"
    _continue(original, ORIGINAL, "15:00:00.000")
    result = import_paths([project])
    assert _hops_by_session(result) == {RESUMED: 6, ORIGINAL: 1}
    assert [str(i) for i in result.issues] == [
        f"{original}: 3 call(s) are also in {project / f'{RESUMED}.jsonl'}, and both sessions "
        "went on with calls of their own, so which session copied them is unknown; they stay in "
        f"session {RESUMED}, which sorts first (earliest first, then last timestamp, then id)"]


def test_an_original_continued_before_the_copy_ends_keeps_its_calls(tmp_path: Path) -> None:
    """The original ends first, so it keeps the shared calls; still a guess, still warned."""
    project = _resumed_project(tmp_path)
    _continue(project / f"{ORIGINAL}.jsonl", ORIGINAL, "12:00:00.000", n=2)
    result = import_paths([project])
    assert _hops_by_session(result) == {ORIGINAL: 5, RESUMED: 3}
    assert [str(i) for i in result.issues] == [
        f"{project / f'{RESUMED}.jsonl'}: 3 call(s) are also in {project / f'{ORIGINAL}.jsonl'}, "
        "and both sessions went on with calls of their own, so which session copied them is "
        f"unknown; they stay in session {ORIGINAL}, which sorts first (earliest first, then last "
        "timestamp, then id)"]


def test_two_copies_of_one_original_take_nothing_from_it(tmp_path: Path) -> None:
    """Resuming the same session twice: each copy keeps only its own calls, no warning."""
    project = _resumed_project(tmp_path)
    second = "b0000000-0000-4000-8000-000000000002"
    (project / f"{second}.jsonl").write_bytes((project / f"{ORIGINAL}.jsonl").read_bytes())
    _continue(project / f"{second}.jsonl", second, "16:00:00.000", n=2)
    result = import_paths([project])
    assert _hops_by_session(result) == {ORIGINAL: 3, RESUMED: 3, second: 2}
    assert result.issues == ()


def test_sessions_with_equal_spans_share_by_id_and_warn(tmp_path: Path) -> None:
    """Two files holding the same calls over the same time span: the smaller id keeps them."""
    project = _resumed_project(tmp_path)
    (project / f"{RESUMED}.jsonl").unlink()
    twin = "00000000-0000-4000-8000-000000000001"
    (project / f"{twin}.jsonl").write_bytes((project / f"{ORIGINAL}.jsonl").read_bytes())
    result = import_paths([project])
    assert _hops_by_session(result) == {twin: 3}
    assert [str(i) for i in result.issues] == [
        f"{project / f'{ORIGINAL}.jsonl'}: 3 call(s) are also in {project / f'{twin}.jsonl'}, "
        "whose first and last timestamps are the same, so which session copied them is unknown; "
        f"they stay in session {twin}, which sorts first (earliest first, then last timestamp, then id)"]


EARLY = "2025-11-03T09:00:00.000Z"  # before either session's first line
_NO_CALL = {
    "system": {"type": "system", "subtype": "informational", "content": "x", "uuid": "s-1",
               "parentUuid": None, "timestamp": EARLY, "sessionId": RESUMED},
    "file-history-snapshot": {"type": "file-history-snapshot", "messageId": "m-1",
                              "snapshot": {"messageId": "m-1", "trackedFileBackups": {}, "timestamp": EARLY},
                              "isSnapshotUpdate": False},
    "unknown-type": {"type": "x-future-kind", "timestamp": EARLY, "sessionId": RESUMED},
    "user": {"type": "user", "uuid": "u-1", "parentUuid": None, "isSidechain": False, "timestamp": EARLY,
             "sessionId": RESUMED, "message": {"role": "user", "content": "hello"}},
    "year-1": {"type": "system", "content": "x", "uuid": "s-2", "parentUuid": None,
               "timestamp": "0001-01-01T00:00:00.000Z", "sessionId": RESUMED},
}


@pytest.mark.parametrize("kind", sorted(_NO_CALL))
def test_a_line_without_a_call_does_not_move_the_calls(tmp_path: Path, kind: str) -> None:
    """One line that carries no call, dated before both sessions, appended to the copy: only the
    calls' own timestamps decide, so each session keeps its three calls and nothing is guessed."""
    project = _resumed_project(tmp_path)
    copy = project / f"{RESUMED}.jsonl"
    copy.write_bytes(copy.read_bytes() + orjson.dumps(_NO_CALL[kind]) + b"\n")
    result = import_paths([project])
    assert _hops_by_session(result) == {ORIGINAL: 3, RESUMED: 3}
    expected = [f"{copy}: 1 line(s) of unknown type 'x-future-kind' skipped"] if kind == "unknown-type" else []
    assert [str(i) for i in result.issues] == expected


@pytest.mark.parametrize("stamp", ["0001-01-01T00:00:00.000Z", "2022-12-31T23:59:59.000Z",
                                   "9999-12-31T23:59:59.000Z"])
def test_a_call_dated_implausibly_does_not_count_and_is_reported(tmp_path: Path, stamp: str) -> None:
    """A call of the copy's own dated before 2023 or after 2099: it is imported, but the span that
    decides ownership ignores it (the original keeps its calls) and the copy's file says so."""
    project = _resumed_project(tmp_path)
    copy = project / f"{RESUMED}.jsonl"
    usage = {"input_tokens": 3, "cache_read_input_tokens": 300, "output_tokens": 9}
    line = {"type": "assistant", "uuid": "a-odd", "parentUuid": LAST_COPIED, "isSidechain": False,
            "timestamp": stamp, "sessionId": RESUMED, "requestId": "req_odd",
            "message": {"id": "msg_odd", "role": "assistant", "model": "claude-sonnet-4-5",
                        "content": [{"type": "text", "text": "ok"}], "usage": usage}}
    copy.write_bytes(copy.read_bytes() + orjson.dumps(line) + b"\n")
    result = import_paths([project])
    assert _hops_by_session(result) == {ORIGINAL: 3, RESUMED: 4}
    assert [str(i) for i in result.issues] == [
        f"{copy}: 1 call(s) with a timestamp before 2023 or after 2099; they do not count in the "
        "session's time span (the order of sessions and the owner of calls copied by a resumed session)"]


def test_time_range_reads_every_line_in_any_spelling(tmp_path: Path) -> None:
    """Earliest and latest timestamp wherever they are; other ISO spellings are parsed too."""
    f = tmp_path / "s.jsonl"
    f.write_bytes(b'{"timestamp":"2025-11-03T10:00:05.000Z"}\n{"type":"summary"}\n'
                  b'{"timestamp":"2025-11-03T10:00:01.500Z"}\n{"timestamp":"not a time"}\n'
                  b'{"timestamp":"2025-11-03T10:00:09.000Z"}\n{"timestamp":"2025-11-03T10:00:03.000Z"}\n')
    lo, hi = 1762164001.5, 1762164009.0
    assert time_range(f) == (lo, hi)
    assert time_range(f, chunk_bytes=7) == (lo, hi)  # lines longer than a chunk
    f.write_bytes(b'{"timestamp": "2025-11-03T10:00:01.5+00:00"}\n{"timestamp":"2025-11-03T10:00:09Z"}\n'
                  b'{"timestamp":"2025-11-03T10:00:05.000Z"}\n')
    assert time_range(f) == (lo, hi)
    f.write_bytes(b'{"type":"summary"}\n')
    assert time_range(f) is None


# --------------------------------------------------------------------------- absurd counts


def _absurd_copy(root: Path) -> Path:
    """The 1.0.x fixture (one sub-agent, 8 calls, 15 KB) with every usage count 99,999,999."""
    project = root / "-work-absurd"
    project.mkdir(parents=True)
    out = []
    for raw in _lines(FIXTURES / "-work-v1-sidechain" / f"{V1}.jsonl"):
        rec = orjson.loads(raw)
        usage = rec.get("message", {}).get("usage")
        if isinstance(usage, dict):
            for key in ("input_tokens", "cache_read_input_tokens", "cache_creation_input_tokens",
                        "output_tokens"):
                usage[key] = 99_999_999
        out.append(orjson.dumps(rec) + b"\n")
    (project / f"{V1}.jsonl").write_bytes(b"".join(out))
    return project


def test_absurd_usage_is_capped_with_a_warning_per_call_in_bounded_time_and_memory(tmp_path: Path) -> None:
    """Counts of 99,999,999 everywhere: each prompt is cut to 10M tokens and named by file and
    line; the import takes a fraction of a second and tens of MB (it took 1 GB and wrote 186 MB)."""
    project = _absurd_copy(tmp_path)
    tracemalloc.start()
    try:
        result = import_paths([project])
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    started = time.perf_counter()
    import_paths([project])
    seconds = time.perf_counter() - started
    assert seconds < 2.0  # ~0.05 s
    assert peak < 32 << 20  # ~23 MiB: 8 hops of 156,250 hashes, two agents of distinct ones
    assert len(traceio.dumps(result.trace)) < 7_000_000  # ~6.2 MB: each agent's first hop in full
    f = project / f"{V1}.jsonl"
    assert [str(i) for i in result.issues] == [
        f"{f}:{line}: usage reports a prompt of 299,999,997 tokens, above the bound of "
        "10,000,000: the hop keeps its first 10,000,000 (prompt_tokens and hash_ids)"
        for line in (3, 5, 15, 17, 19, 8, 10, 12)]  # main agent's calls, then the sub-agent's
    assert {(h.prompt_tokens, len(h.hash_ids)) for h in result.trace} == {(MAX_PROMPT_TOKENS, 156_250)}
    assert {h.usage.input_tokens for h in result.trace if h.usage} == {99_999_999}  # as reported


def test_a_request_sized_above_the_bound_from_plausible_counts_is_cut(tmp_path: Path) -> None:
    """A 2.1.3xx request naming one unknown message 40 times, reporting 9M tokens: the message's
    size is counted 40 times; the hop is cut to the bound at its last hashed unit."""
    project = tmp_path / "p"
    project.mkdir()
    sid = "c0000000-0000-4000-8000-000000000003"
    t = "2025-11-03T10:00:0{}.000Z"
    lines = [
        {"type": "api-request", "id": "r1", "shapeHash": "gone", "tail": ["ab" * 32] * 40,
         "params": {"model": "claude-sonnet-4-5"}, "timestamp": t.format(1), "sessionId": sid},
        {"type": "assistant", "requestRef": "r1", "uuid": "a1", "parentUuid": None, "timestamp": t.format(2),
         "sessionId": sid, "message": {"id": "m1", "role": "assistant", "model": "claude-sonnet-4-5",
                                       "content": [{"type": "text", "text": "ok"}],
                                       "usage": {"input_tokens": 9_000_000, "output_tokens": 5}}},
    ]
    f = project / f"{sid}.jsonl"
    f.write_bytes(b"".join(orjson.dumps(rec) + b"\n" for rec in lines))
    result = import_paths([project])
    (hop,) = result.trace
    assert (hop.prompt_tokens, len(hop.hash_ids)) == (MAX_PROMPT_TOKENS, 156_250)
    assert [str(i) for i in result.issues] == [
        f"{f}: 1 request(s) of agent 'main' whose shape (system + tools) is missing; sized from usage",
        f"{f}: 1 request message(s) of agent 'main' not found in the transcript; sized from usage",
        f"{f}:2: the request's messages size to 184,500,000 tokens, above the bound of "
        "10,000,000: the hop keeps its first 10,000,000 (prompt_tokens and hash_ids)"]
