"""Output paths never destroy anything: every place that writes goes through agentgraph.outputs.

Device nodes are made with ``os.mknod`` in the test's own folder (``/`` here is mounted without
``nodev``); the machine's real ``/dev/null`` and ``/dev/full`` are never opened for writing.
"""

from __future__ import annotations

import contextlib
import os
import signal
import stat
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import orjson
import pytest

from agentgraph import load, save
from agentgraph.outputs import open_output, output_dir, write_output
from schedulers import DEFAULT_CLUSTER, replay
from schedulers.cli import main
from schedulers.plots import hit_rates, save_png
from tests.cc_synth import write_demo_session

NULL, FULL = os.makedev(1, 3), os.makedev(1, 7)
ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Writer:
    """A command that writes ``out``: ``argv(work, out)``; ``node`` is the file of a folder
    output that the case puts in place (``None``: ``out`` itself); ``looks_right`` checks bytes."""

    argv: Callable[[Path, Path], list[str]]
    looks_right: Callable[[bytes], bool]
    node: str | None = None
    ok: int = 0


WRITERS = {
    "import": Writer(lambda w, o: ["import", str(w / "projects"), "-o", str(o)],
                     lambda b: b.startswith(b'{"format":"agentgraph.trace"')),
    "import-mooncake": Writer(lambda w, o: ["import", str(w / "projects"), "--to", "mooncake", "-o", str(o)],
                              lambda b: b'"dynamo.agentic_mooncake"' in b.split(b"\n", 1)[0]),
    "graph": Writer(lambda w, o: ["graph", str(w / "projects"), "--format", "json", "-o", str(o)],
                    lambda b: "nodes" in orjson.loads(b)),
    "sweep": Writer(lambda w, o: ["sweep", str(w / "projects"), "--strategies", "random", "-o", str(o)],
                    lambda b: b.startswith(b"strategy,")),
    "gate-junit": Writer(lambda w, o: ["gate", "--baseline", str(w / "s.json"), "--current", str(w / "s.json"),
                                       "--junit", str(o)], lambda b: b.startswith(b"<?xml")),
    "replay-dir": Writer(lambda w, o: ["replay", str(w / "projects"), "--strategy", "random", "-o", str(o.parent)],
                         lambda b: "summary" in orjson.loads(b), node="summary.json"),
    "demo-dir": Writer(lambda w, o: ["demo", str(w / "projects"), "--strategies", "random", "--copies", "1",
                                     "-o", str(o.parent)], lambda b: b"<html" in b, node="index.html"),
}


@pytest.fixture(scope="module")
def work(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The inputs: a small session and a summary to gate against itself."""
    w = tmp_path_factory.mktemp("inputs")
    write_demo_session(w / "projects")
    summary = replay(load(_imported(w)), DEFAULT_CLUSTER, "random").summary
    (w / "s.json").write_bytes(orjson.dumps(summary))
    return w


def _imported(w: Path) -> Path:
    from agentgraph.sources import import_paths

    save(import_paths([w / "projects"]).trace, w / "t.trace")
    return w / "t.trace"


def _out(tmp_path: Path, writer: Writer) -> Path:
    """Where the case's path goes: ``out.csv`` (sweep wants the suffix), in ``d/`` for folder outputs."""
    return tmp_path / "d" / (writer.node or "out.csv")


def _run(writer: Writer, work: Path, out: Path, capsys: pytest.CaptureFixture[str]) -> tuple[int, str]:
    code = main(writer.argv(work, out))
    return code, capsys.readouterr().err


def _mknod(path: Path, device: int) -> None:
    if os.geteuid() != 0:
        pytest.skip("device nodes need root")
    try:
        os.mknod(path, 0o666 | stat.S_IFCHR, device)
        os.close(os.open(path, os.O_WRONLY))  # a nodev mount or a device cgroup refuses here
    except PermissionError as exc:
        pytest.skip(f"cannot make or open a device node here: {exc}")


@contextlib.contextmanager
def _reader(fifo: Path) -> Iterator[list[bytes]]:
    got: list[bytes] = []
    thread = threading.Thread(target=lambda: got.append(fifo.read_bytes()), daemon=True)
    thread.start()
    try:
        yield got
    finally:
        if thread.is_alive():  # the writer failed before opening: let the reader go
            with contextlib.suppress(OSError), open(fifo, "wb", opener=_nonblocking):
                pass
        thread.join(10)


def _nonblocking(path: str, flags: int) -> int:
    return os.open(path, flags | os.O_NONBLOCK)


def _leftovers(folder: Path) -> list[str]:
    return sorted(p.name for p in folder.iterdir() if p.name.startswith("."))


@pytest.fixture(params=sorted(WRITERS))
def writer(request: pytest.FixtureRequest) -> Writer:
    return WRITERS[request.param]


def test_a_new_file_gets_the_umask_mode(writer: Writer, work: Path, tmp_path: Path,
                                        capsys: pytest.CaptureFixture[str]) -> None:
    """A new output is a regular file with mode 0666 less the umask (not 0600), and no temp is left."""
    out = _out(tmp_path, writer)
    old = os.umask(0o027)
    try:
        code, err = _run(writer, work, out, capsys)
    finally:
        os.umask(old)
    assert (code, "error" in err) == (writer.ok, False), err
    assert writer.looks_right(out.read_bytes())
    assert stat.S_IMODE(out.stat().st_mode) == 0o640
    assert _leftovers(out.parent) == []


def test_an_existing_file_keeps_its_mode(writer: Writer, work: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """An existing file is replaced whole and keeps its permission bits."""
    out = _out(tmp_path, writer)
    out.parent.mkdir()
    out.write_bytes(b"old")
    out.chmod(0o604)
    code, _ = _run(writer, work, out, capsys)
    assert code == writer.ok
    assert writer.looks_right(out.read_bytes())
    assert stat.S_IMODE(out.stat().st_mode) == 0o604


def test_a_symlink_is_followed(writer: Writer, work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A symlink stays a symlink; its target (in another folder) is what gets written."""
    out = _out(tmp_path, writer)
    out.parent.mkdir()
    (tmp_path / "elsewhere").mkdir()
    target = tmp_path / "elsewhere" / "target"
    out.symlink_to(Path("..") / "elsewhere" / "target")
    code, _ = _run(writer, work, out, capsys)
    assert code == writer.ok
    assert out.is_symlink() and writer.looks_right(target.read_bytes())
    assert _leftovers(tmp_path / "elsewhere") == []


def test_a_fifo_feeds_its_reader(writer: Writer, work: Path, tmp_path: Path,
                                 capsys: pytest.CaptureFixture[str]) -> None:
    """A FIFO is written to, not replaced: its reader gets the whole output."""
    out = _out(tmp_path, writer)
    out.parent.mkdir()
    os.mkfifo(out)
    with _reader(out) as got:
        code, _ = _run(writer, work, out, capsys)
    assert code == writer.ok
    assert stat.S_ISFIFO(out.lstat().st_mode) and writer.looks_right(got[0])


def test_a_null_device_discards(writer: Writer, work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``-o`` a null device works and leaves the device node in place."""
    out = _out(tmp_path, writer)
    out.parent.mkdir()
    _mknod(out, NULL)
    code, err = _run(writer, work, out, capsys)
    assert (code, "error" in err) == (writer.ok, False)
    assert stat.S_ISCHR(out.lstat().st_mode) and out.lstat().st_rdev == NULL


def test_a_full_device_is_one_error_line(writer: Writer, work: Path, tmp_path: Path,
                                         capsys: pytest.CaptureFixture[str]) -> None:
    """``-o`` a full device: exit 2, ``error: PATH: No space left on device``, the node kept."""
    out = _out(tmp_path, writer)
    out.parent.mkdir()
    _mknod(out, FULL)
    code, err = _run(writer, work, out, capsys)
    assert code == 2
    assert [line for line in err.splitlines() if "error" in line or "Traceback" in line] == [
        f"error: {out}: No space left on device"]
    assert stat.S_ISCHR(out.lstat().st_mode) and out.lstat().st_rdev == FULL


def test_a_directory_is_one_error_line(writer: Writer, work: Path, tmp_path: Path,
                                       capsys: pytest.CaptureFixture[str]) -> None:
    """A folder where a file is expected: exit 2, ``error: PATH: Is a directory``, the folder untouched."""
    out = _out(tmp_path, writer)
    (out / "inside").mkdir(parents=True)
    code, err = _run(writer, work, out, capsys)
    assert (code, err.splitlines()[-1]) == (2, f"error: {out}: Is a directory")
    assert [p.name for p in out.iterdir()] == ["inside"]


@contextlib.contextmanager
def _read_only(folder: Path) -> Iterator[str]:
    """``folder`` made read-only; yields the reason a write there fails with. Root ignores mode
    bits, so as root the folder is made immutable (``chattr +i``) instead."""
    if os.geteuid() != 0:
        folder.chmod(0o555)
        try:
            yield "Permission denied"
        finally:
            folder.chmod(0o755)
        return
    if subprocess.run(["chattr", "+i", str(folder)], capture_output=True).returncode != 0:
        pytest.skip("chattr +i is not available here")
    try:
        yield "Operation not permitted"
    finally:
        subprocess.run(["chattr", "-i", str(folder)], check=True)


def test_a_read_only_folder_keeps_the_old_file(writer: Writer, work: Path, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    """A file that cannot be replaced atomically is not truncated in place: one error line (a
    folder output fails on the folder, before the work), the old content and nothing else left."""
    out = _out(tmp_path, writer)
    out.parent.mkdir()
    out.write_bytes(b"old")
    with _read_only(out.parent) as reason:
        code, err = _run(writer, work, out, capsys)
    named = out.parent if writer.node else out
    assert (code, err.splitlines()[-1]) == (2, f"error: {named}: {reason}")
    assert out.read_bytes() == b"old" and sorted(p.name for p in out.parent.iterdir()) == [out.name]


def test_a_failed_import_leaves_the_old_file(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """An import that finds nothing exits 2 and leaves the file it would have replaced as it was."""
    bad, out = tmp_path / "bad.jsonl", tmp_path / "out.trace"
    bad.write_bytes(b'{"type": "user"}\n')
    out.write_bytes(b"old")
    assert main(["import", str(bad), "-o", str(out)]) == 2
    assert capsys.readouterr().err.splitlines()[-1] == f"error: no usable hop found in {bad}"
    assert out.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_a_block_device_is_refused(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A block device is never written (a trace over a disk is never what was meant)."""
    if os.geteuid() != 0:
        pytest.skip("device nodes need root")
    out = tmp_path / "disk"
    os.mknod(out, 0o600 | stat.S_IFBLK, os.makedev(7, 0))
    assert main(["import", str(work / "projects"), "-o", str(out)]) == 2
    assert capsys.readouterr().err == f"error: {out}: is a block device; refusing to write over a disk\n"


def test_the_python_api_writes_by_the_same_rules(work: Path, tmp_path: Path) -> None:
    """agentgraph.save and plots.save_png follow symlinks, feed FIFOs, and raise an OSError naming the path."""
    trace = load(work / "t.trace")
    (tmp_path / "real").mkdir()
    for name, write in (("t.trace", lambda p: save(trace, p)),
                        ("f.png", lambda p: save_png(hit_rates({"a": {"hit_rate": 0.5, "transferred_tokens": 0,
                                                                       "prompt_tokens": 1}}), p))):
        link = tmp_path / f"link-{name}"
        link.symlink_to(tmp_path / "real" / name)
        write(link)
        assert link.is_symlink() and (tmp_path / "real" / name).stat().st_size > 0
        fifo = tmp_path / f"fifo-{name}"
        os.mkfifo(fifo)
        with _reader(fifo) as got:
            write(fifo)
        assert got[0] == (tmp_path / "real" / name).read_bytes()
        with pytest.raises(IsADirectoryError) as info:
            write(tmp_path / "real")
        assert str(info.value) == f"[Errno 21] Is a directory: '{tmp_path / 'real'}'"


def test_a_failing_writer_leaves_nothing(tmp_path: Path) -> None:
    """An exception inside ``open_output`` discards the temporary file; the old content stays."""
    out = write_output(tmp_path / "x", b"old")
    with pytest.raises(RuntimeError), open_output(out) as f:
        f.write(b"half")
        raise RuntimeError("stop")
    assert out.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_output_dir_refuses_a_file(tmp_path: Path) -> None:
    """A folder output that is a file is a NotADirectoryError naming it; a symlink to a folder is used."""
    (tmp_path / "f").write_text("x")
    with pytest.raises(NotADirectoryError, match="Not a directory"):
        output_dir(tmp_path / "f")
    (tmp_path / "real").mkdir()
    (tmp_path / "link").symlink_to(tmp_path / "real")
    assert output_dir(tmp_path / "link") == tmp_path / "link" and _leftovers(tmp_path / "real") == []


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGHUP, signal.SIGINT])
def test_a_stopped_import_leaves_no_temporary_file(sig: signal.Signals, tmp_path: Path) -> None:
    """SIGTERM (timeout, CI cancellation), SIGHUP and Ctrl-C mid-import: exit 130, one line, the old
    output as it was, no temporary file (the import waits on a FIFO source, its output open)."""
    source, out = tmp_path / "in.jsonl", tmp_path / "out.trace"
    os.mkfifo(source)
    out.write_bytes(b"old")
    proc = subprocess.Popen([sys.executable, "-m", "schedulers.cli", "import", str(source), "-o", str(out),
                             "--format", "agentgraph"], stderr=subprocess.PIPE, text=True, cwd=ROOT)
    deadline = time.monotonic() + 30
    while not _leftovers(tmp_path) and time.monotonic() < deadline:  # the temporary output exists
        time.sleep(0.05)
    assert _leftovers(tmp_path), "the import never opened its output"
    proc.send_signal(sig)
    _, err = proc.communicate(timeout=30)
    assert (proc.returncode, err) == (130, "error: interrupted\n")
    assert out.read_bytes() == b"old" and _leftovers(tmp_path) == []


def test_a_255_byte_name_can_be_written(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The longest name a folder allows is written (the temporary name is cut to fit NAME_MAX)."""
    out = tmp_path / ("a" * 251 + ".csv")
    assert main(["import", str(work / "projects"), "-o", str(out)]) == 0
    assert out.read_bytes().startswith(b'{"format":"agentgraph.trace"') and _leftovers(tmp_path) == []
    assert main(["import", str(work / "projects"), "-o", str(out)]) == 0  # replaced, as a name that exists


def test_an_input_named_as_output_is_refused(work: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``import X -o X`` (or through a link) would replace its own input: refused, the input kept."""
    session = next((work / "projects").rglob("*.jsonl"))
    copy = tmp_path / "s.jsonl"
    copy.write_bytes(session.read_bytes())
    (tmp_path / "link.jsonl").symlink_to(copy)
    for out in (copy, tmp_path / "link.jsonl"):
        assert main(["import", str(copy), "-o", str(out)]) == 2
        message = f"error: -o {out} is also a source of this import; write the trace elsewhere\n"
        assert capsys.readouterr().err == message
    assert copy.read_bytes() == session.read_bytes()


def test_an_append_only_folder_is_named_in_the_error(tmp_path: Path) -> None:
    """A folder where files can be made but not removed (chattr +a) is refused, naming the folder."""
    folder = tmp_path / "out"
    folder.mkdir()
    if os.geteuid() != 0 or subprocess.run(["chattr", "+a", str(folder)], capture_output=True).returncode:
        pytest.skip("chattr +a needs root")
    try:
        with pytest.raises(PermissionError) as info:
            output_dir(folder)
        assert (info.value.filename, info.value.strerror) == (str(folder), "Operation not permitted")
    finally:
        subprocess.run(["chattr", "-a", str(folder)], check=True)
