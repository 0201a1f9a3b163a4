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

REPLAYS = Path(__file__).resolve().parents[1] / "replays"


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


def test_inspect_sessions_golden(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """By default, one line per session, exactly."""
    capsys.readouterr()
    assert main(["inspect", str(trace_file)]) == 0
    assert capsys.readouterr().out == (
        "  session                               hops  agents  tool_calls  prompt  makespan_s\n"
        f"  {SID}     5       2           3   14350        9.00\n"
        "1 session(s); --session ID shows one hop by hop\n")


def test_inspect_table_golden(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --session, that session's hop table, exactly."""
    capsys.readouterr()
    assert main(["inspect", str(trace_file), "--session", SID[:8]]) == 0
    assert capsys.readouterr().out == (
        f"session {SID}: 5 hops, 2 agent(s), 3 tool calls, prompt 14350 tok, makespan 9.00 s\n"
        "  hop  agent                      prompt  shared   new  cache_rd  cache_wr  output  tools  tool_wait_s\n"
        "    0  main                         3000       0  3000         0         0      40  Bash          2.00\n"
        "    1  main                         3300    3000   300      3000         0      30  Agent         3.80\n"
        "    0  a0000000(general-purpose)    2000       0  2000         0         0      20  Bash          1.00\n"
        "    1  a0000000(general-purpose)    2150    2000   150      2000         0      10  -             0.00\n"
        "    2  main                         3900    3300   600      3300         0       5  -             0.00\n"
        "\n")


def test_agent_names_agree_in_inspect_graph_and_frames(trace_file: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """inspect, graph (DOT, Mermaid, JSON) and trace.hops() name each agent the same way."""
    trace = agentgraph.load(trace_file)
    assert trace.agent_names() == {(SID, "main"): "main", (SID, SUB): "a0000000(general-purpose)"}
    assert trace.hops()["agent_name"].to_list() == ["main", "main", "a0000000(general-purpose)",
                                                    "a0000000(general-purpose)", "main"]
    capsys.readouterr()
    for fmt in ("dot", "mermaid"):
        assert main(["graph", str(trace_file), "--format", fmt]) == 0
        assert "a0000000(general-purpose)#1 2150 tok" in capsys.readouterr().out
    assert main(["graph", str(trace_file), "--format", "json"]) == 0
    nodes = orjson.loads(capsys.readouterr().out)["nodes"]
    assert [n["agent_name"] for n in nodes] == trace.hops()["agent_name"].to_list()


def test_agent_names_are_unique_prefixes() -> None:
    """A sub-agent's name is the shortest id prefix of at least 8 characters no other agent of its
    session shares, plus its type; other sessions do not lengthen it."""
    from agentgraph.model import Agent, Hop, Trace

    def hop(sid: str, agent: str) -> Hop:
        return Hop(f"{sid}/{agent}", sid, agent, 0, "m", 0, 1, 10, 1, 0, ())

    trace = Trace((hop("s", "main"), hop("s", "abcdefgh1234"), hop("s", "abcdefgh1299"), hop("s", "b1"),
                   hop("t", "abcdefgh1234x")), agents=(Agent("s", "b1", "Explore"),))
    assert trace.agent_names() == {
        ("s", "main"): "main", ("s", "abcdefgh1234"): "abcdefgh123", ("s", "abcdefgh1299"): "abcdefgh129",
        ("s", "b1"): "b1(Explore)", ("t", "abcdefgh1234x"): "abcdefgh"}


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
    """Bad options exit 2 with a message, never a traceback."""
    assert main(["import", "x", "-o", str(tmp_path / "o"), "--format", "nope"]) == 2
    assert main(["import", str(tmp_path), "-o", str(tmp_path / "o"), "--block-size", "0"]) == 2
    err = capsys.readouterr().err
    assert "invalid choice: 'nope'" in err
    assert "expected a positive integer, got 0" in err
    assert "Traceback" not in err


IMPORTING = {  # every command that imports its sources, with the options that keep it small
    "import": ["-o", "{tmp}/out.trace"],
    "inspect": [],
    "graph": [],
    "validate": ["--repeats", "1"],
    "replay": [],
    "compare": ["--strategies", "round_robin"],
    "sweep": ["--strategies", "round_robin", "--workers", "1"],
    "demo": ["--strategies", "round_robin", "--copies", "1", "--no-progress", "-o", "{tmp}/report"],
}


def _run(command: str, sources: list[str], tmp_path: Path, *extra: str) -> int:
    from schedulers.cli import main as full_main  # replay, compare, sweep and demo live there

    options = [o.replace("{tmp}", str(tmp_path)) for o in IMPORTING[command]]
    return full_main([command, *sources, *options, *extra])


@pytest.mark.parametrize("command", IMPORTING)
def test_a_missing_source_is_no_such_file_or_directory(command: str, tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A source that does not exist is one error line naming it as given, exit 2, before any work:
    nothing is read from the other sources and no output is written."""
    missing = str(tmp_path / "missing.trace")
    assert _run(command, [str(REPLAYS), missing], tmp_path) == 2
    assert capsys.readouterr() == ("", f"error: {missing}: No such file or directory\n")
    assert list(tmp_path.iterdir()) == []


def test_several_missing_sources_are_named_in_one_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Several missing sources: the first as an OSError names it, the others after it, one line."""
    a, b, c = (str(tmp_path / n) for n in ("a.jsonl", "b", "c"))
    assert main(["inspect", a, str(REPLAYS), b, c]) == 2
    assert capsys.readouterr().err == f"error: {a}: No such file or directory (also missing: {b}, {c})\n"


def test_a_missing_source_is_file_not_found_in_python(tmp_path: Path) -> None:
    """``import_paths`` raises FileNotFoundError (an OSError with errno, strerror, filename)."""
    with pytest.raises(FileNotFoundError) as caught:
        import_paths([REPLAYS, tmp_path / "nope"])
    assert (caught.value.errno, caught.value.strerror, caught.value.filename) == (
        2, "No such file or directory", str(tmp_path / "nope"))


# --------------------------------------------------------------------------- warnings

def _damaged(tmp_path: Path) -> Path:
    """A Mooncake file with 5 good rows and 12 problems of 4 kinds (7 invalid JSON lines, one array,
    3 rows without hash_ids, a truncated last line)."""
    row = '{{"timestamp": {}, "input_length": 600, "output_length": 5, "hash_ids": [1, 2]}}'
    lines = [row.format(0), *["{not json"] * 7, "[1]", *['{"timestamp": 1, "input_length": 600}'] * 3,
             *(row.format(t) for t in range(1, 5)), '{"trunc']
    path = tmp_path / "damaged.jsonl"
    path.write_text("\n".join(lines))
    return path


def _grouped(f: Path) -> str:
    return (f"warning: 7 × invalid JSON line (e.g. {f}:2: invalid JSON; skipped)\n"
            f"warning: {f}:9: expected a JSON object, got an array\n"
            f"warning: 3 × Mooncake row skipped (e.g. {f}:10: missing field 'hash_ids'; row skipped)\n"
            f"warning: {f}:17: truncated last line (no newline, incomplete JSON); skipped\n")


def _every(f: Path) -> str:
    return "".join([*(f"{f}:{n}: invalid JSON; skipped\n" for n in range(2, 9)),
                    f"{f}:9: expected a JSON object, got an array\n",
                    *(f"{f}:{n}: missing field 'hash_ids'; row skipped\n" for n in (10, 11, 12)),
                    f"{f}:17: truncated last line (no newline, incomplete JSON); skipped\n"])


@pytest.mark.parametrize("command", IMPORTING)
def test_warnings_are_grouped_by_kind_and_listed_in_full_with_warnings_file(
        command: str, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """stderr: one line per kind, in order of first appearance (a kind met once as itself, else
    its count and first example); --warnings FILE: every warning, one per line."""
    f, listing = _damaged(tmp_path), tmp_path / "warnings.txt"
    assert _run(command, [str(f)], tmp_path, "--warnings", str(listing)) == 0
    assert capsys.readouterr().err.startswith(_grouped(f))  # demo and sweep add their timing line
    assert listing.read_text() == _every(f)


def test_folded_warnings_point_to_the_warnings_option(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Without --warnings, a last line says how many there are and where to see each; import
    --json still lists every issue."""
    f = _damaged(tmp_path)
    assert main(["import", str(f), "-o", str(tmp_path / "t.trace"), "--json"]) == 0
    out, err = capsys.readouterr()
    assert err == _grouped(f) + "warning: 12 warnings in all; --warnings FILE lists each\n"
    obj = orjson.loads(out)
    assert (obj["warnings"], "".join(f"{i}\n" for i in obj["issues"])) == (12, _every(f))


def test_warnings_file_is_written_when_nothing_was_imported(tmp_path: Path,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """No usable hop is still exit 2, and the listing says why; no warning leaves an empty file."""
    bad, listing = tmp_path / "bad.jsonl", tmp_path / "w.txt"
    bad.write_text("{not json\n" * 3)
    assert main(["inspect", str(bad), "--warnings", str(listing)]) == 2
    assert capsys.readouterr().err == (f"warning: 3 × invalid JSON line (e.g. {bad}:1: invalid JSON; skipped)\n"
                                       f"error: no usable hop found in {bad}\n")
    assert listing.read_text() == "".join(f"{bad}:{n}: invalid JSON; skipped\n" for n in (1, 2, 3))
    assert main(["inspect", str(REPLAYS), "--warnings", str(listing), "--json"]) == 0
    assert listing.read_bytes() == b""


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
