"""Exceptions and warnings raised by agentgraph.

The tree is shallow on purpose::

    AgentgraphError            base of everything agentgraph raises on purpose
    ├── TraceFormatError       a source or trace file cannot be read (carries path and line)
    ├── NothingImportedError   a whole import found no usable hop
    └── UsageError             the caller asked for something that does not exist

Import problems that lose only part of the input are not raised: they are collected as
:class:`ImportIssue` records so the good data around them survives. Each carries an
:class:`IssueKind`, the key the command line groups warnings by.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class AgentgraphError(Exception):
    """Base class of every error agentgraph raises on purpose."""


class TraceFormatError(AgentgraphError):
    """A file cannot be read as the format it claims to be."""

    def __init__(self, message: str, *, path: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = path
        self.line = line
        super().__init__(str(self))

    def __str__(self) -> str:
        where = self.path or "<input>"
        if self.line is not None:
            where = f"{where}:{self.line}"
        return f"{where}: {self.message}"


class NothingImportedError(AgentgraphError):
    """An import read its sources but found no usable hop in any of them."""


class UsageError(AgentgraphError):
    """The caller asked for an unknown name, format or option value."""


class IssueKind(StrEnum):
    """What sort of problem an :class:`ImportIssue` is; the value is its label in grouped warnings.

    One kind per message template (or per family of close ones, such as a Mooncake row's field
    checks): issues of one kind differ only in where they are and in the values they name.
    """

    # files and folders
    MISSING_PATH = "missing path"
    CANNOT_OPEN = "unreadable file"
    CANNOT_LIST = "unlistable folder"
    UNRECOGNIZED_FORMAT = "unrecognized format"
    # lines of any JSONL source
    INVALID_JSON = "invalid JSON line"
    TRUNCATED_LINE = "truncated last line"
    NOT_UTF8 = "line not valid UTF-8"
    NOT_AN_OBJECT = "line not a JSON object"
    LINE_TOO_LONG = "line above the length bound"
    # Claude Code transcripts
    UNUSABLE_LINE = "unusable transcript line"
    UNKNOWN_LINE_TYPE = "lines of unknown type"
    SESSION_COPY = "session copy skipped"
    SESSION_FILE_MISSING = "session file missing"
    INCOMPLETE_REQUEST = "incomplete requests"
    MISSING_MESSAGE = "request messages not in the transcript"
    CONTEXT_GAP = "calls after a missing line"
    OWNER_GUESSED = "owner of copied calls guessed"
    IMPLAUSIBLE_TIME = "calls dated implausibly"
    PROMPT_CAPPED = "prompt above the bound"
    NO_SPAWN = "sub-agent without a spawning call"
    NO_TRANSCRIPT = "sub-agent without a transcript"
    BAD_META = "unusable sub-agent meta"
    # recordings
    RECORDING_HEADER = "missing or unknown recording header"
    UNKNOWN_RECORD = "unknown record kind"
    CALL_SKIPPED = "recorded call not imported"
    NO_SESSION_HEADER = "recorded calls without a session header"
    # Mooncake traces
    ROW_SKIPPED = "Mooncake row skipped"
    DEPENDENCY = "Mooncake dependency ignored or cut"
    FILE_SKIPPED = "unusable Mooncake header"
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class ImportIssue:
    """One problem met while importing; the rest of the input is still imported."""

    path: str
    line: int | None
    message: str
    kind: IssueKind = IssueKind.OTHER

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"
