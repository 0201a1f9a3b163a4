"""Progress bars: drawn on stderr when it is a terminal (or with ``--progress``), never into pipes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from tests.terminal import on_a_terminal

ROOT = Path(__file__).resolve().parents[1]
REPLAYS = str(ROOT / "replays")

COMMANDS = {
    "import": (["import", REPLAYS, "-o", "OUT/t.trace"], b"session/s"),  # streams: a count, no percentage
    "replay": (["replay", REPLAYS, "--strategy", "round_robin"], b"%|"),
    "compare": (["compare", REPLAYS, "--strategies", "round_robin,least_loaded"], b"%|"),
    "sweep": (["sweep", REPLAYS, "--strategies", "round_robin,least_loaded", "--workers", "1"], b"%|"),
    "demo": (["demo", "--strategies", "round_robin", "--copies", "2", "-o", "OUT/report"], b"%|"),
}
"""Each command on the bundled sessions, and what only its bar prints."""


def _argv(name: str, out: Path, *extra: str) -> list[str]:
    args = [a.replace("OUT", str(out)) for a in COMMANDS[name][0]]
    return [sys.executable, "-m", "schedulers.cli", *args, *extra]


@pytest.mark.parametrize("name", list(COMMANDS))
def test_progress_bar_on_a_terminal_only(name: str, tmp_path: Path) -> None:
    """Under a pseudo-terminal the command draws its bar; with pipes (CI logs) it does not."""
    marker = COMMANDS[name][1]
    piped = subprocess.run(_argv(name, tmp_path / "piped"), capture_output=True, cwd=ROOT, timeout=120, check=True)
    assert marker not in piped.stderr and b"%|" not in piped.stderr
    seen = on_a_terminal(_argv(name, tmp_path / "tty"))
    assert name.encode() + b":" in seen and marker in seen, seen[-400:]


@pytest.mark.parametrize("name", ["import", "compare"])
def test_progress_flags_override_the_terminal_rule(name: str, tmp_path: Path) -> None:
    """--progress draws into a pipe; --no-progress keeps a terminal clean."""
    marker = COMMANDS[name][1]
    forced = subprocess.run(_argv(name, tmp_path / "a", "--progress"), capture_output=True, cwd=ROOT,
                            timeout=120, check=True)
    assert marker in forced.stderr
    assert marker not in on_a_terminal(_argv(name, tmp_path / "b", "--no-progress"))
