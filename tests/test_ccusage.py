"""The legacy fixtures' totals three ways: EXPECTED.json, ccusage 18 and agentgraph's importer
(and ``agentgraph usage``: tokens per day and model, and cost, against ccusage's).

ccusage keeps the first line of each call, so it agrees with agentgraph on input and cache tokens
and reports less output (a partial count) wherever a call spans several lines.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agentgraph.model import EdgeKind, Hop, Trace
from agentgraph.usage import OUTPUT_NOTE, price_for, usage_report
from tests import ccusage

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "claude_legacy"
PROJECTS = FIXTURES / "projects"
EXPECTED: dict[str, Any] = json.loads((FIXTURES / "EXPECTED.json").read_text())
NAMES = sorted(EXPECTED["projects"])
API = ("api_input_tokens", "api_cache_read_tokens", "api_cache_creation_tokens")
COUNTS = ("sessions", "agents", "llm_hops", "tool_calls", *API, "output_tokens")
ALL = [*NAMES, None]  # None: the whole projects/ tree


def _expected(name: str | None) -> dict[str, Any]:
    want: dict[str, Any] = EXPECTED["overall"] if name is None else EXPECTED["projects"][name]
    return want


def _recount(root: Path) -> dict[str, int]:
    """Per-call totals straight from the lines: dedupe on message.id + requestId."""
    calls: dict[tuple[str, str], dict[str, Any]] = {}
    for path in sorted(root.rglob("*.jsonl")):
        for line in path.read_text().splitlines():
            rec = json.loads(line)
            if rec["type"] != "assistant":
                continue
            msg, usage = rec["message"], rec["message"]["usage"]
            call = calls.setdefault((msg["id"], rec["requestId"]),
                                    {"usage": usage, "first": usage["output_tokens"], "tools": set()})
            call["max"] = max(call.get("max", 0), usage["output_tokens"])
            call["tools"].update(b["id"] for b in msg["content"] if b["type"] == "tool_use")
    keys = {"api_input_tokens": "input_tokens", "api_cache_read_tokens": "cache_read_input_tokens",
            "api_cache_creation_tokens": "cache_creation_input_tokens"}
    out = {k: sum(c["usage"][v] for c in calls.values()) for k, v in keys.items()}
    return {**out, "llm_hops": len(calls),
            "tool_calls": sum(len(c["tools"]) for c in calls.values()),
            "output_tokens": sum(c["max"] for c in calls.values()),
            "output_tokens_first_line": sum(c["first"] for c in calls.values())}


@pytest.mark.parametrize("name", ALL)
def test_expected_matches_a_recount(name: str | None) -> None:
    """EXPECTED.json's hand-computed totals equal a recount of the fixture lines."""
    got = _recount(PROJECTS if name is None else PROJECTS / name)
    assert {k: _expected(name)[k] for k in got} == got
    assert got["output_tokens"] > got["output_tokens_first_line"]


def test_overall_is_the_sum_of_projects() -> None:
    """The overall line of EXPECTED.json adds up its project dirs."""
    keys = EXPECTED["overall"].keys()
    assert {k: sum(p[k] for p in EXPECTED["projects"].values()) for k in keys} == EXPECTED["overall"]


# --------------------------------------------------------------------------- ccusage


@pytest.fixture(scope="module")
def claude_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A temp CLAUDE_CONFIG_DIR holding a copy of the fixtures, ccusage installed.

    Fails when ccusage cannot be installed, unless ``AGENTGRAPH_SKIP_REALCLI=1`` (then skips).
    """
    if os.environ.get("AGENTGRAPH_SKIP_REALCLI") == "1":
        pytest.skip("AGENTGRAPH_SKIP_REALCLI=1: ccusage cross-checks skipped")
    try:
        ccusage.ensure_installed()
    except ccusage.CcusageUnavailable as exc:
        reason = str(exc)
    else:
        return ccusage.config_dir_with(PROJECTS, tmp_path_factory.mktemp("claude"))
    pytest.fail(f"ccusage unavailable: {reason}", pytrace=False)


@pytest.mark.parametrize("name", ALL)
def test_ccusage_agrees_on_input_and_cache(claude_dir: Path, name: str | None) -> None:
    """ccusage's input/cache totals are EXPECTED's; its output is the first lines' partial sum."""
    got, want = ccusage.daily_totals(claude_dir, project=name), _expected(name)
    assert (got.input_tokens, got.cache_read_tokens, got.cache_creation_tokens) == tuple(
        want[k] for k in API)
    assert got.output_tokens == want["output_tokens_first_line"] < want["output_tokens"]


def test_ccusage_session_id_overcounts(claude_dir: Path) -> None:
    """Recorded difference: ``session --id`` sums every line of one file (ccusage issue #994)."""
    diff = EXPECTED["ccusage"]["known_differences"][0]
    data = ccusage.run(claude_dir, diff["command"])
    assert data["totalTokens"] == diff["totalTokens"] > diff["correct_totalTokens"]


# --------------------------------------------------------------------------- agentgraph


def _import(root: Path) -> Trace:
    from agentgraph.sources import import_paths

    result = import_paths([root])
    assert not result.issues, [str(i) for i in result.issues]
    return result.trace


@pytest.mark.parametrize("name", ALL)
def test_import_matches_expected(name: str | None) -> None:
    """import_paths counts every call once, with its largest output_tokens."""
    summary = _import(PROJECTS if name is None else PROJECTS / name).summary()
    assert {k: summary[k] for k in COUNTS} == {k: _expected(name)[k] for k in COUNTS}


@pytest.mark.parametrize("name", ALL)
def test_import_agrees_with_ccusage(claude_dir: Path, name: str | None) -> None:
    """On the same files: equal input/cache totals, strictly more output than ccusage."""
    root = claude_dir / "projects"
    summary = _import(root if name is None else root / name).summary()
    cc = ccusage.daily_totals(claude_dir, project=name)
    assert tuple(summary[k] for k in API) == (
        cc.input_tokens, cc.cache_read_tokens, cc.cache_creation_tokens)
    assert summary["output_tokens"] > cc.output_tokens


def _edges(trace: Trace, kind: EdgeKind) -> list[tuple[str | None, str | None]]:
    hop = {h.hop_id: h for h in trace}
    return sorted((hop[e.src].request_id, hop[e.dst].request_id)
                  for e in trace.edges if e.kind == kind)


@pytest.mark.parametrize("name", NAMES)
def test_import_call_graph(name: str) -> None:
    """Spawn and join edges, sub-agent ids and hops per session/agent are as written."""
    want, trace = EXPECTED["projects"][name], _import(PROJECTS / name)
    for kind, key in ((EdgeKind.SPAWN, "spawn_edges"), (EdgeKind.JOIN, "join_edges")):
        assert _edges(trace, kind) == sorted(
            (e["src_request_id"], e["dst_request_id"]) for e in want[key])
    agent_of = {h.request_id: h.agent_id for h in trace}
    spawned = {a.spawn_tool_use_id: a for a in trace.agents if a.spawn_tool_use_id}
    for e in want["spawn_edges"]:
        agent = spawned[e["tool_use_id"]]
        assert agent_of[e["dst_request_id"]] == agent.agent_id
        assert agent.agent_id == (e["agent_id"] or agent.agent_id)
        assert agent.agent_type == e["agent_type"]
    assert dict(Counter(h.session_id for h in trace)) == want["hops_per_session"]
    assert sorted(Counter((h.session_id, h.agent_id) for h in trace).values()) == want[
        "hops_per_agent"]


def test_import_keeps_the_unspawned_warmup_agent() -> None:
    """The billed Warmup call is a hop of its own agent, with no spawn edge into it."""
    want = EXPECTED["projects"]["-work-v2-agentfiles"]
    trace = _import(PROJECTS / "-work-v2-agentfiles")
    warm = [h for h in trace if h.request_id in want["warmup_request_ids"]]
    assert [h.agent_id for h in warm] == want["warmup_agents"]
    assert not any(e.dst == warm[0].hop_id for e in trace.edges if e.kind == EdgeKind.SPAWN)


def test_import_counts_resumed_history_once_in_its_own_session() -> None:
    """Calls copied into the resumed file belong to the session that made them."""
    want = EXPECTED["projects"]["-work-resumed"]
    trace = _import(PROJECTS / "-work-resumed")
    copied = [h.session_id for h in trace if h.request_id in want["copied_request_ids"]]
    assert copied == [want["original_session_id"]] * len(want["copied_request_ids"])


def test_cli_import_then_inspect(tmp_path: Path) -> None:
    """``agentgraph import`` + ``inspect --json`` report EXPECTED's overall numbers."""
    script = Path(sys.executable).with_name("agentgraph")
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "agentgraph.cli"]
    out = tmp_path / "legacy.trace"
    subprocess.run([*exe, "import", str(PROJECTS), "-o", str(out)], check=True)
    shown = json.loads(subprocess.run([*exe, "inspect", str(out), "--json"], check=True,
                                      capture_output=True, text=True).stdout)
    summary = shown.get("summary", shown)
    assert {k: summary[k] for k in COUNTS} == {k: EXPECTED["overall"][k] for k in COUNTS}


# --------------------------------------------------------------------------- agentgraph usage


def _utc_day(hop: Hop) -> str:
    return datetime.fromtimestamp(hop.start_s, UTC).date().isoformat()


def _usage_per_day_and_model(trace: Trace) -> dict[tuple[str, str], dict[str, Any]]:
    days = sorted({_utc_day(h) for h in trace})
    return {(day, row["key"]): row for day in days
            for row in usage_report(Trace(tuple(h for h in trace if _utc_day(h) == day)), "model")["rows"]}


def _ccusage_per_day_and_model(claude_dir: Path) -> dict[tuple[str, str], dict[str, Any]]:
    data = ccusage.run(claude_dir, [*ccusage.DAILY, "--breakdown"])
    return {(d["date"], b["modelName"]): b for d in data["daily"] for b in d["modelBreakdowns"]}


def test_usage_agrees_with_ccusage_per_day_and_model(claude_dir: Path) -> None:
    """Per UTC day and model: input and cache tokens equal ccusage's, output never less, in all more."""
    ours = _usage_per_day_and_model(_import(claude_dir / "projects"))
    theirs = _ccusage_per_day_and_model(claude_dir)
    assert sorted(ours) == sorted(theirs)
    for key, cc in theirs.items():
        row = ours[key]
        assert (row["api_input_tokens"], row["api_cache_read_tokens"], row["api_cache_creation_tokens"]) == (
            cc["inputTokens"], cc["cacheReadTokens"], cc["cacheCreationTokens"]), key
        assert row["output_tokens"] >= cc["outputTokens"], key
    assert sum(r["output_tokens"] for r in ours.values()) > sum(c["outputTokens"] for c in theirs.values())


def test_list_prices_are_ccusages_bundled_prices(claude_dir: Path) -> None:
    """ccusage's cost of each day and model is our price of its tokens with every write at 1.25x."""
    for (_, model), cc in _ccusage_per_day_and_model(claude_dir).items():
        price = price_for(model)
        assert price is not None, model
        per_input = cc["inputTokens"] + 0.1 * cc["cacheReadTokens"] + 1.25 * cc["cacheCreationTokens"]
        want = (per_input * price.input_per_mtok + cc["outputTokens"] * price.output_per_mtok) / 1e6
        assert cc["cost"] == pytest.approx(want, rel=1e-12), model


def test_usage_cost_exceeds_ccusages_by_output_and_1h_writes(claude_dir: Path) -> None:
    """The cost gap is exactly the output ccusage misses plus 1-hour writes at 2x (ccusage: 1.25x)."""
    ours = _usage_per_day_and_model(_import(claude_dir / "projects"))
    theirs = _ccusage_per_day_and_model(claude_dir)
    gap = 0.0
    for key, cc in theirs.items():
        price = price_for(key[1])
        assert price is not None
        gap += ((ours[key]["output_tokens"] - cc["outputTokens"]) * price.output_per_mtok
                + ours[key]["cache_write_1h_tokens"] * 0.75 * price.input_per_mtok) / 1e6
    cc_total = ccusage.run(claude_dir, list(ccusage.DAILY))["totals"]["totalCost"]
    ours_total = usage_report(_import(claude_dir / "projects"))["total"]["cost_usd"]
    assert ours_total == pytest.approx(cc_total + gap, rel=1e-12)
    assert (round(ours_total, 4), round(cc_total, 4)) == (0.3902, 0.3493)


def test_cli_usage_agrees_with_ccusage_and_says_how_output_differs(claude_dir: Path) -> None:
    """``agentgraph usage --json`` on the same files: ccusage's input/cache, more output, the one-line note."""
    script = Path(sys.executable).with_name("agentgraph")
    exe = [str(script)] if script.exists() else [sys.executable, "-m", "agentgraph.cli"]
    proc = subprocess.run([*exe, "usage", str(claude_dir / "projects")], check=True, capture_output=True, text=True)
    assert proc.stdout.splitlines()[-1] == OUTPUT_NOTE and "ccusage 18" in OUTPUT_NOTE
    total = json.loads(subprocess.run([*exe, "usage", str(claude_dir / "projects"), "--json"], check=True,
                                      capture_output=True, text=True).stdout)["total"]
    cc = ccusage.daily_totals(claude_dir)
    assert tuple(total[k] for k in API) == (cc.input_tokens, cc.cache_read_tokens, cc.cache_creation_tokens)
    assert total["output_tokens"] == EXPECTED["overall"]["output_tokens"] > cc.output_tokens
