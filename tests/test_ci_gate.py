"""The project's own CI gate: replay ``replays/`` under every strategy and gate it against ``ci/baseline.json``.

A failure here means a change moved re-prefill, tail latency, money or hit rate beyond the default
limits. If the change is intended, refresh the baseline (``docs/ci.md``)::

    agentgraph compare replays --copies 40 --rate 1 --json > ci/baseline.json

The Markdown table is printed (``pytest -s`` shows it) and appended to ``$GITHUB_STEP_SUMMARY``
when that is set, as on GitHub Actions.
"""

from __future__ import annotations

import os
import subprocess
import sys
import xml.etree.ElementTree as ET
from pathlib import Path

import orjson

from schedulers.strategies import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
BASELINE = ROOT / "ci" / "baseline.json"
REPLAY = ["compare", "replays", "--copies", "40", "--rate", "1", "--json"]
REFRESH = "agentgraph " + " ".join(REPLAY) + " > ci/baseline.json"


def agentgraph(*argv: str) -> subprocess.CompletedProcess[str]:
    """The real command line, from the repository root."""
    return subprocess.run([sys.executable, "-m", "schedulers.cli", *argv], cwd=ROOT, capture_output=True,
                          text=True, encoding="utf-8", check=False)


def test_baseline_covers_every_strategy() -> None:
    """The committed baseline holds one summary per registered strategy, in registry order."""
    doc = orjson.loads(BASELINE.read_bytes())
    assert list(doc["strategies"]) == list(STRATEGIES), f"a strategy was added or renamed: run `{REFRESH}`"


def test_replays_pass_the_gate(tmp_path: Path) -> None:
    """Every strategy on the bundled sessions under load stays within the default limits of the baseline."""
    replay = agentgraph(*REPLAY)
    assert replay.returncode == 0, replay.stderr
    current = tmp_path / "current.json"
    current.write_text(replay.stdout, encoding="utf-8")
    junit = tmp_path / "gate.xml"
    result = agentgraph("gate", "--baseline", str(BASELINE), "--current", str(current), "--markdown",
                        "--junit", str(junit))
    print("\n" + result.stdout + result.stderr)
    summary = os.environ.get("GITHUB_STEP_SUMMARY")
    if summary:
        with open(summary, "a", encoding="utf-8") as f:
            f.write(result.stdout + "\n")
    assert result.returncode == 0, f"gate failed; if the change is intended run `{REFRESH}`\n{result.stdout}"
    assert result.stdout.startswith(f"### ✅ agentgraph gate: ok, {6 * len(STRATEGIES)} checks\n")
    suites = ET.parse(junit).getroot()
    assert (suites.get("tests"), suites.get("failures")) == (str(6 * len(STRATEGIES)), "0")
    assert [s.get("name") for s in suites] == list(STRATEGIES)
