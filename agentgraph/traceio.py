"""The native trace file: ``agentgraph.trace``, JSONL with a versioned header.

Line 1 is the header ``{"format": "agentgraph.trace", "version": 1, "block_size": B, "meta": {}}``;
every other line is one record with a ``kind``: ``schema``, ``agent``, ``hop`` or ``edge``. A hop's block
hashes are stored as a delta against an earlier hop (``hash_base`` + ``hash_keep`` +
``hash_tail``, like Claude Code's own ``api-request`` lines) or in full (``hash_ids``).
See ``docs/trace-format.md``.
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

import orjson

from agentgraph.errors import TraceFormatError, UsageError
from agentgraph.model import Agent, Edge, EdgeKind, Hop, ToolCall, Trace, Usage
from agentgraph.outputs import open_output
from agentgraph.sources.jsonl import bounded_lines, too_long
from agentgraph.tokens import DEFAULT_BLOCK_SIZE, common_prefix_len

__all__ = [
    "FORMAT",
    "VERSION",
    "TraceWriter",
    "dumps",
    "load",
    "read",
    "save",
    "write",
]

FORMAT = "agentgraph.trace"
VERSION = 1


def save(trace: Trace, path: str | Path) -> None:
    """Write ``trace`` to ``path`` in the native format (by the rules of :mod:`agentgraph.outputs`)."""
    with open_output(path) as out:
        write(trace, out)


def write(trace: Trace, out: IO[bytes]) -> None:
    """Write ``trace`` to a binary stream in the native format."""
    writer = TraceWriter(out, trace.meta)
    writer.add(trace)
    writer.close()


class TraceWriter:
    """Writes a trace part by part (e.g. one session at a time) so imports can stream.

    The header is written with the first part, whose block size every later part must share.
    Hash deltas only refer to hops of the same part, so memory stays bounded by one part.
    """

    def __init__(self, out: IO[bytes], meta: dict[str, Any] | None = None) -> None:
        self.out = out
        self.meta = dict(meta or {})
        self.block_size: int | None = None
        self.schema_ids: set[str] = set()

    def add(self, part: Trace) -> None:
        if self.block_size is None:
            self._header(part.block_size)
        elif part.block_size != self.block_size:
            raise UsageError(f"sources have different block sizes ({self.block_size} and "
                             f"{part.block_size}); pass --block-size with a multiple of both")
        out = self.out
        for sid, schema in part.schemas.items():
            if sid not in self.schema_ids:
                self.schema_ids.add(sid)
                out.write(orjson.dumps({"kind": "schema", "schema_id": sid, "schema": schema}) + b"\n")
        for agent in part.agents:
            out.write(orjson.dumps(_agent_record(agent)) + b"\n")
        last_of_agent: dict[tuple[str, str], Hop] = {}
        for hop in part.hop_list:
            key = (hop.session_id, hop.agent_id)
            out.write(orjson.dumps(_hop_record(hop, last_of_agent.get(key))) + b"\n")
            last_of_agent[key] = hop
        for edge in part.edges:
            out.write(orjson.dumps(_edge_record(edge)) + b"\n")

    def close(self, default_block_size: int = DEFAULT_BLOCK_SIZE) -> None:
        """Finish the file (an empty trace still gets its header)."""
        if self.block_size is None:
            self._header(default_block_size)
        self.out.flush()

    def _header(self, block_size: int) -> None:
        self.block_size = block_size
        header = {"format": FORMAT, "version": VERSION, "block_size": block_size,
                  "meta": self.meta}
        self.out.write(orjson.dumps(header) + b"\n")


def dumps(trace: Trace) -> bytes:
    """The native file's bytes for ``trace``."""
    import io

    buf = io.BytesIO()
    write(trace, buf)
    return buf.getvalue()


def load(path: str | Path) -> Trace:
    """Read a native trace file; a malformed line raises :class:`TraceFormatError`."""
    with open(path, "rb") as f:
        return read(f, str(path))


def read(stream: IO[bytes], name: str = "<stream>") -> Trace:
    """Read a native trace from a binary stream."""
    lines = _numbered(stream, name)
    try:
        lineno, first = next(lines)
    except StopIteration:
        raise TraceFormatError("empty file, expected an agentgraph.trace header", path=name) from None
    header = _parse(first, name, lineno)
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise TraceFormatError(f"not an {FORMAT} file (no header)", path=name, line=lineno)
    if header.get("version") != VERSION:
        raise TraceFormatError(
            f"unsupported {FORMAT} version {header.get('version')!r} (this reader: {VERSION})",
            path=name, line=lineno,
        )
    block_size, meta = header.get("block_size"), header.get("meta") or {}
    if not isinstance(block_size, int) or isinstance(block_size, bool) or block_size < 1:
        raise TraceFormatError(f"header block_size must be a positive integer, got {block_size!r}",
                               path=name, line=lineno)
    if not isinstance(meta, dict):
        raise TraceFormatError(f"header meta must be an object, got {meta!r}", path=name, line=lineno)
    agents: list[Agent] = []
    hops: list[Hop] = []
    edges: list[Edge] = []
    by_id: dict[str, Hop] = {}
    schemas: dict[str, Any] = {}
    for lineno, raw in lines:
        rec = _parse(raw, name, lineno)
        if not isinstance(rec, dict):
            raise TraceFormatError("a record must be a JSON object", path=name, line=lineno)
        try:
            kind = rec["kind"]
            if kind == "hop":
                hop = _hop_from(rec, by_id)
                hops.append(hop)
                by_id[hop.hop_id] = hop
            elif kind == "edge":
                for end in (rec["src"], rec["dst"]):
                    if end not in by_id:  # writers put a part's edges after its hops
                        raise TraceFormatError(f"edge {rec['src']} -> {rec['dst']} names unknown hop "
                                               f"{end!r} (not on an earlier line)", path=name, line=lineno)
                edges.append(Edge(rec["src"], rec["dst"], EdgeKind(rec["kind_of_edge"]),
                                  float(rec["wait_s"]), int(rec["added_tokens"])))
            elif kind == "schema":
                schemas[str(rec["schema_id"])] = rec["schema"]
            elif kind == "agent":
                agents.append(Agent(rec["session_id"], rec["agent_id"], rec.get("agent_type"),
                                    rec.get("parent_agent_id"), rec.get("spawn_tool_use_id")))
            else:
                raise TraceFormatError(f"unknown record kind {kind!r}", path=name, line=lineno)
        except (KeyError, TypeError, ValueError, IndexError) as exc:
            raise TraceFormatError(f"bad {rec.get('kind', 'record')!s} record: {exc!r}",
                                   path=name, line=lineno) from None
    return Trace(tuple(hops), tuple(edges), tuple(agents), block_size, dict(meta), schemas)


def _numbered(stream: IO[bytes], name: str) -> Iterator[tuple[int, bytes]]:
    for lineno, raw in bounded_lines(stream):  # memory stays bounded whatever the input
        if raw is None:
            raise TraceFormatError(too_long().removesuffix("; skipped"), path=name, line=lineno)
        if raw.strip():
            yield lineno, raw


def _parse(raw: bytes, name: str, lineno: int) -> Any:
    try:
        return orjson.loads(raw)
    except orjson.JSONDecodeError as exc:
        raise TraceFormatError(f"invalid JSON: {exc}", path=name, line=lineno) from None


def _agent_record(a: Agent) -> dict[str, Any]:
    return {"kind": "agent", "session_id": a.session_id, "agent_id": a.agent_id,
            "agent_type": a.agent_type, "parent_agent_id": a.parent_agent_id,
            "spawn_tool_use_id": a.spawn_tool_use_id}


def _edge_record(e: Edge) -> dict[str, Any]:
    return {"kind": "edge", "src": e.src, "dst": e.dst, "kind_of_edge": e.kind.value,
            "wait_s": e.wait_s, "added_tokens": e.added_tokens}


def _hop_record(h: Hop, base: Hop | None) -> dict[str, Any]:
    rec: dict[str, Any] = {
        "kind": "hop", "hop_id": h.hop_id, "session_id": h.session_id, "agent_id": h.agent_id,
        "index": h.index, "model": h.model, "start_s": h.start_s, "end_s": h.end_s,
        "prompt_tokens": h.prompt_tokens, "output_tokens": h.output_tokens,
        "shared_prefix_tokens": h.shared_prefix_tokens, "stop_reason": h.stop_reason,
        "request_id": h.request_id,
        "usage": None if h.usage is None else _usage_record(h.usage),
        "tool_calls": [_tool_record(t) for t in h.tool_calls],
    }
    if h.cpu_us is not None:
        rec["cpu"] = {"parse_us": h.parse_us, "validate_us": h.validate_us, "assemble_us": h.assemble_us}
    keep = common_prefix_len(base.hash_ids, h.hash_ids) if base is not None else 0
    if base is not None and keep:
        rec["hash_base"] = base.hop_id
        rec["hash_keep"] = keep
        rec["hash_tail"] = list(h.hash_ids[keep:])
    else:
        rec["hash_ids"] = list(h.hash_ids)
    return rec


def _usage_record(u: Usage) -> dict[str, int]:
    return {"input_tokens": u.input_tokens, "cache_read_tokens": u.cache_read_tokens,
            "cache_creation_tokens": u.cache_creation_tokens, "output_tokens": u.output_tokens,
            "cache_creation_5m_tokens": u.cache_creation_5m_tokens,
            "cache_creation_1h_tokens": u.cache_creation_1h_tokens}


def _tool_record(t: ToolCall) -> dict[str, Any]:
    return {"tool_use_id": t.tool_use_id, "name": t.name, "input_json": t.input_json,
            "started_s": t.started_s, "ended_s": t.ended_s, "is_error": t.is_error,
            "schema_id": t.schema_id}


def _hop_from(rec: dict[str, Any], by_id: dict[str, Hop]) -> Hop:
    if "hash_base" in rec:
        base = by_id[rec["hash_base"]]
        keep = int(rec["hash_keep"])
        if keep > len(base.hash_ids):
            raise ValueError(f"hash_keep {keep} exceeds the {len(base.hash_ids)} blocks of its base")
        hash_ids = base.hash_ids[:keep] + tuple(int(x) for x in rec["hash_tail"])
    else:
        hash_ids = tuple(int(x) for x in rec["hash_ids"])
    u = rec.get("usage")
    usage = None if u is None else Usage(**{k: int(v) for k, v in u.items()})
    tools = tuple(
        ToolCall(t["tool_use_id"], t["name"], t["input_json"], _opt_float(t.get("started_s")),
                 _opt_float(t.get("ended_s")), t.get("is_error"), t.get("schema_id"))
        for t in rec.get("tool_calls") or ()
    )
    return Hop(
        hop_id=str(rec["hop_id"]), session_id=str(rec["session_id"]),
        agent_id=str(rec["agent_id"]), index=int(rec["index"]), model=str(rec["model"]),
        start_s=float(rec["start_s"]), end_s=float(rec["end_s"]),
        prompt_tokens=int(rec["prompt_tokens"]), output_tokens=int(rec["output_tokens"]),
        shared_prefix_tokens=int(rec["shared_prefix_tokens"]), hash_ids=hash_ids, usage=usage,
        tool_calls=tools, stop_reason=rec.get("stop_reason"), request_id=rec.get("request_id"),
        **{k: _opt_float(v) for k, v in (rec.get("cpu") or {}).items() if k in _CPU_FIELDS},
    )


_CPU_FIELDS = frozenset({"parse_us", "validate_us", "assemble_us"})


def _opt_float(v: Any) -> float | None:
    return None if v is None else float(v)
