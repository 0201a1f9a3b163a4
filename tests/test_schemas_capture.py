"""Captured CLI tool schemas on plain transcripts (issue 14 point 5): capture, attach, report."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from agentgraph.capture import (
    Capture,
    attach_schemas,
    capture_schemas,
    load_captures,
    save_capture,
    session_versions,
)
from agentgraph.cli import main
from agentgraph.model import Hop, ToolCall, Trace
from agentgraph.schemas import strip_annotations
from tests.corpus import write_corpus

ROOT = Path(__file__).resolve().parents[1]
REPLAYS = ROOT / "replays"


@pytest.fixture(scope="module")
def capture_dir(claude_cli: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A cache dir holding one capture of the pinned CLI (``claude_cli`` resolves the real cache first)."""
    root = tmp_path_factory.mktemp("cache")
    save_capture(capture_schemas(claude_cli), root)
    return root


@pytest.fixture
def cache(capture_dir: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("AGENTGRAPH_CACHE", str(capture_dir))
    monkeypatch.delenv("AGENTGRAPH_SCHEMAS")  # the suite's empty folder (conftest) would win
    return capture_dir


def _validate_json(paths: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, Any]:
    assert main(["validate", *paths, "--backend", "fastpath", "--repeats", "1", "--json"]) == 0
    out: dict[str, Any] = json.loads(capsys.readouterr().out)
    return out


def _offered_coverage(report: dict[str, Any], offered: set[str]) -> tuple[int, int]:
    """(calls of offered tools that got a schema and a verdict, calls of offered tools with an input)."""
    names = {n for n in report["tools"] if n in offered or (n == "Task" and "Agent" in offered)}
    calls = sum(report["tools"][n]["calls"] for n in names) - report["schemas"]["redacted"]
    return sum(report["tools"][n]["with_schema"] for n in names), calls


@pytest.mark.realcli
def test_capture_stores_stripped_schemas_keyed_by_version(capture_dir: Path) -> None:
    """One file per CLI version, prose stripped, the -p tools including Glob and Grep."""
    (capture,) = load_captures(capture_dir)
    assert capture.cli_version == "2.1.328"
    assert (capture_dir / "schemas" / "claude-code-2.1.328.json").is_file()
    assert {"Agent", "Bash", "Edit", "Glob", "Grep", "Read", "Write"} <= set(capture.tools)
    assert all(strip_annotations(s) == s for s in capture.tools.values())


@pytest.mark.realcli
def test_replays_offered_tools_get_a_schema_and_verdict(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """On replays/, every call of an offered tool that kept its input gets a schema and a verdict."""
    report = _validate_json([str(REPLAYS)], capsys)
    offered = set(load_captures(cache)[0].tools)
    got, calls = _offered_coverage(report, offered)
    assert got >= 0.9 * calls, (got, calls)
    assert report["schemas"]["by_version"] == {"2.1.328": report["schemas"]["captured"]}
    assert report["schemas"]["aliased"] == {"Task -> Agent": 2}


@pytest.mark.realcli
def test_generated_corpus_offered_tools_get_a_schema(cache: Path, tmp_path: Path,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """On a generated 1.0.x-2.1.3xx corpus, >= 90 % of calls of offered tools get a schema; others by name."""
    write_corpus(tmp_path / "projects", sessions=40, seed=3)
    report = _validate_json([str(tmp_path / "projects")], capsys)
    got, calls = _offered_coverage(report, set(load_captures(cache)[0].tools))
    assert calls > 300 and got >= 0.9 * calls, (got, calls)
    assert "TodoWrite" in report["schemas"]["no_schema"]


@pytest.mark.realcli
def test_validate_prints_what_the_capture_gave(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The text report names the captured version, the aliases used and the tools left without."""
    assert main(["validate", str(REPLAYS), "--backend", "fastpath", "--repeats", "1"]) == 0
    out = capsys.readouterr().out
    assert "got a schema from a captured CLI: 2.1.328" in out and "Task -> Agent (2)" in out
    assert "33 redacted input(s)" in out


@pytest.mark.realcli
def test_import_attaches_only_with_a_capture(cache: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Without a capture (or with --schemas off) the import is byte-identical to the bundled trace."""
    bundled = (ROOT / "schedulers" / "data" / "replays.trace").read_bytes()
    assert main(["import", str(REPLAYS), "-o", str(tmp_path / "off.trace"), "--schemas", "off"]) == 0
    assert main(["import", str(REPLAYS), "-o", str(tmp_path / "auto.trace")]) == 0
    monkeypatch.setenv("AGENTGRAPH_CACHE", str(tmp_path / "empty"))
    assert main(["import", str(REPLAYS), "-o", str(tmp_path / "none.trace")]) == 0
    assert (tmp_path / "off.trace").read_bytes() == bundled == (tmp_path / "none.trace").read_bytes()
    assert (tmp_path / "auto.trace").read_bytes() != bundled


@pytest.mark.realcli
def test_schemas_list(cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """`schemas list --json` shows each captured version and its tools."""
    assert main(["schemas", "list", "--json"]) == 0
    (entry,) = json.loads(capsys.readouterr().out)
    assert entry["cli_version"] == "2.1.328" and "Agent" in entry["tools"]


def _trace(*names: str, session: str = "s") -> Trace:
    calls = tuple(ToolCall(f"t{i}", n, '{"prompt": "x"}') for i, n in enumerate(names))
    return Trace((Hop("h", session, "main", 0, "m", 0.0, 1.0, 10, 1, 0, (), tool_calls=calls),))


def test_mcp_and_unknown_tools_are_counted_by_name() -> None:
    """MCP and unoffered tools stay without a schema, by name; Task reaches Agent's schema."""
    agent = {"type": "object", "required": ["prompt"]}
    trace, report = attach_schemas(_trace("Task", "mcp__gh__pr", "LS"), [Capture("2.1.328", "", {"Agent": agent})])
    assert report.no_schema == {"mcp__gh__pr": 1, "LS": 1} and report.aliased == {"Task -> Agent": 1}
    sid = trace.hop_list[0].tool_calls[0].schema_id
    assert sid is not None and trace.schemas[sid] == agent


def test_nearest_version_is_used(tmp_path: Path) -> None:
    """A session gets the capture of its version, else the newest older one, else the oldest newer one."""
    (tmp_path / "a.jsonl").write_text(json.dumps({"type": "user", "sessionId": "s", "version": "2.0.55"}) + "\n")
    captures = [Capture(v, "", {"Bash": {"type": "object", "title": v}}) for v in ("1.0.88", "2.0.30", "2.1.328")]
    _, report = attach_schemas(_trace("Bash"), captures, session_versions([tmp_path]))
    assert report.by_version == {"2.0.30": 1}


def test_no_capture_returns_the_same_trace() -> None:
    """Without captures nothing changes (imports stay byte-identical)."""
    trace = _trace("Bash")
    assert attach_schemas(trace, [])[0] is trace
