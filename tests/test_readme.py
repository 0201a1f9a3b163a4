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


def test_readme_main_command_runs_the_demo(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    """The first command sets up and runs ``agentgraph demo``: from any directory it finds the
    bundled replays and writes demo-report/ there (the full run is in tests/test_demo.py)."""
    main_job = _bash_blocks()[0]
    assert main_job.endswith("&& .venv/bin/agentgraph demo")
    from schedulers.cli import main as full_main

    monkeypatch.chdir(tmp_path)
    assert full_main(["demo", "--strategies", "session_affinity,topology_aware", "--copies", "2"]) == 0
    out = capsys.readouterr().out
    assert "18 session(s), 144 hops" in out and out.endswith("report -> demo-report/index.html\n")
    assert (tmp_path / "demo-report" / "index.html").is_file()


def test_readme_tour_imports_the_bundled_replays(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """The tour's import + inspect run on replays/ and show every bundled session."""
    readme = (ROOT / "README.md").read_text()
    assert "$ agentgraph import replays -o replays.trace" in readme
    out = tmp_path / "replays.trace"
    assert main(["import", str(ROOT / "replays"), "-o", str(out)]) == 0
    assert capsys.readouterr().out == f"imported 9 session(s), 72 hops, 57 tool calls -> {out}\n"
    assert main(["inspect", str(out)]) == 0
    assert capsys.readouterr().out.endswith("\n9 session(s); --session ID shows one hop by hop\n")


TOUR_COMMANDS = ["agentgraph inspect replays.trace", "agentgraph inspect replays.trace --session 5e55a000",
                 "agentgraph graph replays.trace --session 5e55 --format mermaid"]


def _shown_output(command: str) -> list[str]:
    """The lines the README's console blocks show after ``$ COMMAND`` (up to the next ``$`` or a
    closing ``...``)."""
    lines = (ROOT / "README.md").read_text().splitlines()
    start = lines.index(f"$ {command}") + 1
    shown: list[str] = []
    for line in lines[start:]:
        if line.startswith("$ ") or line.startswith("```") or line.strip() == "...":
            break
        shown.append(line)
    return shown


@pytest.mark.parametrize("command", TOUR_COMMANDS)
def test_readme_tour_shows_real_outputs(command: str, capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """What the tour shows after each of these commands is what the command prints (a block cut
    with ``...`` shows the beginning)."""
    trace = tmp_path / "replays.trace"
    assert main(["import", str(ROOT / "replays"), "-o", str(trace)]) == 0
    capsys.readouterr()
    args = [str(trace) if a == "replays.trace" else a for a in command.split()[1:]]
    assert main(args) == 0
    shown = _shown_output(command)
    assert capsys.readouterr().out.splitlines()[:len(shown)] == shown
