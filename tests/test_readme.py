"""The README's two commands are the ones that work: CI runs its test command verbatim."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from agentgraph.cli import main

ROOT = Path(__file__).resolve().parents[1]


def _bash_blocks() -> list[str]:
    readme = (ROOT / "README.md").read_text()
    return [b.strip() for b in re.findall(r"```bash\n(.*?)```", readme, flags=re.S)]


def test_ci_runs_the_readme_test_command() -> None:
    """The last line of .ci/run is the README's second command, character for character."""
    ci_last = (ROOT / ".ci" / "run").read_text().strip().splitlines()[-1]
    assert _bash_blocks()[1] == ci_last


def test_readme_demo_command_imports_the_bundled_replays(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The demo's import + inspect run on replays/ and show every bundled session."""
    demo = _bash_blocks()[0]
    assert "agentgraph import replays -o replays.trace" in demo
    assert "agentgraph inspect replays.trace" in demo
    out = tmp_path / "replays.trace"
    assert main(["import", str(ROOT / "replays"), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"imported 9 session(s), 72 hops, 57 tool calls -> {out}\n"
    assert main(["inspect", str(out)]) == 0
    assert capsys.readouterr().out.count("session ") == 9
