"""``agentgraph gate``: thresholds, verdicts, the three outputs and the exit codes (issue #6, point 3)."""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import schedulers
from agentgraph.errors import TraceFormatError, UsageError
from agentgraph.model import Trace
from schedulers.cli import main
from schedulers.gate import (
    DEFAULT_MAX_DECREASE,
    DEFAULT_MAX_INCREASE,
    GATE_SCHEMA,
    NULLABLE,
    Bound,
    Limit,
    Verdict,
    as_summaries,
    gate,
    load_summaries,
    thresholds,
)

ROOT = Path(__file__).resolve().parents[1]
REPLAYS = str(ROOT / "replays")
METRICS = {"reprefill_tokens": 1000, "hit_rate": 0.8, "ttft_p99_s": 0.5, "session_e2e_p50_s": 4.0,
           "session_e2e_p99_s": 10.0, "cost_per_session_usd": 0.2, "wall_s": 1.0}


def summary(strategy: str, **metrics: Any) -> dict[str, Any]:
    """A replay summary with the workload keys and the default-gated metrics (overridable)."""
    return {"strategy": strategy, "seed": 0, "cluster": "default", "nodes": 8, "sessions": 9, "hops": 72,
            **METRICS, **metrics}


def without(doc: dict[str, Any], *keys: str) -> dict[str, Any]:
    """``doc`` minus ``keys``: a summary that lacks metrics (an older version, a hand-edited file)."""
    return {k: v for k, v in doc.items() if k not in keys}


def compare_doc(*summaries: dict[str, Any]) -> dict[str, Any]:
    return {"cluster": {"name": "default"}, "strategies": {s["strategy"]: s for s in summaries}}


BASE = compare_doc(summary("a"), summary("b"), summary("c"))
CUR = compare_doc(summary("a", reprefill_tokens=900, hit_rate=0.78, ttft_p99_s=None, session_e2e_p99_s=10.5,
                          cost_per_session_usd=0.25),
                  summary("b", hops=80), summary("d"))
"""a: improved, regression, n/a, ok, exactly at the limit, regression; b: unchanged on another workload;
c: missing; d: new."""


def write(path: Path, doc: Any) -> str:
    path.write_bytes(orjson.dumps(doc, option=orjson.OPT_INDENT_2))
    return str(path)


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture
def files(tmp_path: Path) -> tuple[str, str]:
    return write(tmp_path / "base.json", BASE), write(tmp_path / "cur.json", CUR)


# --------------------------------------------------------------------------- outputs, exactly

TEXT = """\
strategy  metric                baseline  current  change  change%  limit  verdict
a         reprefill_tokens          1000      900    -100  -10.00%    +5%  improved
a         hit_rate                   0.8     0.78   -0.02   -2.50%  -0.01  REGRESSION
a         ttft_p99_s                 0.5        -       -        -   +10%  n/a
a         session_e2e_p50_s            4        4      +0   +0.00%    +5%  ok
a         session_e2e_p99_s           10     10.5    +0.5   +5.00%    +5%  ok
a         cost_per_session_usd       0.2     0.25   +0.05  +25.00%    +5%  REGRESSION
b         reprefill_tokens          1000     1000      +0   +0.00%    +5%  ok
b         hit_rate                   0.8      0.8      +0   +0.00%  -0.01  ok
b         ttft_p99_s                 0.5      0.5      +0   +0.00%   +10%  ok
b         session_e2e_p50_s            4        4      +0   +0.00%    +5%  ok
b         session_e2e_p99_s           10       10      +0   +0.00%    +5%  ok
b         cost_per_session_usd       0.2      0.2      +0   +0.00%    +5%  ok
missing: c is in the baseline but not in the current summary
new: d is not in the baseline (not gated)
warning: b: different workload or cluster (hops 72 -> 80)
gate: 2 regression(s) in 12 checks, 1 baseline strategy(ies) missing
"""

MARKDOWN = """\
### ❌ agentgraph gate: 2 regression(s) in 12 checks, 1 baseline strategy(ies) missing

| strategy | metric | baseline | current | change | change% | limit | verdict |
|---|---|---:|---:|---:|---:|---:|---|
| a | `reprefill_tokens` | 1000 | 900 | -100 | -10.00% | +5% | improved |
| a | `hit_rate` | 0.8 | 0.78 | -0.02 | -2.50% | -0.01 | ❌ **REGRESSION** |
| a | `ttft_p99_s` | 0.5 | - | - | - | +10% | n/a |
| a | `session_e2e_p50_s` | 4 | 4 | +0 | +0.00% | +5% | ok |
| a | `session_e2e_p99_s` | 10 | 10.5 | +0.5 | +5.00% | +5% | ok |
| a | `cost_per_session_usd` | 0.2 | 0.25 | +0.05 | +25.00% | +5% | ❌ **REGRESSION** |
| b | `reprefill_tokens` | 1000 | 1000 | +0 | +0.00% | +5% | ok |
| b | `hit_rate` | 0.8 | 0.8 | +0 | +0.00% | -0.01 | ok |
| b | `ttft_p99_s` | 0.5 | 0.5 | +0 | +0.00% | +10% | ok |
| b | `session_e2e_p50_s` | 4 | 4 | +0 | +0.00% | +5% | ok |
| b | `session_e2e_p99_s` | 10 | 10 | +0 | +0.00% | +5% | ok |
| b | `cost_per_session_usd` | 0.2 | 0.2 | +0 | +0.00% | +5% | ok |

- missing: c is in the baseline but not in the current summary
- new: d is not in the baseline (not gated)
- warning: b: different workload or cluster (hops 72 -> 80)
"""

JUNIT = """\
<?xml version="1.0" encoding="utf-8"?>
<testsuites name="agentgraph gate" tests="13" failures="3" skipped="1">
  <testsuite name="a" tests="6" failures="2" errors="0" skipped="1">
    <testcase classname="agentgraph.gate.a" name="reprefill_tokens (+5%)" />
    <testcase classname="agentgraph.gate.a" name="hit_rate (-0.01)">
      <failure message="a: hit_rate 0.8 -&gt; 0.78 (-0.02, -2.50%); limit -0.01, allowed &gt;= 0.79" \
type="regression" />
    </testcase>
    <testcase classname="agentgraph.gate.a" name="ttft_p99_s (+10%)">
      <skipped message="ttft_p99_s is null in the baseline or the current summary" />
    </testcase>
    <testcase classname="agentgraph.gate.a" name="session_e2e_p50_s (+5%)" />
    <testcase classname="agentgraph.gate.a" name="session_e2e_p99_s (+5%)" />
    <testcase classname="agentgraph.gate.a" name="cost_per_session_usd (+5%)">
      <failure message="a: cost_per_session_usd 0.2 -&gt; 0.25 (+0.05, +25.00%); limit +5%, allowed &lt;= 0.21" \
type="regression" />
    </testcase>
  </testsuite>
  <testsuite name="b" tests="6" failures="0" errors="0" skipped="0">
    <testcase classname="agentgraph.gate.b" name="reprefill_tokens (+5%)" />
    <testcase classname="agentgraph.gate.b" name="hit_rate (-0.01)" />
    <testcase classname="agentgraph.gate.b" name="ttft_p99_s (+10%)" />
    <testcase classname="agentgraph.gate.b" name="session_e2e_p50_s (+5%)" />
    <testcase classname="agentgraph.gate.b" name="session_e2e_p99_s (+5%)" />
    <testcase classname="agentgraph.gate.b" name="cost_per_session_usd (+5%)" />
  </testsuite>
  <testsuite name="c" tests="1" failures="1" errors="0" skipped="0">
    <testcase classname="agentgraph.gate.c" name="present">
      <failure message="c is in the baseline but not in the current summary" type="missing" />
    </testcase>
  </testsuite>
</testsuites>
"""


def test_text_table_golden(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """The diff table: one row per strategy and gated metric, notes, then the summary line; exit 1."""
    code, out, err = run(capsys, "gate", "--baseline", files[0], "--current", files[1])
    assert (code, out, err) == (1, TEXT, "")


def test_markdown_golden(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """--markdown prints the same table as GitHub-flavoured Markdown under a heading."""
    code, out, _ = run(capsys, "gate", "--baseline", files[0], "--current", files[1], "--markdown")
    assert (code, out) == (1, MARKDOWN)


def test_junit_golden(files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--junit FILE also writes JUnit XML (one suite per strategy, a failure per regression); stdout keeps the table."""
    junit = tmp_path / "reports" / "gate.xml"
    code, out, _ = run(capsys, "gate", "--baseline", files[0], "--current", files[1], "--junit", str(junit))
    assert (code, out) == (1, TEXT)
    assert junit.read_text(encoding="utf-8") == JUNIT


def test_junit_to_an_unwritable_place_is_one_error_line(files: tuple[str, str], tmp_path: Path,
                                                       capsys: pytest.CaptureFixture[str]) -> None:
    """The table still prints; then exit 2 with the path and the reason, not a raw OS error."""
    (tmp_path / "afile").write_text("x")
    target = tmp_path / "afile" / "gate.xml"
    code, out, err = run(capsys, "gate", "--baseline", files[0], "--current", files[1], "--junit", str(target))
    assert (code, out) == (2, TEXT)
    assert err == f"error: {target}: Not a directory\n"


def test_json_carries_every_field(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """--json: one object with the verdict, the regression count, and every check with all its fields."""
    code, out, _ = run(capsys, "gate", "--baseline", files[0], "--current", files[1], "--json")
    doc = json.loads(out)
    assert code == 1
    assert {k: v for k, v in doc.items() if k != "checks"} == {
        "ok": False, "regressions": 2, "missing_strategies": ["c"], "new_strategies": ["d"],
        "warnings": ["b: different workload or cluster (hops 72 -> 80)"]}
    assert len(doc["checks"]) == 12
    assert doc["checks"][5] == {
        "strategy": "a", "metric": "cost_per_session_usd", "bound": "max_increase", "limit": "5%",
        "baseline": 0.2, "current": 0.25, "change": pytest.approx(0.05), "change_pct": pytest.approx(25.0),
        "allowed": pytest.approx(0.21), "verdict": "REGRESSION"}
    assert doc["checks"][2]["verdict"] == "n/a" and doc["checks"][2]["change"] is None


def test_output_is_deterministic(files: tuple[str, str], tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The same inputs give the same bytes, JUnit file included."""
    outs = []
    for name in ("1.xml", "2.xml"):
        outs.append(run(capsys, "gate", "--baseline", files[0], "--current", files[1], "--junit",
                        str(tmp_path / name), "--markdown"))
    assert outs[0] == outs[1]
    assert (tmp_path / "1.xml").read_bytes() == (tmp_path / "2.xml").read_bytes()


def test_ok_run_says_ok(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """No regression and no missing strategy: exit 0 and "gate: ok, M checks" (improvements are fine)."""
    base = write(tmp_path / "b.json", summary("a"))
    cur = write(tmp_path / "c.json", summary("a", hit_rate=0.9, session_e2e_p99_s=9.0))
    code, out, _ = run(capsys, "gate", "--baseline", base, "--current", cur)
    assert code == 0
    assert out.splitlines()[-1] == "gate: ok, 6 checks"
    code, out, _ = run(capsys, "gate", "--baseline", base, "--current", cur, "--markdown")
    assert (code, out.splitlines()[0]) == (0, "### ✅ agentgraph gate: ok, 6 checks")


def test_frame_has_the_declared_schema() -> None:
    """to_frame(): one row per check, GATE_SCHEMA columns, nulls where a side is null."""
    report = gate(summary("a"), summary("a", ttft_p99_s=None, hit_rate=0.75), defaults=False,
                  max_decrease={"hit_rate": 0.01}, max_increase={"ttft_p99_s": "10%"})
    expected = pl.DataFrame([
        ("a", "hit_rate", "max_decrease", "0.01", 0.8, 0.75, 0.75 - 0.8, 100 * (0.75 - 0.8) / 0.8, 0.79, "REGRESSION"),
        ("a", "ttft_p99_s", "max_increase", "10%", 0.5, None, None, None, None, "n/a"),
    ], schema=GATE_SCHEMA, orient="row")
    assert_frame_equal(report.to_frame(), expected)


# --------------------------------------------------------------------------- inputs


def test_the_three_input_shapes_read_the_same(tmp_path: Path) -> None:
    """replay --json, compare --json, summary.json (file or its directory) and {name: summary} agree."""
    s = summary("a")
    (tmp_path / "run").mkdir()
    shapes = {
        "replay.json": s,
        "compare.json": {"cluster": {"name": "default"}, "strategies": {"a": s}},
        "run/summary.json": {"summary": s, "cluster": {"name": "default"}},
    }
    for name, doc in shapes.items():
        assert load_summaries(write(tmp_path / name, doc)) == {"a": s}, name
    assert load_summaries(tmp_path / "run") == {"a": s}
    assert as_summaries({"a": s}) == {"a": s}


def test_real_replay_outputs_are_accepted(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The real replay --json, replay -o DIR and compare --json outputs all gate against each other."""
    assert run(capsys, "replay", REPLAYS, "-o", str(tmp_path / "out"))[0] == 0
    code, out, _ = run(capsys, "compare", REPLAYS, "--strategies", "topology_aware,random", "--json")
    assert code == 0
    cmp = write(tmp_path / "cmp.json", json.loads(out))
    code, out, _ = run(capsys, "gate", "--baseline", str(tmp_path / "out"), "--current", cmp)
    assert code == 0
    assert out.splitlines()[-1] == "gate: ok, 6 checks"
    assert all(line.startswith("topology_aware ") for line in out.splitlines()[1:-2])
    assert out.splitlines()[-2] == "new: random is not in the baseline (not gated)"


def test_stdin_is_dash(tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """--current - reads the summary from stdin (compare --json | agentgraph gate ...)."""
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(orjson.dumps(summary("a", hit_rate=0.7)))))
    code, out, _ = run(capsys, "gate", "--baseline", write(tmp_path / "b.json", summary("a")), "--current", "-")
    assert code == 1 and "a         hit_rate" in out and out.endswith("gate: 1 regression(s) in 6 checks\n")


@pytest.mark.parametrize(("doc", "message"), [
    ([1], "expected a JSON object, got list"),
    ({"foo": 1}, "not a replay summary: expected the output of `agentgraph replay --json`, "
                 "`agentgraph compare --json` or a summary.json"),
    ({"cluster": {}, "strategies": {}}, "no strategy summary in it"),
    ({"strategy": 3}, '"strategy" is 3, expected a name'),
    ({"strategies": {"a": [1]}}, "strategy 'a': expected a summary object, got list"),
    ({"strategy": "a", "hit_rate": "0.8"}, "strategy 'a': hit_rate is '0.8', expected a number or null"),
    ({"strategy": "a", "hit_rate": True}, "strategy 'a': hit_rate is True, expected a number or null"),
])
def test_unknown_shapes_are_refused(doc: Any, message: str) -> None:
    """JSON that is not one of the three shapes, or a metric that is not a number, names the file."""
    with pytest.raises(TraceFormatError) as exc:
        as_summaries(doc, "x.json")
    assert str(exc.value) == f"x.json: {message}"


# --------------------------------------------------------------------------- thresholds


@pytest.mark.parametrize(("text", "limit", "slack_at_20"), [
    ("5%", Limit(5.0, True), 1.0),
    ("0.01", Limit(0.01, False), 0.01),
    (" 2.5 % ", Limit(2.5, True), 0.5),
    ("0", Limit(0.0, False), 0.0),
    ("1e-3", Limit(0.001, False), 0.001),
])
def test_limit_parsing(text: str, limit: Limit, slack_at_20: float) -> None:
    """A limit ending in % is relative to the baseline, any other is absolute."""
    parsed = Limit.parse(text, "--max-increase")
    assert parsed == limit
    assert parsed.slack(20.0) == pytest.approx(slack_at_20)


@pytest.mark.parametrize("text", ["", "%", "abc", "-1", "-5%", "5%%", "inf", "nan", "5 percent"])
def test_malformed_limits_are_refused(text: str) -> None:
    """Negative, non-finite or non-numeric limits are usage errors naming the option."""
    with pytest.raises(UsageError, match=r"^--max-increase: malformed limit "):
        Limit.parse(text, "--max-increase")


def test_defaults_never_gate_wall_s() -> None:
    """The defaults watch re-prefill, tail latency, money and hit rate, never the machine-dependent wall_s."""
    limits = {(m, b.value): str(v) for (m, b), v in thresholds().items()}
    assert limits == {
        ("reprefill_tokens", "max_increase"): "5%", ("hit_rate", "max_decrease"): "0.01",
        ("ttft_p99_s", "max_increase"): "10%", ("session_e2e_p50_s", "max_increase"): "5%",
        ("session_e2e_p99_s", "max_increase"): "5%", ("cost_per_session_usd", "max_increase"): "5%"}
    assert "wall_s" not in DEFAULT_MAX_INCREASE and "wall_s" not in DEFAULT_MAX_DECREASE
    assert gate(summary("a"), summary("a", wall_s=1000.0)).ok


def test_a_metric_named_on_the_command_line_replaces_its_defaults() -> None:
    """--max-increase hit_rate=... drops hit_rate's default max-decrease; other defaults stay."""
    limits = thresholds({"hit_rate": "1%"})
    assert (("hit_rate", Bound.MAX_INCREASE) in limits, ("hit_rate", Bound.MAX_DECREASE) in limits) == (True, False)
    assert limits[("session_e2e_p99_s", Bound.MAX_INCREASE)] == Limit(5.0, True)
    assert thresholds(max_decrease={"hit_rate": "2%"})[("hit_rate", Bound.MAX_DECREASE)] == Limit(2.0, True)


def test_off_drops_a_default_and_no_defaults_drops_all() -> None:
    """METRIC=off removes the metric's checks; defaults=False keeps only what was given."""
    assert ("ttft_p99_s", Bound.MAX_INCREASE) not in thresholds({"ttft_p99_s": "off"})
    assert len(thresholds({"ttft_p99_s": "off"})) == 5
    assert thresholds({"wall_s": "50%"}, defaults=False) == {("wall_s", Bound.MAX_INCREASE): Limit(50.0, True)}


def test_cli_thresholds_override_and_last_wins(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Through the CLI: an override loosens a default; a repeated metric takes its last limit; --no-defaults."""
    base = write(tmp_path / "b.json", summary("a"))
    cur = write(tmp_path / "c.json", summary("a", session_e2e_p99_s=11.0, hit_rate=0.7))
    code, out, _ = run(capsys, "gate", "--baseline", base, "--current", cur)
    assert code == 1 and out.endswith("gate: 2 regression(s) in 6 checks\n")
    code, out, _ = run(capsys, "gate", "--baseline", base, "--current", cur, "--max-increase",
                       "session_e2e_p99_s=1%", "--max-increase", "session_e2e_p99_s=10%",
                       "--max-decrease", "hit_rate=0.1")
    assert code == 0 and out.endswith("gate: ok, 6 checks\n")
    code, out, _ = run(capsys, "gate", "--baseline", base, "--current", cur, "--no-defaults",
                       "--max-increase", "session_e2e_p99_s=0.5")
    assert code == 1 and out.splitlines()[1].split() == [
        "a", "session_e2e_p99_s", "10", "11", "+1", "+10.00%", "+0.5", "REGRESSION"]
    assert out.endswith("gate: 1 regression(s) in 1 checks\n")


# --------------------------------------------------------------------------- verdicts


@pytest.mark.parametrize(("bound", "limit", "base", "at", "beyond"), [
    (Bound.MAX_INCREASE, "5%", 10.0, 10.5, 10.5000001),
    (Bound.MAX_INCREASE, "0.1", 0.7, 0.8, 0.8000001),  # 0.7 + 0.1 = 0.7999999999999999 in floats
    (Bound.MAX_DECREASE, "0.01", 0.8, 0.79, 0.7899999),
    (Bound.MAX_DECREASE, "10%", 0.3, 0.27, 0.2699999),
    (Bound.MAX_INCREASE, "5%", 1000, 1050, 1051),
])
def test_exactly_at_the_limit_passes(bound: Bound, limit: str, base: float, at: float, beyond: float) -> None:
    """A value exactly at the limit is allowed (float rounding aside); any step beyond it is a regression."""
    given = {"max_mean_load": limit}
    up, down = (given, None) if bound is Bound.MAX_INCREASE else (None, given)
    verdicts = [gate(summary("a", max_mean_load=base), summary("a", max_mean_load=v), defaults=False, max_increase=up,
                     max_decrease=down).checks[0].verdict for v in (at, beyond)]
    assert verdicts == [Verdict.OK, Verdict.REGRESSION]


def test_improvement_and_unchanged() -> None:
    """Moving in the good direction is "improved"; equal (or equal up to float rounding) is "ok"."""
    def verdict(cur: float) -> Verdict:
        return gate(summary("a"), summary("a", session_e2e_p99_s=cur), defaults=False,
                    max_increase={"session_e2e_p99_s": "5%"}).checks[0].verdict
    assert [verdict(v) for v in (9.0, 10.0, 10.000000000000002, 10.2)] == [
        Verdict.IMPROVED, Verdict.OK, Verdict.OK, Verdict.OK]


def test_zero_baseline_with_a_relative_limit_allows_no_increase() -> None:
    """x % of nothing is nothing: from a 0 baseline any increase fails a relative limit; an absolute one has slack."""
    def check(cur: int, limit: str) -> tuple[Verdict, float | None]:
        c = gate(summary("a", reprefill_tokens=0), summary("a", reprefill_tokens=cur), defaults=False,
                 max_increase={"reprefill_tokens": limit}).checks[0]
        return c.verdict, c.change_pct
    assert check(0, "5%") == (Verdict.OK, 0.0)
    assert check(1, "5%") == (Verdict.REGRESSION, None)
    assert check(64, "64") == (Verdict.OK, None)
    assert check(65, "64") == (Verdict.REGRESSION, None)


def test_a_null_percentile_is_na_not_a_failure() -> None:
    """A percentile null on either side (nothing was measured) is n/a: reported, never a regression."""
    for base, cur in ((None, 3.0), (0.5, None), (None, None)):
        report = gate(summary("a", ttft_p99_s=base), summary("a", ttft_p99_s=cur), defaults=False,
                      max_increase={"ttft_p99_s": "5%"}, max_decrease={"hit_rate": 0.01})
        assert [(c.metric, c.verdict) for c in report.checks] == [("hit_rate", Verdict.OK), ("ttft_p99_s", Verdict.NA)]
        assert report.ok and report.summary_line() == "gate: ok, 2 checks"


def test_an_empty_replay_writes_nulls_only_where_the_gate_allows_them() -> None:
    """A replay over nothing writes null exactly for the NULLABLE percentiles; it gates against itself as n/a."""
    empty = schedulers.replay(Trace(()), schedulers.DEFAULT_CLUSTER, "round_robin").summary
    assert {k for k, v in empty.items() if v is None} == set(NULLABLE)
    report = gate(empty, empty)
    assert {c.metric: c.verdict.value for c in report.checks} == {
        "reprefill_tokens": "ok", "hit_rate": "ok", "ttft_p99_s": "n/a", "session_e2e_p50_s": "n/a",
        "session_e2e_p99_s": "n/a", "cost_per_session_usd": "ok"}
    assert report.summary_line() == "gate: ok, 6 checks"


def test_absent_metrics_that_are_not_gated_do_not_matter() -> None:
    """Only a gated metric must be present: without ttft_p99_s and wall_s, ttft_p99_s=off gates the other five."""
    report = gate(without(summary("a"), "ttft_p99_s", "wall_s"), summary("a"), max_increase={"ttft_p99_s": "off"})
    assert report.summary_line() == "gate: ok, 5 checks"


def test_missing_strategy_fails_and_new_one_does_not() -> None:
    """A baseline strategy absent from the current file fails the gate; an extra current one is only reported."""
    report = gate(compare_doc(summary("a"), summary("b")), compare_doc(summary("a"), summary("z")))
    assert (report.missing, report.new, report.regressions, report.ok) == (("b",), ("z",), (), False)
    assert report.summary_line() == "gate: 0 regression(s) in 6 checks, 1 baseline strategy(ies) missing"
    only_new = gate(compare_doc(summary("a")), compare_doc(summary("a"), summary("z")))
    assert (only_new.new, only_new.ok) == (("z",), True)


def test_two_single_summaries_compare_across_names() -> None:
    """One summary on each side: compared whatever their strategies (an A/B), labelled base->current."""
    report = gate(summary("topology_aware"), summary("longest_prefix", hit_rate=0.5))
    assert {c.strategy for c in report.checks} == {"topology_aware->longest_prefix"}
    assert [c.metric for c in report.regressions] == ["hit_rate"]


def test_strategies_option_restricts_the_gate(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """--strategies b gates only b (c's absence no longer matters); an unknown name is a usage error."""
    code, out, _ = run(capsys, "gate", "--baseline", files[0], "--current", files[1], "--strategies", "b")
    assert code == 0 and out.endswith("gate: ok, 6 checks\n")
    assert {line.split()[0] for line in out.splitlines()[1:7]} == {"b"}


# --------------------------------------------------------------------------- exit 2, one line


def test_bad_input_exits_2_with_one_line(tmp_path: Path, files: tuple[str, str],
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """Missing file, invalid JSON (file:line and column), unknown shape, unknown metric, malformed limit."""
    bad = tmp_path / "bad.json"
    bad.write_text('{\n  "strategy": "a",\n  oops\n}\n')
    odd = write(tmp_path / "odd.json", {"rows": []})
    b, c = files
    cases = [
        (["--baseline", str(tmp_path / "nope.json"), "--current", c],
         f"{tmp_path / 'nope.json'}: No such file or directory"),
        (["--baseline", b, "--current", str(bad)],
         f"{bad}:3: invalid JSON at column 3: unexpected character, expected a string key"),
        (["--baseline", odd, "--current", c], f"{odd}: not a replay summary: expected the output of "
         "`agentgraph replay --json`, `agentgraph compare --json` or a summary.json"),
        (["--baseline", b, "--current", c, "--max-increase", "p99=5%"], "--max-increase: unknown metric 'p99'; one of: "
         "prompt_tokens, cached_tokens, transferred_tokens, reprefill_tokens, cold_tokens, output_tokens, hit_rate, "
         "ttft_p50_s, ttft_p90_s, ttft_p99_s, hop_latency_p50_s, hop_latency_p90_s, hop_latency_p99_s, "
         "session_e2e_p50_s, session_e2e_p90_s, session_e2e_p99_s, max_mean_load, busy_fraction_mean, "
         "busy_fraction_max, evicted_blocks, cost_usd, cost_per_session_usd, makespan_s, wall_s"),
        (["--baseline", b, "--current", c, "--max-decrease", "hit_rate=1pt"], "--max-decrease hit_rate=1pt: malformed "
         "limit '1pt'; expected a number >= 0 (absolute, e.g. 0.01), a percentage (relative to the baseline, e.g. 5%) "
         "or off"),
        (["--baseline", b, "--current", c, "--max-increase", "ttft_p99_s"],
         "--max-increase: expected METRIC=LIMIT (e.g. session_e2e_p99_s=5%), got 'ttft_p99_s'"),
        (["--baseline", b, "--current", c, "--no-defaults"],
         "no thresholds: with --no-defaults give --max-increase or --max-decrease"),
        (["--baseline", b, "--current", c, "--strategies", "zz"],
         "--strategies: 'zz' is not in the baseline (it has: a, b, c)"),
    ]
    for argv, message in cases:
        assert run(capsys, "gate", *argv) == (2, "", f"error: {message}\n"), argv


def test_usage_errors_exit_2(files: tuple[str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """argparse usage errors (a required option missing, --json with --markdown) also exit 2."""
    assert run(capsys, "gate", "--baseline", files[0])[0] == 2
    assert run(capsys, "gate", "--baseline", files[0], "--current", files[1], "--json", "--markdown")[0] == 2


# --------------------------------------------------------------------------- what the gate cannot check

MISSING = "; --allow-missing skips them"
DEFAULT_GATED = "reprefill_tokens, hit_rate, ttft_p99_s, session_e2e_p50_s, session_e2e_p99_s, cost_per_session_usd"


@pytest.mark.parametrize(("base", "cur", "argv", "message"), [
    pytest.param(without(summary("a"), "hit_rate"), summary("a"), [],
                 "{b}: strategy 'a': gated metric(s) missing: hit_rate" + MISSING, id="missing-in-baseline"),
    pytest.param(summary("a"), without(summary("a"), "ttft_p99_s", "cost_per_session_usd"), [],
                 "{c}: strategy 'a': gated metric(s) missing: ttft_p99_s, cost_per_session_usd" + MISSING,
                 id="missing-in-current"),
    pytest.param(compare_doc(summary("a"), without(summary("b"), "hit_rate")),
                 compare_doc(without(summary("a"), "ttft_p99_s"), without(summary("b"), "hit_rate")), [],
                 "{c}: strategy 'a': gated metric(s) missing: ttft_p99_s (2 more summary(ies) lack gated metrics too)"
                 + MISSING, id="missing-in-several"),
    pytest.param(without(summary("x"), "session_e2e_p99_s"), summary("y"), [],
                 "{b}: strategy 'x': gated metric(s) missing: session_e2e_p99_s" + MISSING, id="missing-in-an-a/b"),
    pytest.param({"strategy": "a"}, summary("a"), [],
                 "{b}: strategy 'a': gated metric(s) missing: " + DEFAULT_GATED + MISSING,
                 id="baseline-without-metrics"),
    pytest.param(compare_doc(summary("a")), {"strategies": {"a": {}}}, [],
                 "{c}: strategy 'a': gated metric(s) missing: " + DEFAULT_GATED + MISSING, id="empty-summary"),
    pytest.param({}, summary("a"), [], "{b}: not a replay summary: expected the output of `agentgraph replay --json`, "
                 "`agentgraph compare --json` or a summary.json", id="empty-object"),
    pytest.param(without(summary("a"), "wall_s"), summary("a"), ["--no-defaults", "--max-increase", "wall_s=50%"],
                 "{b}: strategy 'a': gated metric(s) missing: wall_s" + MISSING, id="missing-named-metric"),
    pytest.param(summary("a"), summary("a", ttft_p99_s=-0.5), [],
                 "{c}: strategy 'a': ttft_p99_s is -0.5, expected a finite number >= 0", id="negative-latency"),
    pytest.param(summary("a", reprefill_tokens=-1), summary("a"), [],
                 "{b}: strategy 'a': reprefill_tokens is -1, expected a finite number >= 0", id="negative-tokens"),
    pytest.param(summary("a"), summary("a", cost_usd=-0.01), [],
                 "{c}: strategy 'a': cost_usd is -0.01, expected a finite number >= 0", id="negative-ungated-cost"),
    pytest.param(summary("a"), summary("a", hit_rate=1.5), [],
                 "{c}: strategy 'a': hit_rate is 1.5, expected a number in [0, 1]", id="hit-rate-1.5"),
    pytest.param(summary("a", hit_rate=-0.1), summary("a"), [],
                 "{b}: strategy 'a': hit_rate is -0.1, expected a number in [0, 1]", id="hit-rate-negative"),
    pytest.param(summary("a", hit_rate=None), summary("a"), [],
                 "{b}: strategy 'a': hit_rate is null, expected a number in [0, 1]", id="null-hit-rate"),
    pytest.param(summary("a"), summary("a", ttft_p99_s=-1.0), ["--allow-missing"],
                 "{c}: strategy 'a': ttft_p99_s is -1.0, expected a finite number >= 0", id="allow-missing-no-excuse"),
    pytest.param(summary("a"), '{"strategy": "a", "ttft_p99_s": 1e999}', [],
                 "{c}:1: invalid JSON at column 33: number is infinity when parsed as double", id="inf-in-json"),
    pytest.param(summary("a"), '{"strategy": "a", "ttft_p99_s": NaN}', [],
                 "{c}:1: invalid JSON at column 33: unexpected character, expected a JSON value", id="nan-in-json"),
])
def test_what_the_gate_cannot_check_exits_2(tmp_path: Path, capsys: pytest.CaptureFixture[str], base: Any, cur: Any,
                                            argv: list[str], message: str) -> None:
    """An absent gated metric or a value no replay writes: exit 2, one line naming the file, strategy and metric."""
    b = write(tmp_path / "base.json", base)
    c = tmp_path / "cur.json"
    if isinstance(cur, str):
        c.write_text(cur)
    else:
        write(c, cur)
    code, out, err = run(capsys, "gate", "--baseline", b, "--current", str(c), *argv)
    assert (code, out, err) == (2, "", "error: " + message.format(b=b, c=c) + "\n")


def test_errors_name_a_directory_as_its_summary_json_and_stdin_as_stdin(
        tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """The file an error names is the one read: DIR/summary.json for a directory, <stdin> for '-'."""
    (tmp_path / "run").mkdir()
    write(tmp_path / "run" / "summary.json", {"summary": without(summary("a"), "hit_rate")})
    monkeypatch.setattr("sys.stdin", io.TextIOWrapper(io.BytesIO(orjson.dumps(summary("a", makespan_s=-3.0)))))
    assert run(capsys, "gate", "--baseline", str(tmp_path / "run"), "--current", "-") == (
        2, "", "error: <stdin>: strategy 'a': makespan_s is -3.0, expected a finite number >= 0\n")
    cur = write(tmp_path / "cur.json", summary("a"))
    where = tmp_path / "run" / "summary.json"
    assert run(capsys, "gate", "--baseline", str(tmp_path / "run"), "--current", cur) == (
        2, "", f"error: {where}: strategy 'a': gated metric(s) missing: hit_rate{MISSING}\n")


@pytest.mark.parametrize(("base", "cur", "kwargs", "message"), [
    pytest.param(summary("a"), summary("a", ttft_p99_s=float("nan")), {},
                 "current: strategy 'a': ttft_p99_s is nan, expected a finite number >= 0", id="nan"),
    pytest.param(summary("a", session_e2e_p99_s=float("inf")), summary("a"), {},
                 "baseline: strategy 'a': session_e2e_p99_s is inf, expected a finite number >= 0", id="inf"),
    pytest.param(summary("a"), summary("a", cost_per_session_usd=-float("inf")), {},
                 "current: strategy 'a': cost_per_session_usd is -inf, expected a finite number >= 0", id="-inf"),
    pytest.param(summary("a"), summary("a", reprefill_tokens=10**400), {},
                 f"current: strategy 'a': reprefill_tokens is {10**400}, expected a finite number >= 0", id="huge-int"),
    pytest.param(summary("a"), summary("a", hit_rate=float("nan")), {},
                 "current: strategy 'a': hit_rate is nan, expected a number in [0, 1]", id="nan-hit-rate"),
    pytest.param(summary("a"), summary("a", hit_rate=1.5), {"sources": ("old.json", "new.json")},
                 "new.json: strategy 'a': hit_rate is 1.5, expected a number in [0, 1]", id="sources-name-the-inputs"),
    pytest.param(without(summary("a"), "hit_rate"), summary("a"), {},
                 "baseline: strategy 'a': gated metric(s) missing: hit_rate" + MISSING, id="missing"),
    pytest.param(summary("a"), without(summary("a"), "reprefill_tokens"), {"allow_missing": False},
                 "current: strategy 'a': gated metric(s) missing: reprefill_tokens" + MISSING, id="missing-explicit"),
])
def test_the_api_refuses_what_it_cannot_check(base: dict[str, Any], cur: dict[str, Any], kwargs: dict[str, Any],
                                              message: str) -> None:
    """gate() raises UsageError for the same cases as the CLI, floats the JSON could not carry included."""
    with pytest.raises(UsageError) as exc:
        gate(base, cur, **kwargs)
    assert str(exc.value) == message


SKIP_WARNING = "warning: {b}: strategy 'a': gated metric(s) missing: hit_rate; skipped (--allow-missing)\n"


@pytest.mark.parametrize(("base", "cur", "code", "last", "warning"), [
    pytest.param(without(summary("a"), "hit_rate"), summary("a"), 0, "gate: ok, 6 checks, 1 skipped", SKIP_WARNING,
                 id="missing-in-baseline"),
    pytest.param(summary("a"), without(summary("a", session_e2e_p99_s=11.0), "ttft_p99_s"), 1,
                 "gate: 1 regression(s) in 6 checks, 1 skipped",
                 "warning: {c}: strategy 'a': gated metric(s) missing: ttft_p99_s; skipped (--allow-missing)\n",
                 id="missing-in-current-with-a-regression"),
    pytest.param(summary("a"), summary("a"), 0, "gate: ok, 6 checks", "", id="nothing-missing"),
])
def test_allow_missing_skips_with_a_warning(tmp_path: Path, capsys: pytest.CaptureFixture[str], base: dict[str, Any],
                                            cur: dict[str, Any], code: int, last: str, warning: str) -> None:
    """--allow-missing: a warning line per summary on stderr; the exit code comes from the remaining checks."""
    b, c = write(tmp_path / "b.json", base), write(tmp_path / "c.json", cur)
    got, out, err = run(capsys, "gate", "--baseline", b, "--current", c, "--allow-missing")
    assert (got, out.splitlines()[-1], err) == (code, last, warning.format(b=b, c=c))


def test_a_skipped_check_reads_the_same_in_every_output(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Text, Markdown, JSON, JUnit and the frame all show the absent hit_rate as skipped, with the present value."""
    b, c = write(tmp_path / "b.json", without(summary("a"), "hit_rate")), write(tmp_path / "c.json", summary("a"))
    opts = ["gate", "--baseline", b, "--current", c, "--allow-missing"]
    junit = tmp_path / "gate.xml"
    _, text, _ = run(capsys, *opts, "--junit", str(junit))
    assert text.splitlines()[2].split() == ["a", "hit_rate", "-", "0.8", "-", "-", "-0.01", "skipped"]
    _, md, _ = run(capsys, *opts, "--markdown")
    assert md.splitlines()[0] == "### ✅ agentgraph gate: ok, 6 checks, 1 skipped"
    assert md.splitlines()[5] == "| a | `hit_rate` | - | 0.8 | - | - | -0.01 | skipped |"
    _, js, _ = run(capsys, *opts, "--json")
    doc = json.loads(js)
    assert (doc["ok"], doc["regressions"], doc["checks"][1]) == (True, 0, {
        "strategy": "a", "metric": "hit_rate", "bound": "max_decrease", "limit": "0.01", "baseline": None,
        "current": 0.8, "change": None, "change_pct": None, "allowed": None, "verdict": "skipped"})
    suites = junit.read_text(encoding="utf-8")
    assert '<testsuites name="agentgraph gate" tests="6" failures="0" skipped="1">' in suites
    assert ('<testcase classname="agentgraph.gate.a" name="hit_rate (-0.01)">\n'
            '      <skipped message="hit_rate is missing from the baseline; skipped (--allow-missing)" />') in suites
    report = gate(without(summary("a"), "hit_rate"), summary("a"), allow_missing=True)
    assert report.to_frame().row(1) == ("a", "hit_rate", "max_decrease", "0.01", None, 0.8, None, None, None, "skipped")
    assert (report.skipped, report.absent) == (
        (report.checks[1],), ("baseline: strategy 'a': gated metric(s) missing: hit_rate; skipped (--allow-missing)",))


def test_allow_missing_does_not_excuse_a_missing_strategy(files: tuple[str, str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """--allow-missing is about metrics: a baseline strategy absent from the current file still fails (exit 1)."""
    code, out, err = run(capsys, "gate", "--baseline", files[0], "--current", files[1], "--allow-missing")
    assert (code, out, err) == (1, TEXT, "")


# --------------------------------------------------------------------------- end to end


def test_replay_json_feeds_the_gate(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Real replays under load: longest_prefix against a topology_aware baseline fails on re-prefill and
    latency (its hit rate is higher, its cost within 5 %); topology_aware against itself passes."""
    paths = {}
    for name in ("topology_aware", "longest_prefix"):
        code, out, _ = run(capsys, "replay", REPLAYS, "--strategy", name, "--copies", "40", "--rate", "1", "--json")
        assert code == 0
        paths[name] = write(tmp_path / f"{name}.json", json.loads(out))
    code, out, _ = run(capsys, "gate", "--baseline", paths["topology_aware"], "--current", paths["longest_prefix"],
                       "--json")
    doc = json.loads(out)
    assert (code, doc["ok"], doc["regressions"]) == (1, False, 4)
    assert {c["metric"]: c["verdict"] for c in doc["checks"]} == {
        "reprefill_tokens": "REGRESSION", "hit_rate": "improved", "ttft_p99_s": "REGRESSION",
        "session_e2e_p50_s": "REGRESSION", "session_e2e_p99_s": "REGRESSION", "cost_per_session_usd": "ok"}
    assert {c["strategy"] for c in doc["checks"]} == {"topology_aware->longest_prefix"}
    code, out, _ = run(capsys, "gate", "--baseline", paths["topology_aware"], "--current", paths["topology_aware"])
    assert (code, out.splitlines()[-1]) == (0, "gate: ok, 6 checks")
