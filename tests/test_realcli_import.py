"""Sessions of the real Claude Code CLI (2.1.328) against the scripted upstream import exactly.

The sessions are produced here, at test time, and never committed: they carry the CLI's own
system prompt and tool descriptions.
"""

from __future__ import annotations

import json
from itertools import pairwise
from pathlib import Path
from typing import Any

import pytest

from agentgraph.model import EdgeKind, Trace
from agentgraph.sources import import_paths
from tests.realcli import ClaudeRun

pytestmark = pytest.mark.realcli
SCRIPTS = Path(__file__).resolve().parents[1] / "fixtures" / "scripts"


@pytest.fixture(scope="module")
def run(claude_cli: Path, tmp_path_factory: pytest.TempPathFactory) -> ClaudeRun:
    from tests.realcli import run_claude

    script = json.loads((SCRIPTS / "tools_and_subagent.json").read_text())
    return run_claude(claude_cli, script, "Write notes, then have a helper count the files.",
                      tmp_path_factory.mktemp("cli"))


@pytest.fixture(scope="module")
def trace(run: ClaudeRun) -> Trace:
    result = import_paths([run.projects_dir])
    assert result.issues == ()
    return result.trace


def _prompt_total(usage: dict[str, Any]) -> int:
    return int(usage["input_tokens"] + usage["cache_read_input_tokens"]
               + usage["cache_creation_input_tokens"])


def test_hop_count_and_agents_follow_the_script(run: ClaudeRun, trace: Trace) -> None:
    """4 main turns + 2 sub-agent turns = 6 hops; the upstream served exactly those 6 calls."""
    assert len(run.log) == 6
    by_agent: dict[str, int] = {}
    for hop in trace:
        by_agent[hop.agent_id] = by_agent.get(hop.agent_id, 0) + 1
    sub_id = run.subagent_files[0].stem.removeprefix("agent-")
    assert by_agent == {"main": 4, sub_id: 2}
    sub = next(a for a in trace.agents if a.agent_id == sub_id)
    assert (sub.parent_agent_id, sub.spawn_tool_use_id, sub.agent_type) == (
        "main", "toolu_main_02_0", "general-purpose")


def test_edges_follow_the_script(run: ClaudeRun, trace: Trace) -> None:
    """Sequence edges per agent; spawn from the Agent call; join into the hop after its result."""
    sub_id = run.subagent_files[0].stem.removeprefix("agent-")
    edges = sorted((e.kind.value, e.src.split("/", 1)[1], e.dst.split("/", 1)[1]) for e in trace.edges)
    assert edges == sorted([
        ("sequence", "main/0", "main/1"), ("sequence", "main/1", "main/2"),
        ("sequence", "main/2", "main/3"), ("sequence", f"{sub_id}/0", f"{sub_id}/1"),
        ("spawn", "main/2", f"{sub_id}/0"), ("join", f"{sub_id}/1", "main/3"),
    ])
    assert all(e.wait_s >= 0 for e in trace.edges)
    assert sum(e.kind is EdgeKind.SPAWN for e in trace.edges) == 1


def test_tool_calls_are_the_scripted_ones(run: ClaudeRun, trace: Trace) -> None:
    """Names, inputs (as canonical JSON) and the error of the missing-file Read."""
    calls = [(h.agent_id == "main", t.name, json.loads(t.input_json), t.is_error)
             for h in trace for t in h.tool_calls]
    work = str(run.work_dir)
    assert calls == [
        (True, "Bash", {"command": "echo one", "description": "Print one"}, False),
        (True, "Write", {"file_path": f"{work}/notes.txt",
                         "content": "agentgraph notes\nfirst line written by the scripted session\n"}, False),
        (True, "Read", {"file_path": f"{work}/missing-notes.txt"}, True),
        (True, "Agent", {"description": "Count working files",
                         "prompt": "Count the files in the working directory",
                         "subagent_type": "general-purpose", "run_in_background": False}, False),
        (False, "Bash", {"command": "ls -1 | wc -l", "description": "Count files"}, False),
    ]
    assert all(t.duration_s is not None for h in trace for t in h.tool_calls)


def test_hops_carry_the_usage_the_upstream_reported(run: ClaudeRun, trace: Trace) -> None:
    """Per agent, in order: usage fields as served, and prompt_tokens == the reported total."""
    sub_id = run.subagent_files[0].stem.removeprefix("agent-")
    for agent, name in (("main", "main"), (sub_id, "counter")):
        served = [r.usage for r in run.log if r.agent == name]
        hops = [h for h in trace if h.agent_id == agent]
        assert [h.prompt_tokens for h in hops] == [_prompt_total(u) for u in served]
        assert [(h.usage.cache_read_tokens, h.usage.cache_creation_tokens, h.output_tokens)
                for h in hops if h.usage] == [
            (u["cache_read_input_tokens"], u["cache_creation_input_tokens"], u["output_tokens"])
            for u in served]


def test_shared_prefix_matches_the_cache_hit(trace: Trace) -> None:
    """The CLI's last breakpoint is its last message, so each call reads exactly the previous
    request from the emulator's cache: the prefix the importer finds shared must equal it."""
    main = [h for h in trace if h.agent_id == "main"]
    assert [h.shared_prefix_tokens for h in main[1:]] == [
        h.usage.cache_read_tokens for h in main[1:] if h.usage]
    for a, b in pairwise(main):
        full = a.prompt_tokens // trace.block_size
        assert b.hash_ids[:full] == a.hash_ids[:full]


def test_cache_reads_grow_along_the_session(trace: Trace) -> None:
    """Every later main call reads more from the cache than the one before."""
    reads = [h.usage.cache_read_tokens for h in trace if h.agent_id == "main" and h.usage]
    assert reads[0] == 0 or reads[0] < reads[1]
    assert all(x < y for x, y in pairwise(reads[1:]))


@pytest.fixture(scope="module")
def long_run(claude_cli: Path, tmp_path_factory: pytest.TempPathFactory) -> ClaudeRun:
    from tests.realcli import run_claude

    script = json.loads((SCRIPTS / "long_loop.json").read_text())
    return run_claude(claude_cli, script, "Work through the twelve steps.",
                      tmp_path_factory.mktemp("long"))


def test_long_single_agent_loop(long_run: ClaudeRun) -> None:
    """13 calls, one per scripted turn; each request extends the previous one exactly."""
    result = import_paths([long_run.projects_dir])
    assert result.issues == ()
    hops = list(result.trace)
    script = json.loads((SCRIPTS / "long_loop.json").read_text())["agents"]["main"]["turns"]
    assert [[t.name for t in h.tool_calls] for h in hops] == [
        [u["name"] for u in turn.get("tool_use", [])] for turn in script]
    assert [h.prompt_tokens for h in hops] == [_prompt_total(r.usage) for r in long_run.log]
    assert [h.shared_prefix_tokens for h in hops[1:]] == [h.prompt_tokens for h in hops[:-1]]
    assert len(result.trace.edges) == 12
    assert all(e.kind is EdgeKind.SEQUENCE for e in result.trace.edges)


def test_background_sub_agent_joins_after_it_finishes(claude_cli: Path,
                                                      tmp_path_factory: pytest.TempPathFactory) -> None:
    """The CLI's default: the Agent call returns at once and the parent goes on; the sub-agent's
    join goes into the first parent hop that starts after the sub-agent's last hop."""
    from tests.realcli import run_claude

    script = json.loads((SCRIPTS / "background_subagent.json").read_text())
    run = run_claude(claude_cli, script, "Count files in the background.",
                     tmp_path_factory.mktemp("bg"))
    result = import_paths([run.projects_dir])
    assert result.issues == ()
    trace = result.trace
    hops = {h.hop_id: h for h in trace}
    sub = run.subagent_files[0].stem.removeprefix("agent-")
    spawn = next(e for e in trace.edges if e.kind is EdgeKind.SPAWN)
    join = next(e for e in trace.edges if e.kind is EdgeKind.JOIN)
    assert (spawn.src.split("/", 1)[1], spawn.dst.split("/", 1)[1]) == ("main/0", f"{sub}/0")
    assert join.src.split("/", 1)[1] == f"{sub}/1"
    parent_after = [h for h in trace if h.agent_id == "main" and h.start_s >= hops[join.src].end_s]
    assert join.dst == parent_after[0].hop_id
    assert all(hops[e.src].end_s <= hops[e.dst].start_s + 1e-6 for e in trace.edges)
