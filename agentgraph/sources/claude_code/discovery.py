"""Which files make up which session: discovery of session files, session dirs, project dirs
and trees, with sub-agent files and meta files, deduplicated and put in a deterministic order.

Every source of one import is discovered together (:func:`discover`); the result is a list of
:class:`SessionFiles`, ordered by each session file's time span, that the importer then reads one
at a time.
"""

from __future__ import annotations

import math
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

import orjson

from agentgraph.errors import ImportIssue, IssueKind
from agentgraph.sources.jsonl import first_record, line_blocks, parse_time, time_range

__all__ = ["SessionFiles", "discover"]


@dataclass(slots=True)
class SessionFiles:
    """A session file and the files of its sub-agents (``meta`` is None before 2.1.x).

    ``span`` is (earliest, latest) timestamp of its calls, set by :func:`discover` (see :func:`_span`).
    """

    session_id: str
    main: Path | None
    agents: list[tuple[Path, Path | None]] = field(default_factory=list)
    span: tuple[float, float] = (float("inf"), float("inf"))

    def paths(self) -> list[Path]:
        return ([self.main] if self.main else []) + [p for p, _ in self.agents]


def discover(paths: Iterable[Path], issues: list[ImportIssue]) -> list[SessionFiles]:
    """Group transcript files into sessions: files, session dirs, project dirs or trees.

    All sources are discovered together and the result does not depend on their order: a file
    named twice (or a project inside a tree also given) is read once; of several copies of a
    session (same id, different directories) the one at the smallest path is read and the others
    are reported; sessions are ordered by :func:`_span` (earliest, then latest timestamp, whatever
    the order of the lines), then by id. Unreadable directories become issues.
    """
    found = _Found(issues)
    for path in paths:
        if path.is_file():
            found.project(path.parent, only=path)
        elif (path / "subagents").is_dir() and path.parent.is_dir():
            found.project(path.parent, only=path.parent / f"{path.name}.jsonl")
        elif path.is_dir():
            for project in _project_dirs(path, issues):
                found.project(project, only=None)
        elif path.exists():  # a device or a pipe: transcripts are regular files
            issues.append(ImportIssue(str(path), None, "not a regular file or directory; skipped",
                                      IssueKind.CANNOT_OPEN))
        else:
            issues.append(ImportIssue(str(path), None, "no such file or directory", IssueKind.MISSING_PATH))
    sessions = found.finish()
    for files in sessions:
        files.span = _span(files, issues)
    return sorted(sessions, key=lambda f: (*f.span, f.session_id))


def _listing(directory: Path, pattern: str, issues: list[ImportIssue]) -> list[Path]:
    try:
        return sorted(directory.glob(pattern))
    except OSError as exc:
        issues.append(ImportIssue(str(directory), None, f"cannot list: {exc.strerror or exc}",
                                  IssueKind.CANNOT_LIST))
        return []


def _foreign(path: Path) -> bool:
    """A file of another format (recording, native trace, Mooncake) inside a transcript tree."""
    rec = first_record(path)
    return rec is not None and ("format" in rec or "schema" in rec or "hash_ids" in rec)


def _project_dirs(root: Path, issues: list[ImportIssue]) -> Iterator[Path]:
    try:
        children = sorted(root.iterdir())
    except OSError as exc:
        issues.append(ImportIssue(str(root), None, f"cannot list: {exc.strerror or exc}; skipped",
                                  IssueKind.CANNOT_LIST))
        return
    if any((p.suffix == ".jsonl" and not _foreign(p)) or (p / "subagents").is_dir() for p in children):
        yield root  # holds session files, or session dirs whose files are gone
        return
    for child in children:
        if child.is_dir() and child.name != "subagents":
            yield from _project_dirs(child, issues)


class _Found:
    """Candidate files, collected from every source, then resolved into sessions."""

    def __init__(self, issues: list[ImportIssue]) -> None:
        self.issues = issues
        self.seen: set[Path] = set()
        self.places: dict[str, set[Path]] = {}  # session -> project dirs holding it (or its dir)
        self.agent_files: dict[str, list[tuple[Path, Path]]] = {}  # session -> (project, file)

    def _new(self, path: Path) -> bool:
        real = path.resolve()
        if real in self.seen:
            return False
        self.seen.add(real)
        return True

    def project(self, project: Path, only: Path | None) -> None:
        only_agent = only is not None and only.name.startswith("agent-")
        if only is None:
            listed = [p for p in _listing(project, "*.jsonl", self.issues)
                      if not p.name.startswith("agent-") and not _foreign(p)]
            dirs = [d.parent.name for d in _listing(project, "*/subagents", self.issues)]
            sids = sorted({p.stem for p in listed} | set(dirs))
        else:
            sids = [] if only_agent else [only.stem]
        for sid in sids:
            self.places.setdefault(sid, set()).add(project)
            for agent_file in _listing(project / sid / "subagents", "agent-*.jsonl", self.issues):
                self._agent(sid, project, agent_file)
        loose = [only] if only_agent and only is not None else []
        if only is None or not only_agent:
            loose += _listing(project, "agent-*.jsonl", self.issues)
        for agent_file in loose:
            rec = first_record(agent_file)
            sid = str(rec.get("sessionId")) if rec and rec.get("sessionId") else agent_file.stem
            if only is None or agent_file == only or sid == only.stem:
                self._agent(sid, project, agent_file)

    def _agent(self, sid: str, project: Path, agent_file: Path) -> None:
        if self._new(agent_file):
            self.agent_files.setdefault(sid, []).append((project, agent_file))

    def finish(self) -> list[SessionFiles]:
        out = []
        for sid in sorted(set(self.places) | set(self.agent_files)):
            out.append(self._resolve(sid))
        return out

    def _resolve(self, sid: str) -> SessionFiles:
        places = sorted(self.places.get(sid, ()))
        with_file = [p for p in places if (p / f"{sid}.jsonl").is_file()]
        chosen: Path | None = (with_file or places)[0] if (with_file or places) else None
        for other in with_file[1:]:
            self.issues.append(ImportIssue(str(other / f"{sid}.jsonl"), None, f"session {sid} "
                                           f"is read from {with_file[0] / f'{sid}.jsonl'}; this copy is skipped",
                                           IssueKind.SESSION_COPY))
        main = chosen / f"{sid}.jsonl" if chosen is not None and chosen in with_file else None
        if chosen is not None and main is None:
            self.issues.append(ImportIssue(str(chosen / f"{sid}.jsonl"), None, "session file "
                                           "missing; importing its sub-agents only",
                                           IssueKind.SESSION_FILE_MISSING))
        copies = set(places) - {chosen}
        agents = sorted((f for project, f in self.agent_files.get(sid, ()) if project not in copies),
                        key=lambda f: (f.name, str(f)))
        files = SessionFiles(sid, main)
        names: set[str] = set()
        for f in agents:
            if f.name in names:
                continue  # the same sub-agent file in two places
            names.add(f.name)
            meta = f.with_suffix(".meta.json")
            files.agents.append((f, meta if meta.is_file() else None))
        return files


def _span(files: SessionFiles, issues: list[ImportIssue]) -> tuple[float, float]:
    """Earliest and latest timestamp of the session file's calls (of all its lines if it has
    none; earliest of its sub-agents' files if it has no file). A resumed session copies the
    original's calls (same earliest time) but ends later, so the original sorts first and keeps
    its calls, in any line order and whatever lines without a call say (:func:`call_span`)."""
    inf = float("inf")
    if files.main is not None:
        span = call_span(files.main, issues)
        return span if span is not None else time_range(files.main) or (inf, inf)
    firsts = [span[0] for path, _ in files.agents if (span := time_range(path)) is not None]
    return (min(firsts, default=inf), inf)


EARLIEST_S, LATEST_S = 1672531200.0, 4102444800.0
"""Call timestamps outside [2023-01-01, 2100-01-01) UTC are not real: they do not count in a span."""

_REQUEST_ID = re.compile(rb'"requestId" ?: ?"')


def call_span(path: Path, issues: list[ImportIssue]) -> tuple[float, float] | None:
    """Earliest and latest ``timestamp`` of the lines that carry a legacy call (``assistant`` lines
    with ``message.id`` and ``requestId``, the calls :class:`~.legacy._CallOwners` shares out),
    whatever the order of the lines; None if there is none (or the file is unreadable).

    Only lines naming ``"requestId"`` are parsed (an assistant line is a few KB, so this costs a
    few percent of an import). A call's timestamp outside :data:`EARLIEST_S` .. :data:`LATEST_S`
    does not count and is reported: a span must not rest on it.
    """
    times: list[float] = []
    odd = 0
    try:
        with open(path, "rb") as f:
            for block in line_blocks(f):
                for line in _lines_matching(block, _REQUEST_ID):
                    t = _call_time(line)
                    if t is not None and EARLIEST_S <= t < LATEST_S:
                        times.append(t)
                    odd += t is not None and not EARLIEST_S <= t < LATEST_S
    except OSError:
        return None
    if odd:
        issues.append(ImportIssue(str(path), None, f"{odd} call(s) with a timestamp before 2023 or "
                                  "after 2099; they do not count in the session's time span (the order "
                                  "of sessions and the owner of calls copied by a resumed session)",
                                  IssueKind.IMPLAUSIBLE_TIME))
    return (min(times), max(times)) if times else None


def _lines_matching(block: bytes, pattern: re.Pattern[bytes]) -> Iterator[bytes]:
    end = 0
    for m in pattern.finditer(block):
        if m.start() < end:
            continue  # a second match on the same line
        start = block.rfind(b"\n", 0, m.start()) + 1
        end = block.find(b"\n", m.end())
        end = len(block) if end < 0 else end + 1
        yield block[start:end]


def _call_time(line: bytes) -> float | None:
    """The timestamp of a line that carries a call, or None (not such a line, or no time)."""
    try:
        rec = orjson.loads(line)
    except orjson.JSONDecodeError:
        return None
    if not isinstance(rec, dict) or rec.get("type") != "assistant" or not rec.get("requestId"):
        return None
    message = rec.get("message")
    if not isinstance(message, dict) or not message.get("id"):
        return None
    t = parse_time(rec.get("timestamp"))
    return t if t is not None and math.isfinite(t) else None
