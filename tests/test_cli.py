"""The agentgraph command line: import, inspect, graph, exit codes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import orjson
import pytest

import agentgraph
from agentgraph.cli import main
from agentgraph.sources import import_paths
from tests.cc_synth import SID, SUB, write_demo_session


@pytest.fixture
def trace_file(tmp_path: Path) -> Path:
    write_demo_session(tmp_path / "projects")
    out = tmp_path / "demo.trace"
    assert main(["import", str(tmp_path / "projects"), "-o", str(out)]) == 0
    return out


def test_import_prints_counts(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """import says how many sessions, hops and tool calls it wrote, and where."""
    write_demo_session(tmp_path / "p")
    out = tmp_path / "t.trace"
    assert main(["import", str(tmp_path / "p"), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"imported 1 session(s), 5 hops, 3 tool calls -> {out}\n"
    assert len(agentgraph.load(out)) == 5


def test_inspect_json_has_the_contract_keys(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """inspect --json prints one object with the documented totals."""
    capsys.readouterr()
    assert main(["inspect", str(trace_file), "--json"]) == 0
    obj = orjson.loads(capsys.readouterr().out)
    assert {k: obj[k] for k in ("sessions", "agents", "llm_hops", "tool_calls", "prompt_tokens",
                                "output_tokens", "api_input_tokens", "api_cache_read_tokens",
                                "api_cache_creation_tokens")} == {
        "sessions": 1, "agents": 2, "llm_hops": 5, "tool_calls": 3, "prompt_tokens": 14350,
        "output_tokens": 105, "api_input_tokens": 6050, "api_cache_read_tokens": 8300,
        "api_cache_creation_tokens": 0}
    session = obj["session_list"][SID]
    assert session["critical_path"] == [f"{SID}/main/0", f"{SID}/main/1", f"{SID}/{SUB}/0",
                                        f"{SID}/{SUB}/1", f"{SID}/main/2"]
    assert session["makespan_s"] == pytest.approx(9.0, abs=1e-6)  # 0.1 s .. 9.1 s


def test_inspect_table_golden(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The per-session table, exactly."""
    capsys.readouterr()
    assert main(["inspect", str(trace_file)]) == 0
    assert capsys.readouterr().out == (
        f"session {SID}: 5 hops, 2 agent(s), 3 tool calls, prompt 14350 tok, makespan 9.00 s\n"
        "  hop  agent                        prompt  shared   new  cache_rd  cache_wr  output  tools  tool_wait_s\n"
        "    0  main                           3000       0  3000         0         0      40  Bash          2.00\n"
        "    1  main                           3300    3000   300      3000         0      30  Agent         3.80\n"
        "    0  a000000000(general-purpose)    2000       0  2000         0         0      20  Bash          1.00\n"
        "    1  a000000000(general-purpose)    2150    2000   150      2000         0      10  -             0.00\n"
        "    2  main                           3900    3300   600      3300         0       5  -             0.00\n"
        "\n")


@pytest.mark.parametrize("fmt", ["dot", "mermaid", "json"])
def test_graph_marks_the_critical_path(trace_file: Path, fmt: str,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """Each graph format carries all 5 hops, the 5 edges, and marks the critical path."""
    capsys.readouterr()
    assert main(["graph", str(trace_file), "--format", fmt]) == 0
    out = capsys.readouterr().out
    if fmt == "json":
        obj = orjson.loads(out)
        assert len(obj["nodes"]) == 5 and len(obj["edges"]) == 5
        assert sum(n["critical"] for n in obj["nodes"]) == 5
        assert [e["kind"] for e in obj["edges"] if not e["critical"]] == ["sequence"]
    elif fmt == "dot":
        assert out.startswith("digraph agentgraph {")
        assert out.count("\" -> \"") == 5
        assert out.count("color=red") == 9  # 5 nodes + 4 edges of the critical path
        assert 'label="spawn 0.20s", style=dashed, color=red' in out
    else:
        assert out.startswith("flowchart TD")
        assert "  h1 -.->|spawn 0.20s| h2\n" in out  # ids follow hop order: main/1 -> sub/0
        assert "  h3 -.->|join 0.60s| h4\n" in out
        assert "class h0,h1,h2,h3,h4 critical;" in out


def test_usage_errors_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Bad options and missing files exit 2 with a message, never a traceback."""
    assert main(["import", "x", "-o", str(tmp_path / "o"), "--format", "nope"]) == 2
    assert main(["inspect", str(tmp_path / "missing.trace")]) == 2
    assert main(["import", str(tmp_path), "-o", str(tmp_path / "o"), "--block-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err
    assert f"warning: {tmp_path / 'missing.trace'}: no such file or directory" in err
    assert "expected a positive integer, got 0" in err
    assert "Traceback" not in err


def test_help_and_version_exit_0(capsys: pytest.CaptureFixture[str]) -> None:
    """Every command has --help; --version names the installed version."""
    for command in ("import", "inspect", "graph"):
        assert main([command, "--help"]) == 0
    assert "usage: agentgraph import" in capsys.readouterr().out
    assert main(["--version"]) == 0
    assert capsys.readouterr().out == "agentgraph 0.1.0\n"


def test_console_script_runs(trace_file: Path) -> None:
    """The installed `agentgraph` entry point works as a real subprocess."""
    exe = Path(sys.executable).parent / "agentgraph"
    proc = subprocess.run([str(exe), "inspect", str(trace_file), "--json"], capture_output=True,
                          check=False, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert orjson.loads(proc.stdout)["llm_hops"] == 5


def test_import_to_agentic_mooncake_round_trips(tmp_path: Path) -> None:
    """--to mooncake writes agentic Mooncake v2 that imports back to the same hops and edges."""
    write_demo_session(tmp_path / "p")
    native, mooncake = tmp_path / "t.trace", tmp_path / "t.jsonl"
    assert main(["import", str(tmp_path / "p"), "-o", str(native)]) == 0
    assert main(["import", str(tmp_path / "p"), "-o", str(mooncake), "--to", "mooncake"]) == 0
    assert orjson.loads(mooncake.read_bytes().splitlines()[0])["schema"] == "dynamo.agentic_mooncake"
    a, b = agentgraph.load(native), import_paths([mooncake]).trace
    assert [(h.prompt_tokens, h.output_tokens, h.hash_ids) for h in a] == [
        (h.prompt_tokens, h.output_tokens, h.hash_ids) for h in b]
    assert sorted(e.kind.value for e in a.edges) == sorted(e.kind.value for e in b.edges)
