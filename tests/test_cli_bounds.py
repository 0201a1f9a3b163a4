"""Absurd sizes on the command line: one error line and exit 2 within seconds, never a hang.

The bounds are documented in docs/cli.md; the cluster file's own are tested in test_cluster*.py.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

import pytest

from schedulers import limits
from schedulers.cli import main

ROOT = Path(__file__).resolve().parents[1]
REPLAYS = str(ROOT / "replays")
MANY_RATES = ",".join(str(r) for r in range(1, 1001))
MANY_SEEDS = ",".join(str(s) for s in range(1000))


@pytest.mark.parametrize(("argv", "last_line"), [
    (["replay", REPLAYS, "--copies", "1000000000"],
     "agentgraph replay: error: argument --copies: expected an integer in 1..100000, got 1000000000"),
    (["replay", REPLAYS, "--copies", "99999999999999999999"],
     "agentgraph replay: error: argument --copies: expected an integer in 1..100000, got 99999999999999999999"),
    (["compare", REPLAYS, "--copies", "9" * 5000],
     "agentgraph compare: error: argument --copies: expected an integer in 1..100000, got "
     f"'{'9' * 41}... (5002 characters)"),
    (["replay", REPLAYS, "--nodes", "10000000"],
     "agentgraph replay: error: argument --nodes: expected an integer in 1..4096, got 10000000"),
    (["replay", REPLAYS, "--seed", "1180591620717411303424"],
     "agentgraph replay: error: argument --seed: expected an integer in 0..18446744073709551615, "
     "got 1180591620717411303424"),
    (["demo", REPLAYS, "--copies", "1000000000"],
     "agentgraph demo: error: argument --copies: expected an integer in 1..100000, got 1000000000"),
    (["sweep", REPLAYS, "--nodes", "2,10000000"],
     "agentgraph sweep: error: argument --nodes: expected an integer in 1..4096, got 10000000 (in '2,10000000')"),
    (["sweep", REPLAYS, "--seeds", "0,18446744073709551616"],
     "agentgraph sweep: error: argument --seeds: expected an integer in 0..18446744073709551615, "
     "got 18446744073709551616 (in '0,18446744073709551616')"),
    (["sweep", REPLAYS, "--rates", "1,,2"],
     "agentgraph sweep: error: argument --rates: expected comma-separated values with none empty, got '1,,2'"),
    (["sweep", REPLAYS, "--seeds", "1,2,1"], "agentgraph sweep: error: argument --seeds: '1' is repeated in '1,2,1'"),
    (["replay", REPLAYS, "--time-scale", "1e300"],
     "agentgraph replay: error: argument --time-scale: expected a number in [1e-06, 1e+06], got 1e300"),
    (["compare", REPLAYS, "--rate", "1e-300"],
     "agentgraph compare: error: argument --rate: expected a number in [1e-06, 1e+06], got 1e-300"),
    (["sweep", REPLAYS, "--rates", "1,1e9"],
     "agentgraph sweep: error: argument --rates: expected a number in [1e-06, 1e+06], got 1e9 (in '1,1e9')"),
    (["demo", REPLAYS, "--rate", "1e-300"],
     "agentgraph demo: error: argument --rate: expected a number in [1e-06, 1e+06], got 1e-300"),
    (["compare", REPLAYS, "--strategies", "round_robin,round_robin"],
     "error: --strategies names round_robin more than once"),
    (["demo", REPLAYS, "--strategies", "random,topology_aware,random"],
     "error: --strategies names random more than once"),
    (["sweep", REPLAYS, "--strategies", "all", "--rates", MANY_RATES, "--seeds", MANY_SEEDS],
     "error: the grid has 10,000,000 combinations (10 × 1 × 1 × 1000 × 1000), above the limit of 10,000; "
     "sweep a coarser grid, or split it"),
    (["replay", REPLAYS, "--copies", "100000"],
     "error: this replay would replay 7,200,000 hops (about 10 min on a 2-core VM), above the limit of "
     "2,000,000; pass --force to run it anyway"),
    (["compare", REPLAYS, "--copies", "5000"],
     "error: this replay would replay 3,600,000 hops (about 5 min on a 2-core VM), above the limit of "
     "2,000,000; pass --force to run it anyway"),
    (["sweep", REPLAYS, "--copies", "3000", "--seeds", "0,1,2,3,4,5,6,7,8,9"],
     "error: this sweep would replay 21,600,000 hops (about 30 min on a 2-core VM), above the limit of "
     "2,000,000; pass --force to run it anyway"),
    (["demo", REPLAYS, "--copies", "3000"],
     "error: this replay would replay 2,160,000 hops (about 3 min on a 2-core VM), above the limit of "
     "2,000,000; pass --force to run it anyway"),
])
def test_absurd_sizes_fail_fast_with_one_line(argv: list[str], last_line: str, tmp_path: Path,
                                              capsys: pytest.CaptureFixture[str]) -> None:
    """Each is refused within 10 s with exit 2: one ``error:`` line, or argparse's usage and its
    error line; nothing on stdout, no traceback, no report folder."""
    if argv[0] == "demo":
        argv = [*argv, "-o", str(tmp_path / "report")]
    started = time.perf_counter()
    code = main(argv)
    elapsed = time.perf_counter() - started
    out, err = capsys.readouterr()
    assert (code, out, err.splitlines()[-1]) == (2, "", last_line)
    *usage, _ = err.splitlines()  # argparse's usage (and its wrapped lines), or nothing
    assert usage == [] if last_line.startswith("error:") else usage[0].startswith("usage: agentgraph ")
    assert all(line.startswith(" ") for line in usage[1:])
    assert elapsed < 10
    assert not (tmp_path / "report").exists()


@pytest.mark.parametrize(("limit", "value", "message"), [
    ("MAX_REPLAYED_BLOCKS", 100_000, "this replay would replay 147,740 prefix blocks (about 0 s on a 2-core VM), "
     "above the limit of 100,000; pass --force to run it anyway"),
    ("MAX_RESIDENT_BLOCKS", 40_000, "this replay would hold 44,322 prefix blocks in memory at once (about 0.0 GB), "
     "above the limit of 40,000; pass --force to run it anyway"),
])
def test_work_is_weighed_in_blocks_too(limit: str, value: int, message: str, monkeypatch: pytest.MonkeyPatch,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A few hops of huge prompts are as much work as many small ones: replayed and resident prefix
    blocks have limits of their own (lowered here; replays/ holds 14,774 blocks in 72 hops)."""
    monkeypatch.setattr(limits, limit, value)
    copies, strategies = ("10", "random") if limit == "MAX_REPLAYED_BLOCKS" else ("3", "random")
    assert main(["replay", REPLAYS, "--copies", copies, "--strategy", strategies]) == 2
    assert capsys.readouterr().err == f"error: {message}\n"


def test_force_runs_above_the_work_limit(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    """--force proceeds where the work limit refuses (the limit lowered so the run stays short)."""
    monkeypatch.setattr(limits, "MAX_REPLAYED_HOPS", 100)
    assert main(["replay", REPLAYS, "--copies", "2", "--strategy", "random", "--json"]) == 2
    assert "would replay 144 hops" in capsys.readouterr().err
    assert main(["replay", REPLAYS, "--copies", "2", "--strategy", "random", "--json", "--force"]) == 0
    assert '"hops": 144' in capsys.readouterr().out


def test_the_installed_command_refuses_the_same_way() -> None:
    """Through the real console entry point in a subprocess: exit 2, no traceback, in seconds."""
    started = time.perf_counter()
    proc = subprocess.run([sys.executable, "-m", "schedulers.cli", "replay", REPLAYS, "--copies", "1000000000"],
                          capture_output=True, text=True, timeout=60, cwd=ROOT)
    assert (proc.returncode, proc.stdout) == (2, "")
    assert proc.stderr.splitlines()[-1].endswith("expected an integer in 1..100000, got 1000000000")
    assert time.perf_counter() - started < 10
