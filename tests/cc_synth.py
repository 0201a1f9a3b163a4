"""Writes small Claude Code 2.1.3xx-format transcripts with invented content, for fast tests.

Lines follow what the real CLI 2.1.328 writes (checked against its transcripts): an
``api-request-shape`` per system+tools shape, ``api-request-blob`` lines for messages that have
no transcript line, one ``api-request`` per call (``base`` + ``keep`` + ``tail`` of SHA-256
hashes of sorted compact ``{"role","content"}`` JSON), then one ``assistant`` line per content
block with ``requestRef`` and repeated ``usage``, and ``user`` lines with tool results.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import orjson

VERSION = "2.1.328"
TOOLS = [
    {"name": "Bash", "description": "Run a shell command (invented test description).",
     "input_schema": {"type": "object", "properties": {"command": {"type": "string"}},
                      "required": ["command"], "additionalProperties": False}},
    {"name": "Agent", "description": "Start a helper agent (invented test description).",
     "input_schema": {"type": "object", "properties": {"prompt": {"type": "string"},
                                                       "description": {"type": "string"}},
                      "required": ["prompt"]}},
]
SYSTEM = [{"type": "text", "text": "You are a test agent. " + "Be brief. " * 40}]
SUB_SYSTEM = [{"type": "text", "text": "You are a helper agent. Report back."}]


def sha(message: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(message, option=orjson.OPT_SORT_KEYS)).hexdigest()


def iso(t: float) -> str:
    return datetime.fromtimestamp(t, UTC).strftime("%Y-%m-%dT%H:%M:%S.%f")[:-3] + "Z"


@dataclass
class Writer:
    """Accumulates the lines of one agent's transcript."""

    session_id: str
    agent_id: str | None = None
    lines: list[dict[str, Any]] = field(default_factory=list)
    messages: list[str] = field(default_factory=list)
    last_request: str | None = None
    sent: int = 0
    calls: int = 0
    # defaults keep the output of the functions above byte-identical (replays/claude-current/)
    model: str = "claude-test-1"
    version: str = VERSION
    id_prefix: str = ""  # makes request/message ids unique across the sessions of a corpus
    tools: list[dict[str, Any]] | None = None  # None: TOOLS

    def _base(self, kind: str, t: float) -> dict[str, Any]:
        rec: dict[str, Any] = {"type": kind, "sessionId": self.session_id, "version": self.version,
                               "timestamp": iso(t)}
        if self.agent_id:
            rec["agentId"] = self.agent_id
            rec["isSidechain"] = True
        return rec

    def shape(self, t: float) -> str:
        system = SYSTEM if self.agent_id is None else SUB_SYSTEM
        shape = {"system": system, "tools": TOOLS if self.tools is None else self.tools}
        h = sha(shape)
        self.lines.append({**self._base("api-request-shape", t), "shapeHash": h, "shape": shape})
        return h

    def user_text(self, text: str, t: float, blob: bool = True) -> None:
        message = {"role": "user", "content": [{"type": "text", "text": text}]}
        if blob:
            self.lines.append({**self._base("api-request-blob", t), "hash": sha(message),
                               "message": message})
        self.messages.append(sha(message))

    def call(self, t: float, shape: str, blocks: list[dict[str, Any]], usage: dict[str, int],
             duration_s: float = 1.0, output_parts: tuple[int, ...] = ()) -> None:
        """One API call: request line, then one assistant line per block (partial outputs)."""
        rid = f"req-{self.id_prefix}{self.agent_id or 'main'}-{self.calls}"
        self.calls += 1
        rec = {**self._base("api-request", t), "id": rid, "shapeHash": shape,
               "params": {"model": self.model}, "keep": self.sent,
               "tail": self.messages[self.sent:]}
        if self.last_request:
            rec["base"] = self.last_request
        self.lines.append(rec)
        self.last_request, self.sent = rid, len(self.messages)
        parts = output_parts or tuple([usage["output_tokens"]] * len(blocks))
        for i, block in enumerate(blocks):
            u = {"input_tokens": usage["input_tokens"],
                 "cache_read_input_tokens": usage["cache_read_input_tokens"],
                 "cache_creation_input_tokens": usage["cache_creation_input_tokens"],
                 "output_tokens": parts[i]}
            msg = {"id": f"msg-{rid}", "type": "message", "role": "assistant",
                   "model": self.model, "content": [block],
                   "stop_reason": "tool_use" if block["type"] == "tool_use" else "end_turn",
                   "usage": u}
            self.lines.append({**self._base("assistant", t + duration_s * (i + 1) / len(blocks)),
                               "message": msg, "requestRef": rid,
                               "uuid": f"u-{rid}-{i}", "requestId": f"rq-{rid}"})
        self.messages.append(sha({"role": "assistant", "content": blocks}))

    def results(self, t: float, results: list[tuple[str, str, bool]],
                agent_result: str | None = None) -> None:
        content = [{"tool_use_id": tid, "type": "tool_result", "content": text, "is_error": err}
                   for tid, text, err in results]
        for block in content:
            rec = {**self._base("user", t), "message": {"role": "user", "content": [block]}}
            if agent_result:
                rec["toolUseResult"] = {"agentId": agent_result, "status": "completed"}
            self.lines.append(rec)
        self.messages.append(sha({"role": "user", "content": content}))

    def user_line(self, content: Any, t: float, extra: dict[str, Any] | None = None) -> str:
        """A ``user`` line that is one message of the next request (a prompt, a notice)."""
        message = {"role": "user", "content": content}
        self.lines.append({**self._base("user", t), "message": message, **(extra or {})})
        h = sha(message)
        self.messages.append(h)
        return h

    def results_at(self, results: list[tuple[float, dict[str, Any], dict[str, Any] | None]]) -> None:
        """Parallel tool results, each its own line and time (``(t, block, toolUseResult)``),
        one user message on the wire."""
        for t, block, tool_result in results:
            rec = {**self._base("user", t), "message": {"role": "user", "content": [block]}}
            if tool_result is not None:
                rec["toolUseResult"] = tool_result
            self.lines.append(rec)
        self.messages.append(sha({"role": "user", "content": [b for _, b, _ in results]}))

    def compact(self) -> None:
        """Start a new chain (after a compaction): the next request has no ``base``."""
        self.messages, self.sent, self.last_request = [], 0, None

    def write(self, path: Path) -> None:
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in self.lines))


def usage(inp: int, read: int, write: int, out: int) -> dict[str, int]:
    return {"input_tokens": inp, "cache_read_input_tokens": read,
            "cache_creation_input_tokens": write, "output_tokens": out}


SID = "5e55a000-0000-4000-8000-000000000001"
SUB = "a0000000000000001"
T0 = 1_790_000_000.0
# prompt totals per hop: main 3000, 3300, 3900; sub 2000, 2150
EXPECTED_PROMPTS = {"main": [3000, 3300, 3900], SUB: [2000, 2150]}


def write_demo_session(projects: Path) -> Path:
    """A main agent that runs Bash, spawns one sub-agent (which runs Bash), then answers."""
    project = projects / "-work-demo"
    main = Writer(SID)
    shape = main.shape(T0)
    main.user_text("List the files, then ask a helper to count them.", T0)
    main.call(T0 + 0.1, shape, [{"type": "text", "text": "Listing."},
                                {"type": "tool_use", "id": "toolu_m0", "name": "Bash",
                                 "input": {"command": "ls"}}],
              usage(3000, 0, 0, 40), output_parts=(7, 40))
    main.results(T0 + 3.1, [("toolu_m0", "a\nb\nc", False)])
    main.call(T0 + 3.2, shape, [{"type": "tool_use", "id": "toolu_m1", "name": "Agent",
                                 "input": {"prompt": "Count the files", "description": "count"}}],
              usage(300, 3000, 0, 30))
    sub = Writer(SID, SUB)
    sub_shape = sub.shape(T0 + 4.3)
    sub.user_text("Count the files", T0 + 4.3)
    sub.call(T0 + 4.4, sub_shape, [{"type": "tool_use", "id": "toolu_s0", "name": "Bash",
                                    "input": {"command": "ls | wc -l"}}], usage(2000, 0, 0, 20))
    sub.results(T0 + 6.4, [("toolu_s0", "3", False)])
    sub.call(T0 + 6.5, sub_shape, [{"type": "text", "text": "There are 3 files."}],
             usage(150, 2000, 0, 10))
    main.results(T0 + 8.0, [("toolu_m1", "There are 3 files.", False)], agent_result=SUB)
    main.call(T0 + 8.1, shape, [{"type": "text", "text": "Three files."}], usage(600, 3300, 0, 5))
    main.write(project / f"{SID}.jsonl")
    sub.write(project / SID / "subagents" / f"agent-{SUB}.jsonl")
    meta = {"agentType": "general-purpose", "toolUseId": "toolu_m1", "spawnDepth": 1}
    (project / SID / "subagents" / f"agent-{SUB}.meta.json").write_bytes(orjson.dumps(meta))
    return project
