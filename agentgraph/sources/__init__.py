"""Importers: Claude Code transcripts, Mooncake traces and native trace files → :class:`Trace`.

``import_paths`` detects each source's format (``--format`` forces one) and streams: sessions are
read one at a time and handed to a sink, so memory does not grow with the number of sessions.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from agentgraph.errors import ImportIssue, IssueKind, UsageError
from agentgraph.model import Trace
from agentgraph.sources.claude_code import ClaudeCodeImporter, looks_like_claude_code
from agentgraph.sources.jsonl import first_record
from agentgraph.tokens import DEFAULT_BLOCK_SIZE

FORMATS = ("agentgraph", "claude-code", "mooncake", "recording")

__all__ = ["FORMATS", "ImportResult", "detect_format", "import_paths", "iter_import"]


@dataclass(frozen=True, slots=True)
class ImportResult:
    """A whole import: the trace and every problem met on the way."""

    trace: Trace
    issues: tuple[ImportIssue, ...]


def detect_format(path: Path) -> str | None:
    """``agentgraph``, ``claude-code``, ``mooncake`` or ``recording`` from a path and its first line."""
    if path.is_dir():
        return "claude-code"
    rec = first_record(path)
    if rec is None:
        return "claude-code" if path.suffix == ".jsonl" and path.stat().st_size else None
    if rec.get("format") == "agentgraph.trace":
        return "agentgraph"
    if rec.get("format") == "agentgraph.record":
        return "recording"
    if "hash_ids" in rec or "input_length" in rec or str(rec.get("schema", "")).startswith("dynamo"):
        return "mooncake"
    if looks_like_claude_code(rec):
        return "claude-code"
    return None


def iter_import(
    sources: Sequence[str | Path],
    issues: list[ImportIssue],
    *,
    format: str | None = None,
    block_size: int | None = None,
    measure_cpu: bool = False,
) -> Iterator[Trace]:
    """Yield the trace of each source session by session; problems go to ``issues``.

    Checked at the call, before anything is read: an unknown ``format`` raises
    :class:`UsageError`, a source that does not exist :class:`FileNotFoundError` naming it as
    given (the first one; any others in the same message). ``measure_cpu`` times each hop's
    request assembly on its real body (Claude Code transcripts and full recordings); see
    :mod:`agentgraph.costs` for parse and validate.
    """
    if format is not None and format not in FORMATS:
        raise UsageError(f"unknown format {format!r}; valid: {', '.join(FORMATS)}")
    paths = _existing(sources)
    return _iter_import(paths, issues, format, block_size, measure_cpu)


def _existing(sources: Sequence[str | Path]) -> list[Path]:
    """``sources`` as paths (``~`` expanded), or :class:`FileNotFoundError` naming the first missing
    one as given (``error: PATH: No such file or directory``), the others after it on the same line."""
    paths = [Path(source).expanduser() for source in sources]
    missing = [str(source) for source, path in zip(sources, paths, strict=True) if not path.exists()]
    if missing:
        also = f" (also missing: {', '.join(missing[1:])})" if missing[1:] else ""
        raise FileNotFoundError(errno.ENOENT, os.strerror(errno.ENOENT) + also, missing[0])
    return paths


def _iter_import(paths: list[Path], issues: list[ImportIssue], format: str | None, block_size: int | None,
                 measure_cpu: bool) -> Iterator[Trace]:
    claude_paths: list[Path] = []
    seen: set[Path] = set()
    for path in paths:
        if path.resolve() in seen:
            continue  # the same file named twice is read once
        seen.add(path.resolve())
        kind = format or detect_format(path)
        if kind is None:
            issues.append(ImportIssue(str(path), 1, "unrecognized format (not a Claude Code "
                                      "transcript, Mooncake trace or agentgraph trace); skipped",
                                      IssueKind.UNRECOGNIZED_FORMAT))
        elif kind == "claude-code":
            claude_paths.append(path)  # discovered together: one order, each file once
            for inner in _foreign_files(path):  # recordings, traces beside transcripts
                if inner.resolve() not in seen:
                    seen.add(inner.resolve())
                    yield from _read_one(inner, detect_format(inner) or "", issues, block_size, measure_cpu)
        else:
            yield from _read_one(path, kind, issues, block_size, measure_cpu)
    if claude_paths:
        importer = ClaudeCodeImporter(block_size or DEFAULT_BLOCK_SIZE, measure_cpu)
        yield from importer.sessions(claude_paths, issues)


def _read_one(path: Path, kind: str, issues: list[ImportIssue], block_size: int | None,
              measure_cpu: bool = False) -> Iterator[Trace]:
    if kind == "recording":
        from agentgraph.sources.recording import read_recording

        yield from read_recording(path, issues, ClaudeCodeImporter(block_size or DEFAULT_BLOCK_SIZE, measure_cpu))
    elif kind in _READERS:
        yield _READERS[kind](path, issues, block_size)


def _foreign_files(path: Path) -> list[Path]:
    """Files under a directory that are not Claude Code transcripts (sorted)."""
    if not path.is_dir():
        return []
    return [p for p in sorted(path.rglob("*.jsonl")) + sorted(path.rglob("*.trace"))
            if p.is_file() and detect_format(p) not in (None, "claude-code")]


def _mooncake(path: Path, issues: list[ImportIssue], block_size: int | None) -> Trace:
    from agentgraph.sources.mooncake import read_mooncake

    return _at_block_size(read_mooncake(path, issues), block_size, path)


def _native(path: Path, issues: list[ImportIssue], block_size: int | None) -> Trace:
    from agentgraph.traceio import load

    return _at_block_size(load(path), block_size, path)


def _at_block_size(trace: Trace, block_size: int | None, path: Path) -> Trace:
    if block_size is None or block_size == trace.block_size:
        return trace
    if block_size % trace.block_size:
        raise UsageError(f"{path}: blocks of {trace.block_size} tokens cannot be re-hashed at "
                         f"{block_size}; only multiples of {trace.block_size} are exact")
    return trace.coarsened(block_size // trace.block_size)


_READERS: dict[str, Callable[[Path, list[ImportIssue], int | None], Trace]] = {
    "agentgraph": _native,
    "mooncake": _mooncake,
}


def import_paths(
    sources: Sequence[str | Path],
    *,
    format: str | None = None,
    block_size: int | None = None,
) -> ImportResult:
    """Import every source into one :class:`Trace` (for notebooks; the CLI streams instead).

    Sources of different block sizes are an error unless ``block_size`` names one they all
    reach exactly.
    """
    issues: list[ImportIssue] = []
    parts = list(iter_import(sources, issues, format=format, block_size=block_size))
    return ImportResult(merge(parts), tuple(issues))


def merge(parts: Sequence[Trace]) -> Trace:
    """One trace from several parts of the same block size."""
    sizes = sorted({p.block_size for p in parts})
    if len(sizes) > 1:
        raise UsageError(f"sources have different block sizes {sizes}; pass a block size that "
                         "is a multiple of all of them")
    return Trace(
        tuple(h for p in parts for h in p.hop_list),
        tuple(e for p in parts for e in p.edges),
        tuple(a for p in parts for a in p.agents),
        sizes[0] if sizes else (DEFAULT_BLOCK_SIZE),
        {},
        {sid: schema for p in parts for sid, schema in p.schemas.items()},
    )
