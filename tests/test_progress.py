"""Progress bars: drawn on stderr when it is a terminal (or with ``--progress``), never into pipes."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import sys
import termios
from pathlib import Path

import pytest

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


def _on_a_terminal(argv: list[str]) -> bytes:
    """What ``argv`` writes to stderr when stderr is a 100-column pseudo-terminal."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))  # 0 columns: tqdm draws nothing
    proc = subprocess.Popen(argv, stdin=follower, stdout=subprocess.DEVNULL, stderr=follower, cwd=ROOT)
    os.close(follower)
    seen = b""
    while select.select([leader], [], [], 120)[0]:
        try:
            chunk = os.read(leader, 4096)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        seen += chunk
    os.close(leader)
    assert proc.wait(timeout=120) == 0, seen[-400:]
    return seen


@pytest.mark.parametrize("name", list(COMMANDS))
def test_progress_bar_on_a_terminal_only(name: str, tmp_path: Path) -> None:
    """Under a pseudo-terminal the command draws its bar; with pipes (CI logs) it does not."""
    marker = COMMANDS[name][1]
    piped = subprocess.run(_argv(name, tmp_path / "piped"), capture_output=True, cwd=ROOT, timeout=120, check=True)
    assert marker not in piped.stderr and b"%|" not in piped.stderr
    seen = _on_a_terminal(_argv(name, tmp_path / "tty"))
    assert name.encode() + b":" in seen and marker in seen, seen[-400:]


@pytest.mark.parametrize("name", ["import", "compare"])
def test_progress_flags_override_the_terminal_rule(name: str, tmp_path: Path) -> None:
    """--progress draws into a pipe; --no-progress keeps a terminal clean."""
    marker = COMMANDS[name][1]
    forced = subprocess.run(_argv(name, tmp_path / "a", "--progress"), capture_output=True, cwd=ROOT,
                            timeout=120, check=True)
    assert marker in forced.stderr
    assert marker not in _on_a_terminal(_argv(name, tmp_path / "b", "--no-progress"))
