"""Every line reader holds at most one bounded line: longer lines are skipped, never loaded."""

from __future__ import annotations

import io
import os
import resource
import stat
import subprocess
import sys
from pathlib import Path

import pytest

from agentgraph import traceio
from agentgraph.errors import TraceFormatError
from agentgraph.sources import detect_format, import_paths
from agentgraph.sources.jsonl import MAX_LINE_BYTES, bounded_lines, first_record, line_blocks, time_range

AS_LIMIT = 1 << 30  # the CLI needs ~0.3 GB of address space; reading the sparse line would need 1 GB more
TOO_LONG = f"line longer than {MAX_LINE_BYTES:,} bytes"


def _sparse(path: Path, size: int) -> Path:
    """A file of ``size`` NUL bytes (one line without a newline) that takes no disk space."""
    path.write_bytes(b"")
    os.truncate(path, size)
    return path


def _cli(*args: str) -> subprocess.CompletedProcess[str]:
    def limit() -> None:
        resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    entry = "import sys; from schedulers.cli import main; sys.exit(main())"  # the `agentgraph` script
    return subprocess.run([sys.executable, "-c", entry, *args], capture_output=True, text=True,
                          preexec_fn=limit, timeout=120, check=False)


def test_bounded_lines_skips_an_over_long_line_and_goes_on() -> None:
    """Lines up to the bound pass whole; a longer one is None and the next line is read."""
    data = b"abcd\n" + b"x" * 9 + b"\nef\n" + b"y" * 5
    assert list(bounded_lines(io.BytesIO(data), limit=4)) == [(1, b"abcd\n"), (2, None), (3, b"ef\n"), (4, None)]
    assert list(line_blocks(io.BytesIO(data), chunk_bytes=3, limit=4)) == [b"abcd\n", b"ef\n"]


@pytest.mark.parametrize("command", [["inspect"], ["validate"], ["import", "-o", "OUT"]])
def test_a_sparse_gigabyte_line_is_one_warning_and_exit_2_in_bounded_memory(tmp_path: Path,
                                                                           command: list[str]) -> None:
    """A 1 GiB file of one line, under a 1 GiB address-space limit: a warning naming the line,
    exit 2, no traceback (it was a MemoryError in format detection)."""
    f = _sparse(tmp_path / "sparse.jsonl", 1 << 30)
    args = [str(tmp_path / "x.trace") if a == "OUT" else a for a in command]
    done = _cli(*args[:1], str(f), *args[1:])
    assert done.returncode == 2, done.stderr
    assert f"warning: {f}:1: {TOO_LONG}; skipped" in done.stderr
    assert "Traceback" not in done.stderr


def test_every_reader_skips_a_line_longer_than_the_bound(tmp_path: Path) -> None:
    """Claude Code, Mooncake and recording readers warn and go on; format detection gives up;
    the native trace reader refuses the file naming the line."""
    f = _sparse(tmp_path / "s.jsonl", MAX_LINE_BYTES + 10)
    assert first_record(f) is None and time_range(f) is None
    for fmt in ("claude-code", "mooncake", "recording"):
        result = import_paths([f], format=fmt)
        assert [str(i) for i in result.issues][:1] == [f"{f}:1: {TOO_LONG}; skipped"], fmt
    with pytest.raises(TraceFormatError, match=f"{f}:1: {TOO_LONG}"):
        traceio.load(f)


@pytest.fixture
def zero_device(tmp_path: Path) -> Path:
    """A character device like /dev/zero, made here (never the machine's own)."""
    path = tmp_path / "zero.jsonl"
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, os.makedev(1, 5))
    except PermissionError:
        pytest.skip("making a device needs CAP_MKNOD")
    return path


def test_a_never_ending_device_is_read_up_to_one_line(zero_device: Path) -> None:
    """Reading stops at the first over-long line of a file that is not regular: no hang, bounded
    memory; detection finds no format, and the CLI exits 2 with one line."""
    assert first_record(zero_device) is None and detect_format(zero_device) is None
    for fmt in ("mooncake", "recording"):
        assert [str(i) for i in import_paths([zero_device], format=fmt).issues][:1] == [
            f"{zero_device}:1: {TOO_LONG}; skipped"]
    assert [str(i) for i in import_paths([zero_device], format="claude-code").issues] == [
        f"{zero_device}: not a regular file or directory; skipped"]
    done = _cli("inspect", str(zero_device))
    assert done.returncode == 2 and "Traceback" not in done.stderr, done.stderr
