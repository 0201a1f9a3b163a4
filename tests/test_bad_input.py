"""Damaged transcripts: a warning naming file and line, and everything else still imported."""

from __future__ import annotations

import os
import random
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

import orjson
import pytest

from agentgraph.cli import main
from agentgraph.sources import import_paths
from tests.cc_synth import SID, SUB, write_demo_session


@pytest.fixture
def project(tmp_path: Path) -> Path:
    return write_demo_session(tmp_path / "projects")


def _main_file(project: Path) -> Path:
    return project / f"{SID}.jsonl"


def _lines(path: Path) -> list[bytes]:
    return path.read_bytes().splitlines(keepends=True)


def _issues(project: Path) -> list[str]:
    return [str(i) for i in import_paths([project]).issues]


def test_truncated_last_line(project: Path) -> None:
    """A torn last line (a crash mid-write) is reported; the hops before it survive."""
    f = _main_file(project)
    data = f.read_bytes()
    f.write_bytes(data[: len(data) - 40])
    result = import_paths([project])
    n = len(_lines(f))
    assert [str(i) for i in result.issues] == [
        f"{f}:{n}: truncated last line (no newline, incomplete JSON); skipped",
        f"{f}: 1 request(s) of agent 'main' got no response line (interrupted, failed, or the "
        "line is lost); not hops"]
    assert len(result.trace) == 4  # the last main call lost its only assistant line


@pytest.mark.parametrize(
    ("at", "line", "message"),
    [
        (3, b'{"type": "user", "message": \n', "invalid JSON; skipped"),
        (2, b'{"type": "user", "x": "\xff\xfe"}\n', "line is not valid UTF-8 (byte 23); skipped"),
    ],
    ids=["invalid-json", "non-utf8"],
)
def test_unreadable_line_in_the_middle(project: Path, at: int, line: bytes, message: str) -> None:
    """An unreadable line is skipped with its line number; the lines after it still count."""
    f = _main_file(project)
    lines = _lines(f)
    lines.insert(at, line)
    f.write_bytes(b"".join(lines))
    result = import_paths([project])
    assert [str(i) for i in result.issues] == [f"{f}:{at + 1}: {message}"]
    assert len(result.trace) == 5


def test_wrong_field_types(project: Path) -> None:
    """A line whose fields have the wrong types is skipped with the reason."""
    f = _main_file(project)
    lines = _lines(f)
    first_request = next(i for i, raw in enumerate(lines) if b'"api-request"' in raw)
    rec = orjson.loads(lines[first_request])
    rec["tail"] = "not-a-list"
    lines[first_request] = orjson.dumps(rec) + b"\n"
    lines.append(orjson.dumps({"type": "assistant", "message": "oops"}) + b"\n")
    f.write_bytes(b"".join(lines))
    issues = _issues(project)
    assert issues == [
        f"{f}:{first_request + 1}: unusable 'api-request' line (ValueError: 'tail' must be a "
        "list of hash strings); skipped",
        f"{f}:{len(lines)}: unusable 'assistant' line (AttributeError: 'str' object has no "
        "attribute 'get'); skipped",
        # the lost request cascades: its response is orphaned, the next request lost its base
        f"{f}: 1 request(s) of agent 'main' keeping more messages than their base has; kept what exists",
        f"{f}: 1 request(s) of agent 'main' missing: responses name them but no api-request line "
        "exists; skipped",
        f"{f}: 1 request(s) of agent 'main' whose base request is missing; only their tail is known",
    ]
    assert len(import_paths([project]).trace) == 4


def test_unknown_line_types_are_counted(project: Path) -> None:
    """Unknown line types are skipped with one counted warning per file."""
    f = _main_file(project)
    extra = b"".join(orjson.dumps({"type": "from-the-future", "n": i}) + b"\n" for i in range(3))
    f.write_bytes(f.read_bytes() + extra)
    result = import_paths([project])
    assert [str(i) for i in result.issues] == [f"{f}: 3 line(s) of unknown type 'from-the-future' skipped"]
    assert len(result.trace) == 5


def test_missing_blob_is_sized_from_usage(project: Path) -> None:
    """A request message with no blob still has its hash (prefix structure) and usage size."""
    f = _main_file(project)
    f.write_bytes(b"".join(raw for raw in _lines(f) if b'"api-request-blob"' not in raw))
    result = import_paths([project])
    assert [str(i) for i in result.issues] == [
        f"{f}: 1 request message(s) of agent 'main' not found in the transcript; sized from usage"]
    assert [h.prompt_tokens for h in result.trace if h.agent_id == "main"] == [3000, 3300, 3900]


def test_missing_subagent_file(project: Path) -> None:
    """A sub-agent whose file is gone is reported; the parent's hops stay."""
    (project / SID / "subagents" / f"agent-{SUB}.jsonl").unlink()
    result = import_paths([project])
    assert [str(i) for i in result.issues] == [
        f"{_main_file(project)}: sub-agent '{SUB}' (tool call toolu_m1) has no transcript; "
        "its hops are missing"]
    assert len(result.trace) == 3


def test_nothing_usable_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """import exits 2 with a clear message when no source yields a hop, and writes no file."""
    bad = tmp_path / "x.jsonl"
    bad.write_bytes(b'{"type": "user"\n')
    out = tmp_path / "out.trace"
    assert main(["import", str(bad), "-o", str(out)]) == 2
    err = capsys.readouterr().err
    assert f"warning: {bad}:1: truncated last line" not in err  # it ends with a newline
    assert f"warning: {bad}:1: invalid JSON; skipped" in err
    assert f"error: no usable hop found in {bad}" in err
    assert not out.exists()


MUTATIONS = ("truncate", "flip", "drop_line", "dup_line", "garbage", "swap_lines")
LOUD = frozenset({"flip", "dup_line", "garbage"})
FUZZ_SEEDS = int(os.environ.get("AGENTGRAPH_FUZZ_SEEDS", "100"))  # 800 per corpus checked by hand
"""Mutations that can never lose a hop silently (dropping or reordering whole lines can)."""


def _mutate(data: bytes, rng: random.Random) -> tuple[str, bytes]:
    kind = rng.choice(MUTATIONS)
    if not data:
        return "garbage", b"\x00garbage"
    lines = data.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    if kind == "truncate":
        return kind, data[: rng.randrange(len(data))]
    if kind == "flip":
        pos = rng.randrange(len(data))
        return kind, data[:pos] + bytes([rng.randrange(256)]) + data[pos + 1 :]
    if kind == "drop_line":
        del lines[i]
    elif kind == "dup_line":
        lines.insert(i, lines[i])
    elif kind == "garbage":
        lines.insert(i, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))) + b"\n")
    else:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return kind, b"".join(lines)


@pytest.mark.parametrize("corpus", ["current", "legacy"])
@pytest.mark.parametrize("seed", range(FUZZ_SEEDS))
def test_fuzzed_copies_never_crash_or_lose_silently(tmp_path: Path, corpus: str, seed: int) -> None:
    """Random corruption: no exception, no invented hops, every issue names a file, and a hop
    lost to a byte flip, a duplicated or an inserted garbage line is always reported."""
    if corpus == "current":
        root = write_demo_session(tmp_path / "projects")
    else:
        root = tmp_path / "projects"
        shutil.copytree(LEGACY, root)
    before = len(import_paths([root]).trace)
    rng = random.Random(seed)
    files = sorted(p for p in root.rglob("*") if p.is_file())
    kinds = set()
    for _ in range(rng.randrange(1, 4)):
        f = rng.choice(files)
        kind, data = _mutate(f.read_bytes(), rng)
        f.write_bytes(data)
        kinds.add(kind)
    result = import_paths([root])
    if "flip" not in kinds:  # a flipped id byte can split one call's lines into two calls
        assert len(result.trace) <= before
    for issue in result.issues:
        assert issue.path.startswith(str(root))
    if len(result.trace) < before and kinds <= LOUD:
        assert result.issues, f"{kinds} lost {before - len(result.trace)} hop(s) silently"


LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "claude_legacy" / "projects"
RESUMED, ORIGINAL = "afe7cc86-0b2c-4ecd-9fab-ca34569943c1", "df749bd1-e005-4a7b-83a9-949e8e0bdb18"


def _hops_by_session(paths: list[Path]) -> dict[str, int]:
    counts: dict[str, int] = {}
    for hop in import_paths(paths).trace:
        counts[hop.session_id] = counts.get(hop.session_id, 0) + 1
    return counts


def test_resumed_copy_never_swallows_the_original(tmp_path: Path) -> None:
    """Without its leading summary line (real files start with untimed lines or none), the
    resumed file still loses the copied calls to the original, in any source order."""
    project = tmp_path / "p"
    shutil.copytree(LEGACY / "-work-resumed", project)
    resumed = project / f"{RESUMED}.jsonl"
    resumed.write_bytes(b"".join(raw for raw in _lines(resumed) if b'"summary"' not in raw))
    original = project / f"{ORIGINAL}.jsonl"
    expected = {ORIGINAL: 3, RESUMED: 3}
    assert _hops_by_session([project]) == expected
    assert _hops_by_session([resumed, original]) == expected
    assert _hops_by_session([original, resumed]) == expected


def test_a_file_named_twice_is_read_once(project: Path) -> None:
    """Overlapping sources (a file and its tree) import each file once."""
    once = import_paths([project]).trace
    twice = import_paths([project / f"{SID}.jsonl", project.parent, project])
    assert twice.trace == once
    assert twice.issues == ()


def test_a_file_opening_with_untimed_lines_is_recognized(project: Path) -> None:
    """Real 2.x files can open with a file-history-snapshot line; detection looks past it."""
    f = _main_file(project)
    f.write_bytes(b'{"type":"file-history-snapshot","messageId":"m","snapshot":{}}\n' + f.read_bytes())
    result = import_paths([f])
    assert (len(result.trace), result.issues) == (5, ())


def test_session_dir_without_its_session_file(project: Path) -> None:
    """The sub-agents of a session whose file is gone are imported, and the loss is reported."""
    _main_file(project).unlink()
    result = import_paths([project])
    assert {h.agent_id for h in result.trace} == {SUB}
    assert str(result.issues[0]) == (
        f"{_main_file(project)}: session file missing; importing its sub-agents only")


def _edit_lines(path: Path, kind: bytes, edit: Callable[[dict[str, Any]], None], nth: int = 0) -> int:
    """Apply ``edit`` to the ``nth`` line of type ``kind``; return its 1-based line number."""
    lines = _lines(path)
    index = [i for i, raw in enumerate(lines) if b'"type":"' + kind + b'"' in raw][nth]
    rec = orjson.loads(lines[index])
    edit(rec)
    lines[index] = orjson.dumps(rec) + b"\n"
    path.write_bytes(b"".join(lines))
    return index + 1


@pytest.mark.parametrize(
    ("value", "message"),
    [("12", "usage.input_tokens must be an integer in [0, 100000000], got '12'"),
     (1e300, "usage.input_tokens must be an integer in [0, 100000000], got 1e+300"),
     (-5, "usage.input_tokens must be an integer in [0, 100000000], got -5")],
)
def test_implausible_usage_is_reported_not_trusted(project: Path, value: object, message: str) -> None:
    """Token counts that are not sane integers make their line unusable, with the reason."""
    f = _main_file(project)
    line = _edit_lines(f, b"assistant", lambda r: r["message"]["usage"].__setitem__("input_tokens", value))
    result = import_paths([project])
    assert str(result.issues[0]) == f"{f}:{line}: unusable 'assistant' line (ValueError: {message}); skipped"
    assert len(result.trace) == 5  # the call's second line still carries it


def test_meta_file_that_is_not_an_object(project: Path) -> None:
    """A .meta.json holding a list is reported; the link comes from the parent's result."""
    meta = project / SID / "subagents" / f"agent-{SUB}.meta.json"
    meta.write_bytes(b"[1, 2]")
    result = import_paths([project])
    assert [str(i) for i in result.issues] == [f"{meta}: sub-agent meta is not a JSON object; ignored"]
    assert sum(e.kind.value == "spawn" for e in result.trace.edges) == 1


def test_meta_naming_the_agents_own_call_makes_no_cycle(project: Path, tmp_path: Path) -> None:
    """A meta file pointing at a tool call of the sub-agent itself gives no self-spawn edge."""
    meta = project / SID / "subagents" / f"agent-{SUB}.meta.json"
    meta.write_bytes(orjson.dumps({"toolUseId": "toolu_s0"}))
    result = import_paths([project])
    assert all(e.src.split("/")[1] != e.dst.split("/")[1] for e in result.trace.edges if e.kind.value == "spawn")
    out = tmp_path / "t.trace"
    assert main(["import", str(project), "-o", str(out)]) == 0
    assert main(["graph", str(out)]) == 0


def test_api_request_with_odd_params_and_content(project: Path) -> None:
    """params that are not an object and message content that is an object still import."""
    f = _main_file(project)
    _edit_lines(f, b"api-request", lambda r: r.__setitem__("params", [1]))
    _edit_lines(f, b"user", lambda r: r["message"].__setitem__("content", {"odd": True}))
    result = import_paths([project])
    assert len(result.trace) == 5
    assert next(iter(result.trace)).model == "claude-test-1"  # taken from the response


def test_sources_of_different_block_sizes_exit_2(project: Path, tmp_path: Path,
                                                   capsys: pytest.CaptureFixture[str]) -> None:
    """Claude Code at 64 and Mooncake at 512 in one import: a usage error, no traceback."""
    mooncake = Path(__file__).resolve().parents[1] / "fixtures" / "mooncake" / "plain.jsonl"
    assert main(["import", str(project), str(mooncake), "-o", str(tmp_path / "o.trace")]) == 2
    err = capsys.readouterr().err
    assert "different block sizes (512 and 64); pass --block-size with a multiple of both" in err
    assert main(["import", str(project), str(mooncake), "-o", str(tmp_path / "o.trace"),
                 "--block-size", "512"]) == 0


def test_resumed_original_with_a_huge_last_line_keeps_its_calls(tmp_path: Path) -> None:
    """The last timestamp is found however long the last line is (windows grow backwards)."""
    project = tmp_path / "p"
    shutil.copytree(LEGACY / "-work-resumed", project)
    original = project / f"{ORIGINAL}.jsonl"
    _edit_lines(original, b"assistant", lambda r: r.__setitem__("padding", "x" * 70_000), nth=-1)
    assert _hops_by_session([project]) == {ORIGINAL: 3, RESUMED: 3}


def test_non_string_parent_uuid(tmp_path: Path) -> None:
    """A parentUuid that is not a string is treated as no parent, not a crash."""
    project = tmp_path / "p"
    shutil.copytree(LEGACY / "-work-resumed", project)
    f = project / f"{ORIGINAL}.jsonl"
    _edit_lines(f, b"assistant", lambda r: r.__setitem__("parentUuid", [1]))
    assert len(import_paths([project]).trace) == 6


def test_every_call_after_a_missing_line_is_counted(tmp_path: Path) -> None:
    """All calls whose context passes through a lost line are counted in the warning."""
    project = tmp_path / "p"
    shutil.copytree(LEGACY / "-work-resumed", project)
    f = project / f"{ORIGINAL}.jsonl"
    _edit_lines(f, b"user", lambda r: r.__setitem__("parentUuid", "gone-uuid"))
    messages = [str(i) for i in import_paths([f]).issues]
    assert messages == [f"{f}: 3 call(s) of agent 'main' continue a line that is missing "
                        "(parentUuid); their context starts after the gap"]


def test_source_order_does_not_matter(tmp_path: Path) -> None:
    """Naming a session's files in any order gives the same bytes (meta files included)."""
    from agentgraph import traceio

    project = tmp_path / "p"
    shutil.copytree(LEGACY / "-work-v21-subagents", project)
    sid = "65e28dea-468a-48a5-ab0a-3b8805d0b5d9"
    agent = project / sid / "subagents" / "agent-a4e91c07.jsonl"
    meta = agent.with_suffix(".meta.json")
    meta.write_bytes(orjson.dumps({**orjson.loads(meta.read_bytes()), "agentType": "Explore"}))
    forward = import_paths([project / f"{sid}.jsonl", agent])
    backward = import_paths([agent, project / f"{sid}.jsonl"])
    assert traceio.dumps(forward.trace) == traceio.dumps(backward.trace)
    assert {a.agent_id: a.agent_type for a in backward.trace.agents}["a4e91c07"] == "Explore"


def test_copies_of_a_session_in_two_trees(tmp_path: Path) -> None:
    """An orphan session dir in one tree and the whole session in another: read once, from the
    copy that has its session file, with one warning and no repeated lines."""
    a, b = tmp_path / "a" / "proj", tmp_path / "b" / "proj"
    shutil.copytree(LEGACY / "-work-v21-subagents", a)
    shutil.copytree(LEGACY / "-work-v21-subagents", b)
    sid = "65e28dea-468a-48a5-ab0a-3b8805d0b5d9"
    (a / f"{sid}.jsonl").unlink()
    result = import_paths([tmp_path / "a", tmp_path / "b"])
    assert len(result.trace) == 8
    assert [str(i) for i in result.issues] == []


def test_a_native_trace_named_twice_is_read_once(tmp_path: Path, project: Path) -> None:
    """Repeated sources of any format are read once."""
    out = tmp_path / "t.trace"
    assert main(["import", str(project), "-o", str(out)]) == 0
    assert len(import_paths([out, out]).trace) == 5
