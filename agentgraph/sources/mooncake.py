"""Mooncake traces and Dynamo's agentic Mooncake: import (plain, v1, v2) and export (v2).

Three shapes are read, one JSON object per line:

* plain Mooncake rows ``{timestamp, input_length, output_length, hash_ids}`` (512-token blocks);
* agentic Mooncake v1: the same rows plus ``request_id``, ``session_id``, ``wait_for``,
  ``delay`` and ``tool_wait_ms`` (no header);
* agentic Mooncake v2: a header ``{"schema": "dynamo.agentic_mooncake", "version": 2,
  "block_size": B, ...}`` then rows with ``play_id``, ``session_id``, ``not_before_ms`` and typed
  ``dependencies``.

The mapping to the trace model, and every reading of the format that had to be chosen, is in
``docs/mooncake.md``. Bad rows become :class:`~agentgraph.errors.ImportIssue` records and are
skipped; reading never raises for a bad row.
"""

from __future__ import annotations

import hashlib
import heapq
import math
from collections import defaultdict
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from itertools import chain
from pathlib import Path
from typing import IO, Any

import orjson

from agentgraph.errors import ImportIssue, IssueKind
from agentgraph.model import MAIN_AGENT, Agent, Edge, EdgeKind, Hop, Trace
from agentgraph.sources.jsonl import read_records
from agentgraph.tokens import common_prefix_len

__all__ = [
    "MOONCAKE_BLOCK_SIZE",
    "SCHEMA",
    "VERSION",
    "read_mooncake",
    "write_agentic_mooncake",
]

MOONCAKE_BLOCK_SIZE = 512
"""Tokens per ``hash_id`` in files without a v2 header (the Mooncake release traces)."""
SCHEMA = "dynamo.agentic_mooncake"
VERSION = 2
UNKNOWN_MODEL = "unknown"
BARRIER = "replay_barrier"
"""A v2 relation that orders replay only; it is not an edge of the call graph."""
_TRIGGERS = ("completion", "dispatch")
_RELATIONS = (*(kind.value for kind in EdgeKind), BARRIER)


class _BadRow(Exception):
    """A row that cannot be used; its message becomes an issue."""


@dataclass(frozen=True, slots=True)
class _Ctx:
    path: str
    issues: list[ImportIssue]
    block_size: int
    typed: bool  # v2: play_id groups rows, dependencies carry their relation

    def issue(self, line: int, message: str, kind: IssueKind = IssueKind.DEPENDENCY) -> None:
        self.issues.append(ImportIssue(self.path, line, message, kind))


@dataclass(frozen=True, slots=True)
class _Dep:
    ref: str
    relation: str | None  # None: inferred from the sessions involved (v1)
    wait_ms: float | None  # None: the gap between the two hops' recorded times


@dataclass(frozen=True, slots=True)
class _Row:
    line: int
    request_id: str | None
    group: str  # v2 play_id; otherwise the row's session (a trajectory)
    lane: str  # v2 session_id, the agent; otherwise equal to group
    model: str
    prompt_tokens: int
    output_tokens: int
    hash_ids: tuple[int, ...]
    start_ms: float | None
    deps: tuple[_Dep, ...]
    follows: bool = False  # depends on the previous row of its session (closed-loop rows)
    follow_wait_ms: float | None = None


@dataclass(frozen=True, slots=True)
class _Link:
    src: int
    relation: str | None
    wait_ms: float | None


Links = list[list[_Link]]
Place = tuple[str, str]  # (session_id, agent_id)
Kinds = list[list[EdgeKind | None]]  # per link; None: no call-graph edge


# --------------------------------------------------------------------------- import


def read_mooncake(
    path: str | Path,
    issues: list[ImportIssue],
    *,
    default_block_size: int = MOONCAKE_BLOCK_SIZE,
) -> Trace:
    """Read a Mooncake or agentic Mooncake (v1, v2) trace; problems go to ``issues``.

    ``default_block_size`` is the block size of files without a v2 header. A file with no usable
    row gives an empty trace: whether that is an error is the caller's decision.
    """
    records = read_records(Path(path), issues)
    head = next(records, None)
    empty = Trace((), block_size=default_block_size, meta={"source_format": "mooncake"})
    if head is None:
        return empty
    if "schema" not in head[1]:
        ctx = _Ctx(str(path), issues, default_block_size, typed=False)
        return _build(_parse_rows(chain([head], records), ctx, _plain_row), ctx, empty.meta)
    block_size = _header(head[1], head[0], str(path), issues)
    if block_size is None:
        return empty
    ctx = _Ctx(str(path), issues, block_size, typed=True)
    meta = {"source_format": SCHEMA, "version": VERSION,
            "hash_id_scope": head[1].get("hash_id_scope"), "source": head[1].get("source")}
    return _build(_parse_rows(records, ctx, _typed_row), ctx, meta)


def _header(rec: dict[str, Any], line: int, path: str, issues: list[ImportIssue]) -> int | None:
    schema, version, size = rec.get("schema"), rec.get("version"), rec.get("block_size")
    if schema != SCHEMA:
        problem = f"unknown schema {schema!r} (expected {SCHEMA!r})"
    elif version != VERSION or isinstance(version, bool):
        problem = f"unsupported {SCHEMA} version {version!r} (this reader: {VERSION})"
    elif isinstance(size, int) and _is_nat(size) and size > 0:
        return size
    else:
        problem = f"header field 'block_size' must be a positive integer, got {_show(size)}"
    issues.append(ImportIssue(path, line, f"{problem}; file skipped", IssueKind.FILE_SKIPPED))
    return None


def _build(rows: list[_Row], ctx: _Ctx, meta: dict[str, Any]) -> Trace:
    links = _link(rows, ctx)
    order, starts = _order(rows, links, ctx)
    places, kinds = (_place_typed if ctx.typed else _place_untyped)(rows, links, order, ctx)
    hops = _hops(rows, order, starts, places, ctx.block_size)
    edges = _edges(links, kinds, order, hops)
    hop_list = tuple(hops[i] for i in order)
    return Trace(hop_list, tuple(edges), _agents(hop_list, edges), ctx.block_size, meta)


# --------------------------------------------------------------------------- rows


def _parse_rows(
    records: Iterable[tuple[int, dict[str, Any]]],
    ctx: _Ctx,
    parse: Callable[[dict[str, Any], int, _Ctx], _Row],
) -> list[_Row]:
    rows: list[_Row] = []
    first_line: dict[str, int] = {}
    for line, rec in records:
        try:
            row = parse(rec, line, ctx)
            rid = row.request_id
            if rid is not None and rid in first_line:
                raise _BadRow(f"duplicate request_id {rid!r} (first on line {first_line[rid]})")
        except _BadRow as exc:
            ctx.issue(line, f"{exc}; row skipped", IssueKind.ROW_SKIPPED)
            continue
        if rid is not None:
            first_line[rid] = line
        rows.append(row)
    return rows


def _plain_row(rec: dict[str, Any], line: int, ctx: _Ctx) -> _Row:
    """A plain Mooncake or agentic v1 row (aliases as Dynamo's reader accepts them)."""
    if "schema" in rec:
        raise _BadRow(f"a {SCHEMA} header is only valid on the first line")
    hash_ids, prompt, output = _tokens(rec, ctx.block_size)
    rid = _opt(rec, _text, "request_id")
    session = _opt(rec, _text, "session_id")
    start = _opt(rec, _number, "timestamp", "created_time")
    delay = _opt(rec, _wait, "delay", "delay_ms")
    tool = _opt(rec, _wait, "tool_wait_ms")
    wait = None if delay is None and tool is None else (delay or 0.0) + (tool or 0.0)
    refs = tuple(dict.fromkeys(_opt(rec, _texts, "wait_for") or ()))
    group = session or f"mooncake-{line}"
    follows = session is not None and not refs and (rid is None or wait is not None)
    return _Row(line, rid, group, group, UNKNOWN_MODEL, prompt, output, hash_ids, start,
                tuple(_Dep(ref, None, wait) for ref in refs), follows, wait)


def _typed_row(rec: dict[str, Any], line: int, ctx: _Ctx) -> _Row:
    """An agentic Mooncake v2 row."""
    hash_ids, prompt, output = _tokens(rec, ctx.block_size)
    rid = _text(_need(rec, "request_id"), "request_id")
    play = _text(_need(rec, "play_id"), "play_id")
    lane = _text(_need(rec, "session_id"), "session_id")
    start = _number(_need(rec, "not_before_ms"), "not_before_ms")
    model = _opt(rec, _text, "model") or UNKNOWN_MODEL
    deps = _opt(rec, _array, "dependencies") or []
    return _Row(line, rid, play, lane, model, prompt, output, hash_ids, start,
                tuple(_typed_dep(dep, k) for k, dep in enumerate(deps)))


def _typed_dep(dep: object, k: int) -> _Dep:
    if not isinstance(dep, dict):
        raise _BadRow(f"dependency {k} must be an object, got {_show(dep)}")
    try:
        ref = _text(_need(dep, "request_id"), "request_id")
        _choice(_need(dep, "trigger"), "trigger", _TRIGGERS)
        relation = _choice(_need(dep, "relation"), "relation", _RELATIONS)
        wait = _wait(_need(dep, "delay_ms"), "delay_ms")
    except _BadRow as exc:
        raise _BadRow(f"dependency {k}: {exc}") from None
    return _Dep(ref, relation, wait)


def _tokens(rec: dict[str, Any], block_size: int) -> tuple[tuple[int, ...], int, int]:
    """``hash_ids``, prompt tokens and output tokens; input_length defaults to full blocks."""
    hash_ids = _ids(_need(rec, "hash_ids"), "hash_ids")
    raw = _field(rec, "input_length", "input_tokens")
    prompt = len(hash_ids) * block_size if raw is None else _nat(raw, "input_length")
    output = _nat(_need(rec, "output_length", "output_tokens"), "output_length")
    blocks = -(-prompt // block_size)
    if blocks != len(hash_ids):
        raise _BadRow(f"hash_ids has {len(hash_ids)} blocks but input_length {prompt} needs "
                      f"{blocks} at block size {block_size}")
    return hash_ids, prompt, output


# --------------------------------------------------------------------------- field checks


def _field(rec: dict[str, Any], *names: str) -> Any:
    """The first of ``names`` present and not null (JSON null reads as absent)."""
    return next((rec[n] for n in names if rec.get(n) is not None), None)


def _need(rec: dict[str, Any], *names: str) -> Any:
    value = _field(rec, *names)
    if value is None:
        raise _BadRow(f"missing field {names[0]!r}")
    return value


def _opt(rec: dict[str, Any], check: Callable[[Any, str], Any], *names: str) -> Any:
    value = _field(rec, *names)
    return None if value is None else check(value, names[0])


def _is_nat(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value >= 0


def _nat(value: object, name: str) -> int:
    if not _is_nat(value):
        raise _BadRow(f"field {name!r} must be a non-negative integer, got {_show(value)}")
    assert isinstance(value, int)
    return value


def _number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
        raise _BadRow(f"field {name!r} must be a number, got {_show(value)}")
    return float(value)


def _wait(value: object, name: str) -> float:
    wait = _number(value, name)
    if wait < 0:
        raise _BadRow(f"field {name!r} must not be negative, got {_show(value)}")
    return wait


def _text(value: object, name: str) -> str:
    if not isinstance(value, str) or not value:
        raise _BadRow(f"field {name!r} must be a non-empty string, got {_show(value)}")
    return value


def _choice(value: object, name: str, allowed: tuple[str, ...]) -> str:
    if value not in allowed:
        raise _BadRow(f"field {name!r} must be one of {', '.join(allowed)}, got {_show(value)}")
    assert isinstance(value, str)
    return value


def _array(value: object, name: str) -> list[Any]:
    if not isinstance(value, list):
        raise _BadRow(f"field {name!r} must be an array, got {_show(value)}")
    return value


def _texts(value: object, name: str) -> list[str]:
    return [_text(v, name) for v in _array(value, name)]


def _ids(value: object, name: str) -> tuple[int, ...]:
    items = _array(value, name)
    for k, v in enumerate(items):
        if not _is_nat(v):
            raise _BadRow(f"field {name!r} must be an array of non-negative integers, "
                          f"got {_show(v)} at index {k}")
    return tuple(items)


def _show(value: object) -> str:
    if isinstance(value, str):
        return f"a string {value[:40]!r}"
    if isinstance(value, bool):
        return "a boolean"
    if isinstance(value, int | float):
        return repr(value)
    if isinstance(value, list):
        return "an array"
    return "an object" if isinstance(value, dict) else "null"


# --------------------------------------------------------------------------- dependencies


def _link(rows: list[_Row], ctx: _Ctx) -> Links:
    """Resolve named dependencies to row indices; add the implicit closed-loop predecessor."""
    index = {row.request_id: i for i, row in enumerate(rows) if row.request_id is not None}
    last_of_group: dict[str, int] = {}
    links: Links = []
    for i, row in enumerate(rows):
        mine = [link for dep in row.deps if (link := _resolve(dep, row, index, rows, ctx))]
        if row.follows and row.group in last_of_group:
            mine.append(_Link(last_of_group[row.group], None, row.follow_wait_ms))
        last_of_group[row.group] = i
        links.append(mine)
    return links


def _resolve(dep: _Dep, row: _Row, index: dict[str, int], rows: list[_Row],
             ctx: _Ctx) -> _Link | None:
    src = index.get(dep.ref)
    if src is None:
        ctx.issue(row.line, f"dependency on unknown request {dep.ref!r} ignored")
        return None
    if ctx.typed and rows[src].group != row.group:
        ctx.issue(row.line, f"dependency on {dep.ref!r} of another play "
                            f"({rows[src].group!r}) ignored")
        return None
    return _Link(src, dep.relation, dep.wait_ms)


def _order(rows: list[_Row], links: Links, ctx: _Ctx) -> tuple[list[int], list[float]]:
    """Rows in dependency order, the earliest start first, and each row's start in ms.

    A row without a time starts when its last dependency does plus its wait (hops carry no
    latency, so a dependency ends when it starts), or at 0. A dependency cycle is broken at
    its first row in the file, whose remaining dependencies are dropped with an issue.
    """
    waiting = [len(ls) for ls in links]
    users: dict[int, list[int]] = defaultdict(list)
    for dst, ls in enumerate(links):
        for link in ls:
            users[link.src].append(dst)
    starts = [0.0] * len(rows)
    done = [False] * len(rows)
    heap: list[tuple[float, int, int]] = []

    def ready(i: int) -> None:
        starts[i] = _start(rows[i], links[i], starts)
        heapq.heappush(heap, (starts[i], rows[i].line, i))

    for i in (i for i, n in enumerate(waiting) if n == 0):
        ready(i)
    order: list[int] = []
    while len(order) < len(rows):
        if not heap:
            ready(_break_cycle(rows, links, waiting, done, ctx))
        i = heapq.heappop(heap)[2]
        order.append(i)
        done[i] = True
        for dst in users[i]:
            waiting[dst] -= 1
            if waiting[dst] == 0:
                ready(dst)
    return order, starts


def _start(row: _Row, links: list[_Link], starts: list[float]) -> float:
    if row.start_ms is not None:
        return row.start_ms
    return max((starts[link.src] + (link.wait_ms or 0.0) for link in links), default=0.0)


def _break_cycle(rows: list[_Row], links: Links, waiting: list[int], done: list[bool],
                 ctx: _Ctx) -> int:
    i = min((i for i, n in enumerate(waiting) if n > 0), key=lambda i: rows[i].line)
    cut = [rows[link.src].request_id or "?" for link in links[i] if not done[link.src]]
    ctx.issue(rows[i].line, f"dependency cycle: dependencies on {', '.join(map(repr, cut))} "
                            "ignored")
    links[i] = [link for link in links[i] if done[link.src]]
    waiting[i] = 0
    return i


# --------------------------------------------------------------------------- sessions, agents


def _place_typed(rows: list[_Row], links: Links, order: list[int],
                 ctx: _Ctx) -> tuple[list[Place], Kinds]:
    """v2: the play is the session, the row's session_id its agent, relations given."""
    places = [(row.group, row.lane) for row in rows]
    kinds: Kinds = [[None if link.relation in (None, BARRIER) else EdgeKind(link.relation)
                     for link in ls] for ls in links]
    return places, kinds


def _place_untyped(rows: list[_Row], links: Links, order: list[int],
                   ctx: _Ctx) -> tuple[list[Place], Kinds]:
    """v1: a trajectory whose first row waits for another trajectory is that one's sub-agent.

    The root trajectory names the session and is its ``main`` agent; every other trajectory of
    the tree is an agent named by its own session_id.
    """
    parent: dict[str, str | None] = {}
    first: dict[str, int] = {}
    for i in order:
        group = rows[i].group
        if group not in parent:
            first[group] = i
            others = (rows[link.src].group for link in links[i])
            parent[group] = next((g for g in others if g != group), None)
    places = [(_root(row.group, parent), MAIN_AGENT if parent[row.group] is None else row.group)
              for row in rows]
    kinds = [[_classify(rows, i, link, first, parent, ctx) for link in links[i]]
             for i in range(len(rows))]
    return places, kinds


def _root(group: str, parent: dict[str, str | None]) -> str:
    up = parent[group]
    while up is not None:  # terminates: a parent's first row precedes its child's in the order
        group, up = up, parent[up]
    return group


def _classify(rows: list[_Row], dst: int, link: _Link, first: dict[str, int],
              parent: dict[str, str | None], ctx: _Ctx) -> EdgeKind | None:
    src_group, dst_group = rows[link.src].group, rows[dst].group
    if src_group == dst_group:
        return EdgeKind.SEQUENCE
    if first[dst_group] == dst and parent[dst_group] == src_group:
        return EdgeKind.SPAWN
    up = parent[src_group]
    while up is not None and up != dst_group:
        up = parent[up]
    if up == dst_group:
        return EdgeKind.JOIN
    ctx.issue(rows[dst].line, f"dependency on {rows[link.src].request_id!r} links sessions "
                              f"{src_group!r} and {dst_group!r} that are not parent and child; "
                              "no edge")
    return None


# --------------------------------------------------------------------------- hops, edges


def _hops(rows: list[_Row], order: list[int], starts: list[float], places: list[Place],
          block_size: int) -> dict[int, Hop]:
    hops: dict[int, Hop] = {}
    previous: dict[Place, Hop] = {}
    used: set[str] = set()
    for i in order:
        row, place = rows[i], places[i]
        before = previous.get(place)
        index = before.index + 1 if before else 0
        hops[i] = previous[place] = Hop(
            hop_id=_hop_id(row, place, index, used), session_id=place[0], agent_id=place[1],
            index=index, model=row.model, start_s=starts[i] / 1000, end_s=starts[i] / 1000,
            prompt_tokens=row.prompt_tokens, output_tokens=row.output_tokens,
            shared_prefix_tokens=_shared(before, row, block_size), hash_ids=row.hash_ids,
            request_id=row.request_id,
        )
    return hops


def _shared(before: Hop | None, row: _Row, block_size: int) -> int:
    """Tokens of the common leading blocks, never more than either prompt holds."""
    if before is None:
        return 0
    blocks = common_prefix_len(before.hash_ids, row.hash_ids)
    return min(blocks * block_size, row.prompt_tokens, before.prompt_tokens)


def _hop_id(row: _Row, place: Place, index: int, used: set[str]) -> str:
    """The request_id when the row has one, else ``session/agent/index``; unique in the file."""
    hop_id = row.request_id or f"{place[0]}/{place[1]}/{index}"
    if hop_id in used:
        hop_id = f"{hop_id}@{row.line}"
    used.add(hop_id)
    return hop_id


def _edges(links: Links, kinds: Kinds, order: list[int], hops: dict[int, Hop]) -> list[Edge]:
    edges: dict[tuple[str, str, EdgeKind], Edge] = {}
    for i in order:
        dst = hops[i]
        for link, kind in zip(links[i], kinds[i], strict=True):
            src = hops[link.src]
            if kind is None or (src.hop_id, dst.hop_id, kind) in edges:
                continue
            wait_ms = link.wait_ms
            wait_s = max(0.0, dst.start_s - src.end_s) if wait_ms is None else wait_ms / 1000
            added = dst.new_tokens if kind is EdgeKind.SEQUENCE else 0
            edges[src.hop_id, dst.hop_id, kind] = Edge(src.hop_id, dst.hop_id, kind, wait_s, added)
    return list(edges.values())


def _agents(hop_list: tuple[Hop, ...], edges: list[Edge]) -> tuple[Agent, ...]:
    """One agent per (session, agent) in order of first hop; the parent is the spawner's agent."""
    by_id = {h.hop_id: h for h in hop_list}
    parent: dict[Place, str] = {}
    for e in edges:
        if e.kind is EdgeKind.SPAWN:
            child = by_id[e.dst]
            parent.setdefault((child.session_id, child.agent_id), by_id[e.src].agent_id)
    places = dict.fromkeys((h.session_id, h.agent_id) for h in hop_list)
    return tuple(Agent(s, a, parent_agent_id=parent.get((s, a))) for s, a in places)


# --------------------------------------------------------------------------- export


def write_agentic_mooncake(trace: Trace, out: IO[bytes]) -> None:
    """Write ``trace`` as agentic Mooncake v2: a header line, then one row per hop.

    The play is the hop's session, the row's session_id its agent, the request_id its hop id;
    each incoming edge becomes a ``completion`` dependency whose ``delay_ms`` is the edge's wait.
    The header's ``source.digest`` is the SHA-256 of the row lines, so equal traces give equal
    bytes.
    """
    incoming: dict[str, list[Edge]] = defaultdict(list)
    for edge in trace.edges:
        incoming[edge.dst].append(edge)
    rows = [orjson.dumps(_export_row(hop, incoming[hop.hop_id])) for hop in trace.hop_list]
    digest = hashlib.sha256(b"\n".join(rows)).hexdigest()
    header = {"schema": SCHEMA, "version": VERSION, "block_size": trace.block_size,
              "hash_id_scope": "local", "source": {"format": "agentgraph", "digest": digest}}
    out.write(orjson.dumps(header) + b"\n")
    for row in rows:
        out.write(row + b"\n")


def _export_row(hop: Hop, incoming: list[Edge]) -> dict[str, Any]:
    return {
        "request_id": hop.hop_id, "play_id": hop.session_id, "session_id": hop.agent_id,
        "model": hop.model, "input_length": hop.prompt_tokens,
        "output_length": hop.output_tokens, "hash_ids": list(hop.hash_ids),
        "not_before_ms": hop.start_s * 1000,
        "dependencies": [
            {"request_id": e.src, "trigger": "completion", "delay_ms": e.wait_s * 1000,
             "relation": e.kind.value}
            for e in incoming
        ],
    }
