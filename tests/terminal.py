"""Running a command with its stderr on a pseudo-terminal, as a user's shell would (progress bars)."""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import subprocess
import termios
from collections.abc import Mapping
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def on_a_terminal(argv: list[str], env: Mapping[str, str] | None = None) -> bytes:
    """What ``argv`` writes to stderr when stderr is a 100-column pseudo-terminal (``pty.openpty()``
    alone gives 0 columns, on which tqdm draws nothing); it must exit 0."""
    leader, follower = pty.openpty()
    fcntl.ioctl(follower, termios.TIOCSWINSZ, struct.pack("HHHH", 30, 100, 0, 0))
    proc = subprocess.Popen(argv, stdin=follower, stdout=subprocess.DEVNULL, stderr=follower, cwd=ROOT,
                            env=None if env is None else dict(env))
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
