"""Tolerant JSONL reading shared by the importers: bad lines become issues, never exceptions."""

from __future__ import annotations

import functools
import io
import os
import re
import stat
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import IO, Any

import orjson

from agentgraph.errors import ImportIssue, IssueKind

MAX_LINE_BYTES = 64 << 20
"""The longest line (64 MiB, newline excluded) any reader accepts: Claude Code's longest lines
(an assistant or user line holding a large tool result) are a few MB. A longer line is skipped
without being held in memory; a reader's memory stays bounded whatever its input."""


def too_long(limit: int = MAX_LINE_BYTES) -> str:
    """The message for a skipped over-long line."""
    return f"line longer than {limit:,} bytes; skipped"


def bounded_lines(f: IO[bytes], limit: int = MAX_LINE_BYTES) -> Iterator[tuple[int, bytes | None]]:
    """``(line number, line)`` for each line of ``f``; ``None`` for a line longer than ``limit``.

    At most ``limit + 1`` bytes are held at once. The rest of an over-long line is read and
    dropped in pieces; in a file that is not regular (a device or a pipe, which may never end)
    reading stops at the first over-long line instead.

    >>> import io
    >>> list(bounded_lines(io.BytesIO(b"ab\\n" + b"x" * 9 + b"\\ncd"), limit=4))
    [(1, b'ab\\n'), (2, None), (3, b'cd')]
    """
    for lineno, raw in enumerate(iter(functools.partial(f.readline, limit + 1), b""), 1):
        if len(raw) <= limit or raw.endswith(b"\n"):
            yield lineno, raw
            continue
        yield lineno, None
        if not _regular(f):
            return
        _skip_line(f)


def _skip_line(f: IO[bytes], piece: int = 1 << 20) -> None:
    """Read past the next newline of a regular file, holding one ``piece`` at a time."""
    while chunk := f.read(piece):
        if (nl := chunk.find(b"\n")) >= 0:
            f.seek(nl + 1 - len(chunk), io.SEEK_CUR)
            return


def _regular(f: IO[bytes]) -> bool:
    try:
        return stat.S_ISREG(os.fstat(f.fileno()).st_mode)
    except (OSError, ValueError, io.UnsupportedOperation):
        return True  # an in-memory stream: it ends


def read_records(path: Path, issues: list[ImportIssue]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each JSON object line; report every other line."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below; open errors are reported
    except OSError as exc:
        issues.append(ImportIssue(str(path), None, f"cannot open: {exc.strerror or exc}",
                                  kind=IssueKind.CANNOT_OPEN))
        return
    with f:
        pending: tuple[int, bytes] | None = None
        # bounded_lines inlined: one generator less per line on the importers' hot path
        for lineno, raw in enumerate(iter(functools.partial(f.readline, MAX_LINE_BYTES + 1), b""), 1):
            if pending is not None:
                _report_bad(path, *pending, issues, last=False)
                pending = None
            if len(raw) > MAX_LINE_BYTES and not raw.endswith(b"\n"):
                issues.append(ImportIssue(str(path), lineno, too_long(), IssueKind.LINE_TOO_LONG))
                if not _regular(f):
                    break
                _skip_line(f)
                continue
            if not raw.strip():
                continue
            try:
                rec = orjson.loads(raw)
            except orjson.JSONDecodeError:
                pending = (lineno, raw)
                continue
            if isinstance(rec, dict):
                yield lineno, rec
            else:
                issues.append(ImportIssue(str(path), lineno, f"expected a JSON object, got {_kind(rec)}",
                                          kind=IssueKind.NOT_AN_OBJECT))
        if pending is not None:
            _report_bad(path, *pending, issues, last=True)


def first_record(path: Path) -> dict[str, Any] | None:
    """The first JSON object line of a file, or None (no issue is reported).

    Bounded: the first line that is not blank decides, and it must be within the first
    :data:`MAX_LINE_BYTES` bytes.
    """
    seen = 0
    try:
        with open(path, "rb") as f:
            for _, raw in bounded_lines(f):
                if raw is None or seen > MAX_LINE_BYTES:
                    return None
                seen += len(raw)
                if raw.strip():
                    try:
                        rec = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        return None
                    return rec if isinstance(rec, dict) else None
    except OSError:
        return None
    return None


def time_range(path: Path, chunk_bytes: int = 1 << 24) -> tuple[float, float] | None:
    """The earliest and latest ``timestamp`` in a file, whatever the order of its lines.

    A regex scan, no JSON parsing (about 2 GB/s): every ``"timestamp": "..."`` member counts,
    nested ones included. Claude Code's own spelling (``2025-11-03T10:02:47.091Z``, JavaScript's
    ``toISOString``) orders as text, so only the extremes of a chunk are parsed; a chunk with
    any other spelling has each distinct value parsed. Unparsable values are ignored; a file
    without any valid one (or unreadable) gives None.
    """
    lo, hi = float("inf"), float("-inf")
    try:
        with open(path, "rb") as f:
            for block in line_blocks(f, chunk_bytes):
                lo, hi = _widen(block, lo, hi)
    except OSError:
        return None
    return (lo, hi) if lo <= hi else None


def line_blocks(f: IO[bytes], chunk_bytes: int = 1 << 24, limit: int = MAX_LINE_BYTES) -> Iterator[bytes]:
    """The bytes of ``f`` in blocks of whole lines (the last one may lack its newline), for scans
    that need no line numbers. Lines longer than ``limit`` are left out, as by :func:`bounded_lines`:
    at most ``chunk_bytes + limit`` bytes are held.

    >>> import io
    >>> list(line_blocks(io.BytesIO(b"a\\n" + b"x" * 9 + b"\\nb\\nc"), chunk_bytes=3, limit=4))
    [b'a\\n', b'b\\n', b'c']
    """
    carry, skipping = b"", False
    while chunk := f.read(chunk_bytes):
        if skipping:  # the rest of an over-long line
            nl = chunk.find(b"\n")
            if nl < 0:
                continue
            chunk, skipping = chunk[nl + 1 :], False
        cut = chunk.rfind(b"\n") + 1  # a member never spans lines: hand over whole lines only
        if cut:
            block, carry = carry + chunk[:cut], chunk[cut:]
            yield block
        else:
            carry += chunk
        if len(carry) > limit:
            carry, skipping = b"", True
            if not _regular(f):
                return
    if carry and not skipping:
        yield carry


_STAMP = re.compile(rb'"timestamp" ?: ?"([^"\\\n]{1,64})"')
_ISO_MS = re.compile(rb"(?:\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z)+")


def _widen(data: bytes, lo: float, hi: float) -> tuple[float, float]:
    stamps = _STAMP.findall(data)
    if not stamps:
        return lo, hi
    first, last = min(stamps), max(stamps)
    if set(map(len, stamps)) == {24} and _ISO_MS.fullmatch(b"".join(stamps)):
        ends = [t for s in (first, last) if (t := parse_time(s.decode())) is not None]
        if len(ends) == 2:  # fixed-width UTC fields: text order is time order
            return min(lo, ends[0]), max(hi, ends[1])
    times = [t for s in set(stamps) if (t := parse_time(s.decode(errors="replace"))) is not None]
    return (min(lo, *times), max(hi, *times)) if times else (lo, hi)


def _report_bad(path: Path, lineno: int, raw: bytes, issues: list[ImportIssue], *, last: bool) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message, kind = f"line is not valid UTF-8 (byte {exc.start}); skipped", IssueKind.NOT_UTF8
    else:
        if last and not raw.endswith(b"\n"):
            message, kind = "truncated last line (no newline, incomplete JSON); skipped", IssueKind.TRUNCATED_LINE
        else:
            message, kind = "invalid JSON; skipped", IssueKind.INVALID_JSON
    issues.append(ImportIssue(str(path), lineno, message, kind))


def _kind(value: object) -> str:
    return {list: "an array", str: "a string", int: "a number", float: "a number",
            bool: "a boolean"}.get(type(value), "null")


def parse_time(value: object) -> float | None:
    """Seconds since the epoch from an ISO-8601 timestamp (``...Z`` accepted; no zone = UTC).

    >>> parse_time("1970-01-01T00:01:00Z"), parse_time("1970-01-01T00:01:00"), parse_time(5)
    (60.0, 60.0, None)
    """
    if not isinstance(value, str):
        return None
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        return None
    if moment.tzinfo is None:  # Claude Code writes UTC ("...Z"); never the machine's zone
        moment = moment.replace(tzinfo=UTC)
    return moment.timestamp()


MAX_TOKENS = 100_000_000
"""No real request or response has more tokens: larger counts are corrupt data."""


def as_int(value: object) -> int:
    """A count field already checked by :func:`token_count`: ints (and integral floats) as is,
    anything else 0."""
    if isinstance(value, float) and value.is_integer():
        return int(value)
    return value if isinstance(value, int) and not isinstance(value, bool) else 0


def token_count(value: object, field: str) -> int:
    """A token count from a source: absent is 0, integral floats are integers, and anything but
    an integer in [0, 1e8] is an error.

    >>> token_count(12, "input_tokens"), token_count(None, "input_tokens"), token_count(7.0, "x")
    (12, 0, 7)
    """
    if value is None:
        return 0
    if isinstance(value, float) and value.is_integer() and 0 <= value <= MAX_TOKENS:
        return int(value)
    if isinstance(value, bool) or not isinstance(value, int) or not 0 <= value <= MAX_TOKENS:
        raise ValueError(f"{field} must be an integer in [0, {MAX_TOKENS}], got {value!r}")
    return value
