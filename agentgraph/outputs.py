"""Writing output files without destroying what a path points to: the one helper every command
(and :func:`agentgraph.save`, the plots, the notebooks) writes through.

What ``PATH`` is decides how it is written (``docs/cli.md``):

- a regular file, or nothing yet: a temporary file beside it, renamed over it once complete, so a
  failed write leaves the old file as it was. A new file gets the mode an ordinary
  ``open(PATH, "w")`` would give (``0666`` less the umask); an existing one keeps its mode (and
  owner, where the writer may set it). A file the writer may not write is refused, as ``open``
  would refuse it.
- a symlink: followed; its final target is written as above, atomically beside the target.
- a character device, FIFO or socket: written directly, never renamed over (``-o /dev/null``
  discards, ``-o /dev/full`` fails with ``No space left on device``, a FIFO feeds its reader).
- a block device: refused (writing a trace over a disk is never what was meant).
- a directory: refused with ``Is a directory``.

Every failure is an :class:`OSError` naming ``PATH`` as the caller gave it, so the CLI prints it as
one line, ``error: PATH: reason``.

>>> import tempfile, pathlib
>>> folder = pathlib.Path(tempfile.mkdtemp())
>>> write_output(folder / "a.txt", b"hello\\n").read_bytes()
b'hello\\n'
>>> with open_output(folder / "a.txt") as f:
...     _ = f.write(b"replaced\\n")
>>> (folder / "a.txt").read_text()
'replaced\\n'
"""

from __future__ import annotations

import errno
import io
import os
import socket
import stat
import tempfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager, suppress
from pathlib import Path
from typing import TYPE_CHECKING, BinaryIO, TypeVar, cast

if TYPE_CHECKING:
    from _typeshed import ReadableBuffer

__all__ = ["open_output", "output_dir", "write_output"]

BUFFER_BYTES = 1 << 20
_T = TypeVar("_T")


@contextmanager
def open_output(path: str | Path) -> Iterator[BinaryIO]:
    """A binary stream that ends up in ``path`` by the rules of this module.

    For a regular file the content appears whole when the ``with`` block ends without an
    exception, and not at all when it raises.
    """
    label = str(path)
    target, st = _resolve(Path(path), label)
    if st is not None and not stat.S_ISREG(st.st_mode):
        with _direct(target, st, label) as stream:
            yield stream
        return
    with _replacing(target, st, label) as stream:
        yield stream


def write_output(path: str | Path, data: bytes | str) -> Path:
    """Write ``data`` (str as UTF-8) to ``path`` through :func:`open_output`; returns ``path``."""
    with open_output(path) as out:
        out.write(data.encode() if isinstance(data, str) else data)
    return Path(path)


def output_dir(path: str | Path) -> Path:
    """``path`` as a folder to write files into: created (with its parents) when missing, a
    symlink to a folder followed; anything else, or a folder this process cannot create files
    in, is an :class:`OSError` naming ``path``."""
    label, folder = str(path), Path(path)
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # exists, and is not a folder (nor a link to one)
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), label) from None
    except OSError as exc:
        raise _named(exc, label) from None
    try:  # can files be made in it? (access() says yes to root even on a read-only mount)
        fd, probe = tempfile.mkstemp(prefix=".agentgraph-probe.", dir=folder)
    except OSError as exc:
        raise _named(exc, label) from None
    os.close(fd)
    _call(lambda: os.unlink(probe), label)  # an append-only folder keeps it: its files could not be replaced
    return folder


def _resolve(path: Path, label: str) -> tuple[Path, os.stat_result | None]:
    """The file a write to ``path`` lands in (symlinks followed) and its status, if it exists."""
    target = Path(os.path.realpath(path)) if path.is_symlink() else path
    try:
        st = target.stat()
    except FileNotFoundError:
        return target, None
    except OSError as exc:
        raise _named(exc, label) from None
    if stat.S_ISDIR(st.st_mode):
        raise IsADirectoryError(errno.EISDIR, os.strerror(errno.EISDIR), label)
    if stat.S_ISBLK(st.st_mode):
        raise OSError(errno.EINVAL, "is a block device; refusing to write over a disk", label)
    return target, st


@contextmanager
def _replacing(target: Path, st: os.stat_result | None, label: str) -> Iterator[BinaryIO]:
    if st is not None and not os.access(target, os.W_OK):
        raise PermissionError(errno.EACCES, os.strerror(errno.EACCES), label)
    try:
        target.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{_short(target.name)}.", suffix=".tmp", dir=target.parent)
    except FileExistsError:  # a folder on the way is a file
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), label) from None
    except OSError as exc:
        raise _named(exc, label) from None
    try:
        os.fchmod(fd, 0o666 & ~_umask() if st is None else stat.S_IMODE(st.st_mode))
        if st is not None and (st.st_uid, st.st_gid) != (os.geteuid(), os.getegid()):
            with suppress(PermissionError):  # only a privileged writer can give the file back
                os.fchown(fd, st.st_uid, st.st_gid)
        with _stream(lambda b: os.write(fd, b), lambda: os.close(fd), label) as stream:
            yield stream
            stream.flush()
            _call(lambda: os.fsync(fd), label)  # the content is on disk before the name moves
        _call(lambda: os.replace(tmp, target), label)
    except BaseException:
        with suppress(FileNotFoundError):
            os.unlink(tmp)
        raise


@contextmanager
def _direct(target: Path, st: os.stat_result, label: str) -> Iterator[BinaryIO]:
    """A device, FIFO or socket: opened and written in place (opening a FIFO waits for its
    reader, as a shell redirection does)."""
    if stat.S_ISSOCK(st.st_mode):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        _call(lambda: sock.connect(str(target)), label, on_error=sock.close)
        with _stream(sock.send, sock.close, label) as stream:
            yield stream
        return
    fd = _call(lambda: os.open(target, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_CLOEXEC), label)
    with _stream(lambda b: os.write(fd, b), lambda: os.close(fd), label) as stream:
        yield stream


@contextmanager
def _stream(write: Callable[[memoryview], int], close: Callable[[], None], label: str) -> Iterator[BinaryIO]:
    raw = _Raw(write, close, label)
    stream = io.BufferedWriter(raw, BUFFER_BYTES)
    try:
        yield cast(BinaryIO, stream)
        stream.flush()  # a write error surfaces here, named, before anything else happens
    except BaseException:
        with suppress(OSError, ValueError):  # the first error is the one worth reporting
            stream.close()
        with suppress(OSError):
            raw.close()
        raise
    stream.close()


class _Raw(io.RawIOBase):
    """Unbuffered writes through ``write``, every OSError named after the output path."""

    def __init__(self, write: Callable[[memoryview], int], close: Callable[[], None], label: str) -> None:
        super().__init__()
        self._write, self._close, self._label = write, close, label

    def writable(self) -> bool:
        return True

    def write(self, b: ReadableBuffer) -> int:
        return _call(lambda: self._write(memoryview(b)), self._label)

    def close(self) -> None:
        if not self.closed:
            try:
                _call(self._close, self._label)
            finally:
                super().close()


def _call(fn: Callable[[], _T], label: str, on_error: Callable[[], None] | None = None) -> _T:
    try:
        return fn()
    except OSError as exc:
        if on_error is not None:
            on_error()
        raise _named(exc, label) from None


def _named(exc: OSError, label: str) -> OSError:
    """``exc`` as the same kind of OSError, naming the output path as the caller gave it."""
    if exc.errno is None:
        return OSError(errno.EIO, str(exc) or type(exc).__name__, label)
    return OSError(exc.errno, exc.strerror or os.strerror(exc.errno), label)


def _short(name: str, most: int = 200) -> str:
    """``name`` cut to ``most`` bytes, so the temporary name stays within NAME_MAX (255 bytes)."""
    return os.fsdecode(os.fsencode(name)[:most])


def _umask() -> int:
    try:  # Linux >= 4.7 shows it without changing it
        with open("/proc/self/status", "rb") as f:
            for line in f:
                if line.startswith(b"Umask:"):
                    return int(line.split()[1], 8)
    except (OSError, ValueError, IndexError):
        pass
    mask = os.umask(0o022)
    os.umask(mask)
    return mask
