"""Calls of the legacy format: requests rebuilt from the ``parentUuid`` chain of user/assistant lines.

One call is the assistant lines sharing ``message.id`` + ``requestId``; its request is the chain
above the line it answers (:func:`_answered`), one unit per line, behind an opaque per-agent
*preamble* unit for the unrecorded system prompt and tools. :class:`_ChainCache` walks the chains;
:class:`_CallOwners` decides which session imports a call that resumed sessions repeat.
"""

from __future__ import annotations

from typing import Any

from agentgraph.errors import ImportIssue, IssueKind
from agentgraph.model import MAIN_AGENT
from agentgraph.sources.claude_code.records import _AgentLines, _Call, _call, _Response, _SessionLines
from agentgraph.tokens import unit_key

__all__: list[str] = []  # internal to the package


def _legacy_calls(s: _SessionLines, agent: _AgentLines, owners: _CallOwners, path: str,
                  issues: list[ImportIssue]) -> list[_Call]:
    preamble = unit_key(f"legacy-preamble\0{s.session_id}\0{agent.agent_id}".encode())
    chains = _ChainCache(agent)
    calls: list[_Call] = []
    for key, resp in agent.responses.items():
        if resp.message_id and resp.request_id and not owners.claim(
                s.session_id, f"{resp.message_id}:{resp.request_id}", agent.agent_id == MAIN_AGENT):
            continue
        context, parent_time = chains.context(_answered(resp, agent.nodes))
        start = parent_time if parent_time is not None else resp.end_s
        units: list[tuple[bytes, int | None]] = [(preamble, None), *context]
        calls.append(_call(agent.agent_id, resp, min(start, resp.end_s), units, resp.model,
                           resp.request_id or key))
    calls.sort(key=lambda c: (c.start_s, c.end_s, c.request_id or ""))  # not the order of lines
    if chains.gaps:
        issues.append(ImportIssue(path, None, f"{chains.gaps} call(s) of agent {agent.agent_id!r} "
                                  "continue a line that is missing (parentUuid); their context "
                                  "starts after the gap", IssueKind.CONTEXT_GAP))
    return calls


class _CallOwners:
    """Which session each legacy call (``message.id:requestId``) is imported in.

    Sessions are read in :func:`~.discovery.discover` order and the first to hold a call keeps it, so a call
    belongs to the session whose calls have the earliest first, then latest timestamp (then the smaller id):
    a resumed copy repeats the original's calls but ends later. Only the calls' identity and the
    files' time spans decide, never the order of lines. It is a guess when both sessions went on
    with calls of their own (the original was continued after the copy was made: its main-agent
    calls are not all in the copy) or when both spans are equal; then the session read second
    gets a warning naming the other's file.
    """

    def __init__(self) -> None:
        self.owner: dict[str, tuple[str, bool]] = {}  # call -> (session, made by its main agent)
        self.owned: dict[str, list[int]] = {}  # session -> [calls it keeps, of its main agent]
        self.where: dict[str, tuple[str, tuple[float, float]]] = {}  # session -> (file, span)
        self.shared: dict[str, list[int]] = {}  # owner -> same, of the session being read

    def claim(self, session_id: str, call: str, main: bool) -> bool:
        """Whether ``session_id`` imports ``call`` (False: already imported, here or elsewhere)."""
        owner = self.owner.get(call)
        if owner is None:
            self.owner[call] = (session_id, main)
            counts = self.owned.setdefault(session_id, [0, 0])
        elif owner[0] != session_id:
            counts = self.shared.setdefault(owner[0], [0, 0])
            main = owner[1]
        else:
            return False
        counts[0] += 1
        counts[1] += main
        return owner is None

    def close(self, session_id: str, path: str, span: tuple[float, float],
              issues: list[ImportIssue]) -> None:
        """End a session: warn about the calls another session keeps on a guess."""
        own = self.owned.get(session_id, [0, 0])[0]
        for other, (n, main) in sorted(self.shared.items()):
            other_path, other_span = self.where[other]
            if other_span == span:
                why = "whose first and last timestamps are the same"
            elif own and self.owned[other][1] > main:
                why = "and both sessions went on with calls of their own"
            else:
                continue
            issues.append(ImportIssue(path, None, f"{n} call(s) are also in {other_path}, {why}, "
                                      "so which session copied them is unknown; they stay in session "
                                      f"{other}, which sorts first (earliest first, then last "
                                      "timestamp, then id)", IssueKind.OWNER_GUESSED))
        self.shared.clear()
        if own:
            self.where[session_id] = (path, span)


class _ChainCache:
    """Materializes ``parentUuid`` chains, re-using the last one: a call's context usually
    continues the previous call's, so each line is walked about once per session."""

    def __init__(self, agent: _AgentLines) -> None:
        self.nodes = agent.nodes
        self.uuids: list[str] = []  # the last materialized chain, root first
        self.units: list[tuple[bytes, int | None]] = []
        self.units_before: list[int] = []  # len(units) up to and including uuids[i]
        self.pos: dict[str, int] = {}
        self.gaps = 0  # calls whose chain reaches a parent line that is not in the files
        self.rooted_in_gap = False  # the cached chain's root names a missing parent

    def context(self, uuid: str | None) -> tuple[list[tuple[bytes, int | None]], float | None]:
        """The units of the chain ending at ``uuid`` (root first) and the nearest line time."""
        walked: list[str] = []
        cursor, seen = uuid, set()
        while cursor is not None and cursor in self.nodes and cursor not in self.pos and cursor not in seen:
            seen.add(cursor)
            walked.append(cursor)
            cursor = self.nodes[cursor][0]
        keep = self.pos[cursor] + 1 if cursor is not None and cursor in self.pos else 0
        if keep == 0:  # a new chain from its root: does the root continue a missing line?
            self.rooted_in_gap = cursor is not None and cursor not in self.nodes
        self.gaps += self.rooted_in_gap
        for dropped in self.uuids[keep:]:
            del self.pos[dropped]
        del self.uuids[keep:], self.units_before[keep:]
        del self.units[self.units_before[-1] if keep else 0 :]
        for node in reversed(walked):
            unit = self.nodes[node][1]
            if unit is not None:
                self.units.append(unit)
            self.pos[node] = len(self.uuids)
            self.uuids.append(node)
            self.units_before.append(len(self.units))
        return list(self.units), self._time(uuid)

    def _time(self, uuid: str | None) -> float | None:
        for node in reversed(self.uuids if uuid is not None else ()):
            t = self.nodes[node][2]
            if t is not None:
                return t
        return None


def _answered(resp: _Response, nodes: dict[str, tuple[str | None, Any, float | None]]) -> str | None:
    """The line a call answers: the parent of its lines outside the call, whichever of its
    lines was read first (each content block is a line chained to the previous block's)."""
    cursor = resp.parent_uuid
    if len(resp.uuids) < 2:
        return cursor
    own = set(resp.uuids)
    while cursor is not None and cursor in own and cursor in nodes:
        own.discard(cursor)
        cursor = nodes[cursor][0]
    return cursor
