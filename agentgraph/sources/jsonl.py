"""Tolerant JSONL reading shared by the importers: bad lines become issues, never exceptions."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

from agentgraph.errors import ImportIssue


def read_records(path: Path, issues: list[ImportIssue]) -> Iterator[tuple[int, dict[str, Any]]]:
    """Yield ``(line number, object)`` for each JSON object line; report every other line."""
    try:
        f = open(path, "rb")  # noqa: SIM115 - closed by the with below; open errors are reported
    except OSError as exc:
        issues.append(ImportIssue(str(path), None, f"cannot open: {exc.strerror or exc}"))
        return
    with f:
        pending: tuple[int, bytes] | None = None
        for lineno, raw in enumerate(f, 1):
            if pending is not None:
                _report_bad(path, *pending, issues, last=False)
                pending = None
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
                issues.append(ImportIssue(str(path), lineno, f"expected a JSON object, got {_kind(rec)}"))
        if pending is not None:
            _report_bad(path, *pending, issues, last=True)


def first_record(path: Path) -> dict[str, Any] | None:
    """The first JSON object line of a file, or None (no issue is reported)."""
    try:
        with open(path, "rb") as f:
            for raw in f:
                if raw.strip():
                    try:
                        rec = orjson.loads(raw)
                    except orjson.JSONDecodeError:
                        return None
                    return rec if isinstance(rec, dict) else None
    except OSError:
        return None
    return None


def first_time(path: Path, max_lines: int = 200) -> float | None:
    """The first ``timestamp`` among a file's first lines (files may open with untimed lines)."""
    try:
        with open(path, "rb") as f:
            return _time_among(line for _, line in zip(range(max_lines), f, strict=False))
    except OSError:
        return None


def last_time(path: Path, tail_bytes: int = 1 << 16) -> float | None:
    """The last ``timestamp`` of a file, reading backwards from the end in growing windows."""
    try:
        with open(path, "rb") as f:
            size = f.seek(0, 2)
            window = tail_bytes
            while True:
                start = max(0, size - window)
                f.seek(max(0, start - 1))
                chunk = f.read(size - max(0, start - 1))
                # the window's first line is whole only if it starts the file or follows a newline
                whole = start == 0 or chunk[:1] == b"\n"
                lines = (chunk[1:] if start else chunk).splitlines()
                found = _time_among(reversed(lines if whole else lines[1:]))
                if found is not None or start == 0:
                    return found
                window *= 4
    except OSError:
        return None


def _time_among(lines: Iterable[bytes]) -> float | None:
    """The timestamp of the first line, in the given order, that has a valid one."""
    for raw in lines:
        try:
            rec = orjson.loads(raw)
        except orjson.JSONDecodeError:
            continue
        t = parse_time(rec.get("timestamp")) if isinstance(rec, dict) else None
        if t is not None:
            return t
    return None


def _report_bad(path: Path, lineno: int, raw: bytes, issues: list[ImportIssue], *, last: bool) -> None:
    try:
        raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        message = f"line is not valid UTF-8 (byte {exc.start}); skipped"
    else:
        if last and not raw.endswith(b"\n"):
            message = "truncated last line (no newline, incomplete JSON); skipped"
        else:
            message = "invalid JSON; skipped"
    issues.append(ImportIssue(str(path), lineno, message))


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
