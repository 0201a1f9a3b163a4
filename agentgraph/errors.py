"""Exceptions and warnings raised by agentgraph.

The tree is shallow on purpose::

    AgentgraphError            base of everything agentgraph raises on purpose
    ├── TraceFormatError       a source or trace file cannot be read (carries path and line)
    ├── NothingImportedError   a whole import found no usable hop
    └── UsageError             the caller asked for something that does not exist

Import problems that lose only part of the input are not raised: they are collected as
:class:`ImportIssue` records so the good data around them survives.
"""

from __future__ import annotations

from dataclasses import dataclass


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


@dataclass(frozen=True, slots=True)
class ImportIssue:
    """One problem met while importing; the rest of the input is still imported."""

    path: str
    line: int | None
    message: str

    def __str__(self) -> str:
        where = self.path if self.line is None else f"{self.path}:{self.line}"
        return f"{where}: {self.message}"
