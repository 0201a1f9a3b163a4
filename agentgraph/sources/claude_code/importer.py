"""The entry points: :class:`ClaudeCodeImporter` runs the stages per session, and format detection.

For each discovered session: read its files (:mod:`.lines`), make calls per agent with the
generation its lines are in (:mod:`.current` if they have ``api-request`` lines, else
:mod:`.legacy`), then :meth:`ClaudeCodeImporter.assemble` sizes, hashes (:mod:`.hops`) and links
them (:mod:`.linking`) into one :class:`~agentgraph.model.Trace`.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import orjson

from agentgraph.errors import ImportIssue, IssueKind
from agentgraph.model import MAIN_AGENT, Hop, Trace
from agentgraph.sources.claude_code.current import _current_calls
from agentgraph.sources.claude_code.discovery import SessionFiles, discover
from agentgraph.sources.claude_code.hops import _hops
from agentgraph.sources.claude_code.legacy import _CallOwners, _legacy_calls
from agentgraph.sources.claude_code.lines import _SKIPPED_TYPES, _LineReader
from agentgraph.sources.claude_code.linking import _agents, _edges, _opt_str
from agentgraph.sources.claude_code.records import _Call, _SessionLines
from agentgraph.sources.claude_code.sizing import TokenBook
from agentgraph.tokens import DEFAULT_BLOCK_SIZE

__all__ = ["ClaudeCodeImporter", "looks_like_claude_code"]


class ClaudeCodeImporter:
    """Imports sessions one at a time; keeps only the sizes of shared system/tool units."""

    def __init__(self, block_size: int = DEFAULT_BLOCK_SIZE, measure_cpu: bool = False) -> None:
        self.block_size = block_size
        self.measure_cpu = measure_cpu
        self.book = TokenBook()
        self.owners = _CallOwners()

    def sessions(self, paths: Iterable[Path], issues: list[ImportIssue]) -> Iterator[Trace]:
        for files in discover(paths, issues):
            part = self.session(files, issues)
            if part.hop_list:
                yield part

    def session(self, files: SessionFiles, issues: list[ImportIssue]) -> Trace:
        s = _SessionLines(files.session_id, keep_content=self.measure_cpu)
        reader = _LineReader(s, issues)
        if files.main is not None:
            reader.read_file(files.main, None)
        for agent_file, meta in files.agents:
            agent_id = agent_file.stem.removeprefix("agent-")
            s.agent(agent_id)
            reader.read_file(agent_file, agent_id)
            if meta is not None:
                s.meta_spawn[agent_id] = _read_meta(meta, issues)
        if not files.paths():
            return Trace((), block_size=self.block_size)
        return self._build(s, str(files.paths()[0]), files.span, issues)

    def _build(self, s: _SessionLines, path: str, span: tuple[float, float],
               issues: list[ImportIssue]) -> Trace:
        calls = {agent.agent_id: (_current_calls(s, agent, path, issues) if agent.requests
                                  else _legacy_calls(s, agent, self.owners, path, issues))
                 for agent in s.agents.values()}
        self.owners.close(s.session_id, path, span, issues)
        shared_keys = frozenset(k for units in s.shapes.values() for k, _ in units)
        return self.assemble(s, calls, shared_keys, path, issues)

    def assemble(self, s: _SessionLines, calls_by_agent: dict[str, list[_Call]],
                 shared_keys: frozenset[bytes], path: str, issues: list[ImportIssue]) -> Trace:
        """Size, hash and link one session's calls (shared by every Claude Code source)."""
        by_agent: dict[str, list[Hop]] = {}
        for agent_id, calls in calls_by_agent.items():
            hops = _hops(s.session_id, agent_id, calls, self.book, shared_keys, self.block_size,
                         s.results, path, issues)
            if hops:
                by_agent[agent_id] = hops
        self.book.local.clear()
        agents = _agents(s, by_agent)
        for a in agents:
            if a.agent_id != MAIN_AGENT and a.parent_agent_id is None and a.agent_type != "warmup":
                issues.append(ImportIssue(path, None, f"sub-agent {a.agent_id!r}: no spawning "
                                          "tool call found; imported without spawn/join edges",
                                          IssueKind.NO_SPAWN))
        emitted = {t.tool_use_id for hops in by_agent.values() for h in hops for t in h.tool_calls}
        for agent_id, tool_id in sorted(s.result_agent.items()):
            # a resumed session's copied history names sub-agents of the original session
            if agent_id not in by_agent and tool_id in emitted:
                issues.append(ImportIssue(path, None, f"sub-agent {agent_id!r} (tool call "
                                          f"{tool_id}) has no transcript; its hops are missing",
                                          IssueKind.NO_TRANSCRIPT))
        edges = _edges(s, agents, by_agent)
        hops = sorted((h for hs in by_agent.values() for h in hs),
                      key=lambda h: (h.start_s, h.agent_id != MAIN_AGENT, h.agent_id, h.index))
        used = {t.schema_id for h in hops for t in h.tool_calls if t.schema_id is not None}
        return Trace(tuple(hops), tuple(edges), tuple(agents), self.block_size,
                     schemas={sid: s.schemas[sid] for sid in sorted(used)})


def _read_meta(path: Path, issues: list[ImportIssue]) -> tuple[str | None, str | None]:
    try:
        meta = orjson.loads(path.read_bytes())
    except (OSError, orjson.JSONDecodeError) as exc:
        issues.append(ImportIssue(str(path), None, f"unreadable sub-agent meta ({exc}); ignored", IssueKind.BAD_META))
        return None, None
    if not isinstance(meta, dict):
        issues.append(ImportIssue(str(path), None, "sub-agent meta is not a JSON object; ignored",
                                  IssueKind.BAD_META))
        return None, None
    return _opt_str(meta.get("toolUseId")), _opt_str(meta.get("agentType"))


def looks_like_claude_code(record: dict[str, Any]) -> bool:
    """Whether a first JSON line looks like a Claude Code transcript line."""
    kind = record.get("type")
    return "sessionId" in record or kind in _SKIPPED_TYPES or kind in {
        "user", "assistant", "api-request", "api-request-shape", "api-request-blob"}
