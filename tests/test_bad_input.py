"""Damaged transcripts: a warning naming file and line, and everything else still imported."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

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
        f"{f}:{n}: truncated last line (no newline, incomplete JSON); skipped"]
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
    ]


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
    assert f"agentgraph: error: no usable hop found in {bad}" in err
    assert not out.exists()


MUTATIONS = ("truncate", "flip", "drop_line", "dup_line", "garbage", "swap_lines")


def _mutate(data: bytes, rng: random.Random) -> bytes:
    kind = rng.choice(MUTATIONS)
    if not data:
        return b"\x00garbage"
    lines = data.splitlines(keepends=True)
    i = rng.randrange(len(lines))
    if kind == "truncate":
        return data[: rng.randrange(len(data))]
    if kind == "flip":
        pos = rng.randrange(len(data))
        return data[:pos] + bytes([rng.randrange(256)]) + data[pos + 1 :]
    if kind == "drop_line":
        del lines[i]
    elif kind == "dup_line":
        lines.insert(i, lines[i])
    elif kind == "garbage":
        lines.insert(i, bytes(rng.randrange(256) for _ in range(rng.randrange(1, 60))) + b"\n")
    else:
        j = rng.randrange(len(lines))
        lines[i], lines[j] = lines[j], lines[i]
    return b"".join(lines)


@pytest.mark.parametrize("seed", range(60))
def test_fuzzed_copies_never_crash(project: Path, seed: int) -> None:
    """Random corruption of the files: no exception, never more hops, every issue names a file."""
    rng = random.Random(seed)
    files = sorted(p for p in project.rglob("*") if p.is_file())
    for _ in range(rng.randrange(1, 4)):
        f = rng.choice(files)
        f.write_bytes(_mutate(f.read_bytes(), rng))
    result = import_paths([project])
    assert len(result.trace) <= 5
    for issue in result.issues:
        assert issue.path.startswith(str(project))


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
    assert [str(i) for i in result.issues][0] == (
        f"{_main_file(project)}: session file missing; importing its sub-agents only")
