"""Claude Code 2.1.3xx transcripts: exact requests, hops, usage, tools and sub-agent edges."""

from __future__ import annotations

from pathlib import Path

import pytest

from agentgraph.model import EdgeKind
from agentgraph.sources import import_paths
from tests.cc_synth import EXPECTED_PROMPTS, SID, SUB, T0, write_demo_session


@pytest.fixture
def projects(tmp_path: Path) -> Path:
    write_demo_session(tmp_path / "projects")
    return tmp_path / "projects"


def test_every_hop_is_sized_to_the_api_total(projects: Path) -> None:
    """prompt_tokens equals input + cache read + cache write of each call, per agent."""
    result = import_paths([projects])
    assert result.issues == ()
    got: dict[str, list[int]] = {}
    for hop in result.trace:
        got.setdefault(hop.agent_id, []).append(hop.prompt_tokens)
    assert got == EXPECTED_PROMPTS


def test_shared_prefix_is_the_previous_request(projects: Path) -> None:
    """Each request extends the previous one, so it shares all of its tokens."""
    hops = {h.hop_id: h for h in import_paths([projects]).trace}
    main = [hops[f"{SID}/main/{i}"] for i in range(3)]
    assert [h.shared_prefix_tokens for h in main] == [0, 3000, 3300]
    assert [h.new_tokens for h in main] == [3000, 300, 600]
    assert main[1].hash_ids[: 3000 // 64] == main[0].hash_ids[: 3000 // 64]
    assert main[1].hash_ids[3000 // 64] != main[0].hash_ids[3000 // 64]  # partial vs full
    assert [len(h.hash_ids) for h in main] == [47, 52, 61]


def test_one_call_counts_once_with_its_largest_output(projects: Path) -> None:
    """Two assistant lines of one call make one hop with output 40, not 7 or 47."""
    first = next(iter(import_paths([projects]).trace))
    assert (first.output_tokens, [t.name for t in first.tool_calls]) == (40, ["Bash"])


def test_tool_calls_carry_their_execution_time(projects: Path) -> None:
    """tool_use emitted at the assistant line, finished at the tool_result line."""
    hop = next(iter(import_paths([projects]).trace))
    (tool,) = hop.tool_calls
    assert tool.tool_use_id == "toolu_m0"
    assert tool.input_json == '{"command":"ls"}'
    assert tool.started_s == pytest.approx(T0 + 1.1)
    assert tool.ended_s == pytest.approx(T0 + 3.1)
    assert tool.duration_s == pytest.approx(2.0)
    assert tool.is_error is False


def test_sub_agent_is_linked_by_spawn_and_join(projects: Path) -> None:
    """Agent tool_use → first sub-agent hop (spawn); last sub-agent hop → the hop after (join)."""
    trace = import_paths([projects]).trace
    kinds = sorted((e.kind.value, e.src.split("/", 1)[1], e.dst.split("/", 1)[1]) for e in trace.edges)
    assert kinds == sorted([
        ("join", f"{SUB}/1", "main/2"),
        ("sequence", "main/0", "main/1"),
        ("sequence", "main/1", "main/2"),
        ("sequence", f"{SUB}/0", f"{SUB}/1"),
        ("spawn", "main/1", f"{SUB}/0"),
    ])
    sub = next(a for a in trace.agents if a.agent_id == SUB)
    assert (sub.agent_type, sub.parent_agent_id, sub.spawn_tool_use_id) == (
        "general-purpose", "main", "toolu_m1")
    spawn = next(e for e in trace.edges if e.kind is EdgeKind.SPAWN)
    assert spawn.wait_s == pytest.approx(4.4 - 4.2)


def test_summary_totals(projects: Path) -> None:
    """inspect --json numbers: counts and API usage totals."""
    s = import_paths([projects]).trace.summary()
    assert {k: s[k] for k in ("sessions", "agents", "llm_hops", "tool_calls", "prompt_tokens",
                              "output_tokens", "api_input_tokens", "api_cache_read_tokens",
                              "api_cache_creation_tokens")} == {
        "sessions": 1, "agents": 2, "llm_hops": 5, "tool_calls": 3,
        "prompt_tokens": 3000 + 3300 + 3900 + 2000 + 2150, "output_tokens": 40 + 30 + 5 + 20 + 10,
        "api_input_tokens": 3000 + 300 + 600 + 2000 + 150,
        "api_cache_read_tokens": 3000 + 3300 + 2000, "api_cache_creation_tokens": 0,
    }


@pytest.mark.parametrize("which", ["file", "session_dir", "project_dir", "tree"])
def test_file_session_dir_project_or_tree_import_alike(projects: Path, which: str) -> None:
    """A session file, its directory, its project or the whole tree give the same trace."""
    project = projects / "-work-demo"
    source = {"file": project / f"{SID}.jsonl", "session_dir": project / SID,
              "project_dir": project, "tree": projects}[which]
    assert import_paths([source]).trace == import_paths([projects]).trace


def test_block_size_is_configurable_and_coarsening_exact(projects: Path) -> None:
    """Importing at 512 equals importing at 64 and coarsening by 8."""
    at64 = import_paths([projects], block_size=64).trace
    at512 = import_paths([projects], block_size=512).trace
    assert at64.coarsened(8) == at512
    assert [len(h.hash_ids) for h in at512][:1] == [6]  # ceil(3000 / 512)


def test_hops_frame_golden(projects: Path) -> None:
    """trace.hops() has the declared schema and these exact rows."""
    import polars as pl
    from polars.testing import assert_frame_equal

    from agentgraph.frames import HOPS_SCHEMA

    frame = import_paths([projects]).trace.hops()
    assert frame.schema == pl.Schema(HOPS_SCHEMA)
    got = frame.select("agent_id", "index", "prompt_tokens", "shared_prefix_tokens", "new_tokens",
                       "output_tokens", "api_cache_read_tokens", "tools", "tool_wait_s")
    expected = pl.DataFrame(
        {
            "agent_id": ["main", "main", SUB, SUB, "main"],
            "index": [0, 1, 0, 1, 2],
            "prompt_tokens": [3000, 3300, 2000, 2150, 3900],
            "shared_prefix_tokens": [0, 3000, 0, 2000, 3300],
            "new_tokens": [3000, 300, 2000, 150, 600],
            "output_tokens": [40, 30, 20, 10, 5],
            "api_cache_read_tokens": [0, 3000, 0, 2000, 3300],
            "tools": [["Bash"], ["Agent"], ["Bash"], [], []],
            "tool_wait_s": [2.0, 3.8, 1.0, 0.0, 0.0],
        },
        schema={k: HOPS_SCHEMA[k] for k in got.columns},
    )
    assert_frame_equal(got, expected, abs_tol=1e-6)


def test_tool_calls_frame_and_graph(projects: Path) -> None:
    """tool_calls() and graph() carry every tool call and every hop and edge."""
    import polars as pl

    from agentgraph.frames import TOOL_CALLS_SCHEMA

    trace = import_paths([projects]).trace
    tools = trace.tool_calls()
    assert tools.schema == pl.Schema(TOOL_CALLS_SCHEMA)
    assert tools["name"].to_list() == ["Bash", "Agent", "Bash"]
    assert tools["duration_s"].round(6).to_list() == [2.0, 3.8, 1.0]
    g = trace.graph()
    assert (g.number_of_nodes(), g.number_of_edges()) == (5, 5)
    assert g.nodes[f"{SID}/main/1"]["tools"] == ["Agent"]
    assert g.edges[f"{SID}/main/1", f"{SID}/{SUB}/0"]["kind"] == "spawn"


LEGACY = Path(__file__).resolve().parents[1] / "fixtures" / "claude_legacy" / "projects"


@pytest.mark.parametrize("source", ["current", "legacy"])
def test_edges_go_forward_and_makespan_fits_the_session(projects: Path, source: str) -> None:
    """No edge ends before it starts, and each session's makespan is at most its time span."""
    from agentgraph.graph import session_critical_paths

    trace = import_paths([projects if source == "current" else LEGACY]).trace
    hops = {h.hop_id: h for h in trace}
    for e in trace.edges:
        assert hops[e.src].end_s <= hops[e.dst].start_s + 1e-6, e
        assert e.wait_s == pytest.approx(hops[e.dst].start_s - hops[e.src].end_s, abs=1e-6)
    for sid, (_, makespan) in session_critical_paths(trace).items():
        mine = [h for h in trace if h.session_id == sid]
        span = max(h.end_s for h in mine) - min(h.start_s for h in mine)
        assert makespan <= span + 1e-6
