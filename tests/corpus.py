"""Writes realistic corpora of Claude Code transcripts with known ground truth (issue 14).

``write_corpus(root, sessions=100, seed=0)`` writes a ``~/.claude/projects``-like tree of invented
sessions whose sizes follow the measured aggregates in ``fixtures/profiles/`` (hops and agents per
session, prompt size and context growth, output tokens, tool mix and durations, human think time),
in every transcript layout the importer reads, and returns a :class:`CorpusManifest`: per session
the hops of each agent with their role (``main`` / ``subagent`` / ``side``) and turn, the turns with
their recorded start, end and think time before them, the Warmup files and which file is a resumed
copy of which. ``docs/claude-code.md`` ("Shapes in real corpora") describes every shape written.

Content is short invented text; prompt sizes live only in ``usage`` (the legacy importer sizes
requests from usage, the 2.1.3xx blobs stay small), so a 100-session corpus is a few MB and
imports in about a second. Randomness comes only from one seeded ``numpy.random.Generator``:
the same arguments give a byte-identical tree and manifest.

Run ``python -m tests.corpus OUT_DIR --sessions 100 --seed 0 [--long]`` to write one.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import orjson

from tests.cc_synth import Writer

__all__ = ["AgentTruth", "CorpusManifest", "Layout", "Profile", "Quantiles", "Role", "SessionTruth",
           "TurnTruth", "UserLine", "load_profile", "main", "write_corpus"]

PROFILE_PATH = Path(__file__).resolve().parent.parent / "fixtures" / "profiles" / "claude-code-sessions.json"
MAIN = "main"
TTL_5M_S = 300.0  # an agent idle for longer finds its prompt cache cold
COMPACT_AT_TOKENS = 160_000  # auto-compaction: the context restarts from a summary
DAY_S = 86_400.0


class Layout(StrEnum):
    """How a session's transcript is laid out on disk (one per Claude Code generation)."""

    V1_SIDECHAIN = "1.0.x-sidechain"  # sub-agents are isSidechain lines inside the session file
    V2_AGENT_FILES = "2.0.x-agent-files"  # agent-<id>.jsonl beside the session file, Warmup files
    V21_SUBAGENTS = "2.1.x-subagents"  # <session>/subagents/agent-<id>.jsonl + .meta.json
    CURRENT = "2.1.3xx-current"  # api-request / -shape / -blob lines (tests/cc_synth.py)


class Role(StrEnum):
    """What an agent's hops are to the conversation (issue 14 point 2)."""

    MAIN = "main"
    SUBAGENT = "subagent"  # spawned by an Agent/Task tool_use of its parent
    SIDE = "side"  # billed, but no tool_use spawned it: Warmup and compaction calls


class UserLine(StrEnum):
    """Kinds of ``user`` lines written; only ``human`` starts a turn (issue 14 point 1)."""

    HUMAN = "human"
    TOOL_RESULT = "tool_result"
    AGENT_REPORT = "agent_report"  # the tool result of a foreground Agent/Task call
    AGENT_LAUNCHED = "agent_launched"  # the immediate tool result of a background Agent call
    TASK_NOTIFICATION = "task_notification"  # a background sub-agent's completion, later
    META = "is_meta"  # isMeta: true (the local-command caveat)
    SLASH_COMMAND = "slash_command"  # <command-name>/model</command-name>...
    COMMAND_OUTPUT = "local_command_output"  # <local-command-stdout>...</local-command-stdout>
    INTERRUPT = "interrupt"  # [Request interrupted by user] / [... for tool use]
    SYSTEM_REMINDER = "system_reminder"  # <system-reminder>...</system-reminder>
    COMPACT_SUMMARY = "compact_summary"  # isCompactSummary: true after a compact_boundary
    SUBAGENT_PROMPT = "subagent_prompt"  # the first line of a sub-agent (its Task prompt)
    WARMUP = "warmup"  # the first line of a Warmup side agent: "Warmup"
    SIDE_PROMPT = "side_prompt"  # the first line of another side call (2.1.x compaction)


# --- measured distributions ------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Quantiles:
    """A distribution given by a few quantiles, sampled by log-linear interpolation between them."""

    probs: tuple[float, ...]
    values: tuple[float, ...]

    @classmethod
    def of(cls, entry: dict[str, float]) -> Quantiles:
        """From a profile entry ``{"10", "50", "90", "99", "max"}``; the minimum is extrapolated."""
        p10, p50, p90, p99, top = (max(float(entry[k]), 1e-3) for k in ("10", "50", "90", "99", "max"))
        low = max(p10 * p10 / p50, 1e-3)
        values = np.maximum.accumulate([low, p10, p50, p90, p99, top])
        return cls((0.0, 0.1, 0.5, 0.9, 0.99, 1.0), tuple(float(v) for v in values))

    def sample(self, rng: np.random.Generator, lo: float = 0.0, hi: float = 1.0) -> float:
        """One draw, restricted to the quantile range [lo, hi]."""
        u = rng.uniform(lo, hi)
        return float(np.exp(np.interp(u, self.probs, np.log(self.values))))


@dataclass(frozen=True, slots=True)
class Profile:
    """The distributions of one measured corpus (``fixtures/profiles/README.md``)."""

    name: str
    hops_per_session: Quantiles
    agents_per_session: Quantiles
    prompt_tokens: Quantiles
    new_tokens: Quantiles
    output_tokens: Quantiles
    think_s: Quantiles
    tools: dict[str, tuple[float, Quantiles]]  # name -> (share, duration_s)


def load_profile(corpus: str = "corpus_A", path: Path = PROFILE_PATH) -> Profile:
    """Read one corpus's distributions from the profile JSON."""
    data = orjson.loads(path.read_bytes())[corpus]
    tools = {name: (float(t["share"]), Quantiles.of(t["duration_s"]))
             for name, t in sorted(data["tool_share_and_duration_s"].items())
             if name not in ("Task", "Agent")}  # spawns are planned, not drawn
    return Profile(corpus, Quantiles.of(data["hops_per_session"]),
                   Quantiles.of(data["agents_per_session"]), Quantiles.of(data["prompt_tokens_per_hop"]),
                   Quantiles.of(data["new_tokens_per_hop (context growth)"]),
                   Quantiles.of(data["output_tokens_per_hop"]),
                   Quantiles.of(data["wait_after_hop_without_tools_s (human think time, approx.)"]), tools)


# --- ground truth ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class AgentTruth:
    """One agent of a session: its billed hops (request ids as the importer names them) and turns."""

    agent_id: str  # "main", the on-disk id, or "sidechain-<n>" (1.0.x, numbered as the importer does)
    role: Role
    kind: str  # main | task | warmup | compact
    model: str
    file: str  # relative to the corpus root
    request_ids: tuple[str, ...]
    turns: tuple[int, ...]  # turn of each hop (side hops: the turn in progress, 0 before the first)
    spawn_tool_use_id: str | None = None
    background: bool = False

    @property
    def hops(self) -> int:
        return len(self.request_ids)


@dataclass(frozen=True, slots=True)
class TurnTruth:
    """A turn as recorded: from its first hop's start to the end of the last hop belonging to it."""

    index: int
    start_s: float
    end_s: float
    hops: int  # main + sub-agent hops (side hops excluded)
    think_before_s: float | None  # from the previous turn's end (None for a session's first)

    @property
    def duration_s(self) -> float:
        return self.end_s - self.start_s


@dataclass(frozen=True, slots=True)
class SessionTruth:
    """What the importer should find in one session."""

    session_id: str
    project: str
    layout: Layout
    version: str
    file: str
    agents: tuple[AgentTruth, ...]
    turns: tuple[TurnTruth, ...]
    warmup_files: tuple[str, ...] = ()
    resumed_from: str | None = None  # the session whose history this file copies
    copied_request_ids: tuple[str, ...] = ()  # calls repeated from it (they belong there)
    compactions: int = 0
    user_lines: dict[str, int] = field(default_factory=dict)  # kind -> lines written here

    @property
    def hops(self) -> int:
        return sum(a.hops for a in self.agents)

    def hops_by_role(self) -> dict[str, int]:
        out = {r.value: 0 for r in Role}
        for a in self.agents:
            out[a.role.value] += a.hops
        return out


@dataclass(frozen=True, slots=True)
class CorpusManifest:
    """Ground truth of a generated corpus; ``to_json`` is what ``manifest.json`` holds."""

    seed: int
    profile: str
    sessions: tuple[SessionTruth, ...]

    @property
    def hops(self) -> int:
        return sum(s.hops for s in self.sessions)

    def totals(self) -> dict[str, Any]:
        layouts: dict[str, int] = {}
        roles = {r.value: 0 for r in Role}
        agents = {r.value: 0 for r in Role}
        for s in self.sessions:
            layouts[s.layout.value] = layouts.get(s.layout.value, 0) + 1
            for a in s.agents:
                roles[a.role.value] += a.hops
                agents[a.role.value] += a.hops > 0
        return {"sessions": len(self.sessions), "hops": self.hops, "hops_by_role": roles,
                "agents_by_role": agents, "layouts": dict(sorted(layouts.items())),
                "turns": sum(len(s.turns) for s in self.sessions),
                "warmup_files": sum(len(s.warmup_files) for s in self.sessions),
                "resumed": sum(s.resumed_from is not None for s in self.sessions)}

    def to_json(self) -> bytes:
        sessions = [_session_json(s) for s in self.sessions]
        body = {"seed": self.seed, "profile": self.profile, "totals": self.totals(), "sessions": sessions}
        return orjson.dumps(body, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def _session_json(s: SessionTruth) -> dict[str, Any]:
    agents = [{"agent_id": a.agent_id, "role": a.role.value, "kind": a.kind, "model": a.model,
               "file": a.file, "hops": a.hops, "request_ids": list(a.request_ids), "turns": list(a.turns),
               "spawn_tool_use_id": a.spawn_tool_use_id, "background": a.background} for a in s.agents]
    turns = [{"index": t.index, "start_s": t.start_s, "end_s": t.end_s, "duration_s": round(t.duration_s, 3),
              "hops": t.hops, "think_before_s": t.think_before_s} for t in s.turns]
    return {"session_id": s.session_id, "project": s.project, "layout": s.layout.value, "version": s.version,
            "file": s.file, "hops": s.hops, "hops_by_role": s.hops_by_role(), "agents": agents,
            "turns": turns, "warmup_files": list(s.warmup_files), "resumed_from": s.resumed_from,
            "copied_request_ids": list(s.copied_request_ids), "compactions": s.compactions,
            "user_lines": s.user_lines}


# --- the plan of a session (layout-independent) ----------------------------------------------


@dataclass(slots=True)
class _Line:
    """A non-assistant line of an agent's chain: what the next call answers."""

    kind: UserLine
    t: float
    content: Any
    extra: dict[str, Any] = field(default_factory=dict)


@dataclass(slots=True)
class _Call:
    request_id: str
    message_id: str
    start_s: float
    end_s: float
    model: str
    usage: dict[str, int]
    blocks: list[dict[str, Any]]
    before: list[_Line]  # lines written after the previous call, which this call answers
    turn: int


@dataclass(slots=True)
class _Agent:
    agent_id: str
    role: Role
    kind: str
    model: str
    calls: list[_Call] = field(default_factory=list)
    after: list[_Line] = field(default_factory=list)  # lines after the last call
    spawn_tool_use_id: str | None = None
    background: bool = False
    agent_type: str | None = None
    description: str = ""
    prompt_tokens: int = 0  # context size of the last call
    output_tokens: int = 0
    last_end_s: float = 0.0


@dataclass(slots=True)
class _Session:
    session_id: str
    project: str
    layout: Layout
    version: str
    agents: list[_Agent]
    turns: list[TurnTruth] = field(default_factory=list)
    resumed_from: _Session | None = None
    compactions: int = 0


_LAYOUTS = {  # layout -> (share of sessions, first day, last day, versions)
    Layout.V1_SIDECHAIN: (0.25, 0, 115, ("1.0.24", "1.0.51", "1.0.88", "1.0.112", "1.0.128")),
    Layout.V2_AGENT_FILES: (0.30, 122, 200, ("2.0.14", "2.0.30", "2.0.55", "2.0.76")),
    Layout.V21_SUBAGENTS: (0.25, 220, 300, ("2.1.9", "2.1.42", "2.1.87", "2.1.114")),
    Layout.CURRENT: (0.20, 322, 470, ("2.1.305", "2.1.328")),
}
T_START = 1_748_851_200.0  # 2025-06-02T08:00:00Z
OPUS, SONNET, HAIKU = "claude-opus-4-5-20251101", "claude-sonnet-4-5-20250929", "claude-haiku-4-5-20251001"
_MAIN_MODELS = {Layout.V1_SIDECHAIN: ("claude-sonnet-4-20250514", "claude-opus-4-20250514")}
_PROJECTS = ("webapp", "dates-lib", "infra", "cli-tool", "ml-pipeline", "docs-site", "mobile", "agentgraph")
_READ_ONLY = ("Read", "Grep", "Glob", "Bash")
_B62 = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
COMPACT_TEXT = ("This session is being continued from a previous conversation that ran out of context. "
                "The summary below covers the earlier portion of the conversation.\n\nSummary: (invented).")
CAVEAT = ("Caveat: The messages below were generated by the user while running local commands. DO NOT "
          "respond to these messages or otherwise consider them in your response unless the user "
          "explicitly asks you to.")
REJECTED = ("The user doesn't want to proceed with this tool use. The tool use was rejected (eg. if it "
            "was a file edit, the new_string was NOT written to the file). STOP what you are doing and "
            "wait for the user to tell you how to proceed.")


class _Planner:
    """Draws sessions from the profile: turns of main hops, tool calls, sub-agents, side calls."""

    def __init__(self, rng: np.random.Generator, profile: Profile) -> None:
        self.rng = rng
        self.p = profile
        names = sorted(profile.tools)
        shares = np.array([profile.tools[n][0] for n in names])
        self.tool_names, self.tool_p = names, shares / shares.sum()

    # ids and small draws

    def _b62(self, n: int) -> str:
        return "".join(_B62[i] for i in self.rng.integers(0, 62, n))

    def uuid(self) -> str:
        h = self.rng.bytes(16).hex()
        return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{'89ab'[int(h[16], 16) % 4]}{h[17:20]}-{h[20:32]}"

    def hex(self, n: int) -> str:
        return self.rng.bytes((n + 1) // 2).hex()[:n]

    def chance(self, p: float) -> bool:
        return bool(self.rng.random() < p)

    def pick(self, options: tuple[str, ...], weights: tuple[float, ...] | None = None) -> str:
        return str(options[int(self.rng.choice(len(options), p=weights))])

    def tool_id(self) -> str:
        return "toolu_01" + self._b62(22)

    def ids(self, layout: Layout, session_id: str, agent: str, n: int) -> tuple[str, str]:
        """(request id as the importer names the hop, message id)."""
        if layout is Layout.CURRENT:
            rid = f"req-{session_id[:8]}-{agent if agent != MAIN else 'main'}-{n}"  # as Writer writes it
            return rid, f"msg-{rid}"
        return "req_011C" + self._b62(20), "msg_01" + self._b62(22)

    # one session

    def session(self, layout: Layout, main_hops: int | None = None,
                sub_agents: int | None = None) -> _Session:
        _, first_day, last_day, versions = _LAYOUTS[layout]
        t0 = round(T_START + self.rng.uniform(first_day, last_day) * DAY_S, 3)
        sid = self.uuid()
        models = _MAIN_MODELS.get(layout, (SONNET, OPUS))
        main = _Agent(MAIN, Role.MAIN, "main", self.pick(models, (0.6, 0.4)))
        s = _Session(sid, f"-work-{self.pick(_PROJECTS)}", layout, self.pick(versions), [main])
        n = main_hops if main_hops is not None else max(1, round(self.p.hops_per_session.sample(self.rng)))
        k = sub_agents if sub_agents is not None else max(0, round(self.p.agents_per_session.sample(self.rng)) - 1)
        turns = self._split(n)
        spawns = self._spawn_slots(turns, k)
        if layout is Layout.V2_AGENT_FILES:
            self._warmups(s, t0, idle=self.chance(0.3))
        self._run_turns(s, main, turns, spawns, t0, first_turn=0)
        return s

    def _split(self, n: int) -> list[int]:
        """Main hops per turn (about 11 hops a turn, as both measured corpora have)."""
        out: list[int] = []
        while sum(out) < n:
            out.append(min(n - sum(out), max(1, int(self.rng.geometric(1 / 9)))))
        return out

    def _spawn_slots(self, turns: list[int], k: int) -> dict[tuple[int, int], int]:
        """(turn, hop in turn) -> number of Agent/Task calls it emits (never a turn's last hop)."""
        slots = [(t, i) for t, n in enumerate(turns) for i in range(n - 1)]
        out: dict[tuple[int, int], int] = {}
        for _ in range(k if slots else 0):
            slot = slots[int(self.rng.integers(len(slots)))]
            out[slot] = out.get(slot, 0) + 1
        return out

    def _run_turns(self, s: _Session, main: _Agent, turns: list[int],
                   spawns: dict[tuple[int, int], int], t: float, first_turn: int) -> None:
        pending: list[_Line] = []  # lines the next main call answers
        for ti, n in enumerate(turns):
            turn = first_turn + ti
            if ti or first_turn:
                t += self._think()
            pending += self._prompt_lines(s, t)
            t = pending[-1].t
            start_s, hops_before = -1.0, self._hops(s)
            notes: list[_Line] = []  # background completions still to come
            for i in range(n):
                last = i == n - 1
                if last and notes:  # the answer waits for every background sub-agent
                    t = max(t, max(x.t for x in notes) + 0.3)
                pending += [x for x in notes if x.t <= t]
                notes = [x for x in notes if x.t > t]
                pending.sort(key=lambda x: x.t)
                if main.prompt_tokens > COMPACT_AT_TOKENS:
                    self._compact(s, main, pending, t, turn)
                interrupted = last and self.chance(0.06)
                call = self._call(s, main, t, pending, turn, tools=0 if last and not interrupted else None,
                                  spawn=spawns.get((ti, i), 0), force_tool=interrupted)
                pending = []
                start_s = call.start_s if i == 0 else start_s
                t, results, launched = self._tools(s, main, call, turn, interrupted)
                notes += launched
                pending += results
                if interrupted:
                    marker = "[Request interrupted by user for tool use]"
                    pending.append(_Line(UserLine.INTERRUPT, round(t + 0.01, 3), [{"type": "text", "text": marker}]))
                elif last and self.chance(0.04):
                    marker = "[Request interrupted by user]"
                    pending.append(_Line(UserLine.INTERRUPT, round(call.end_s + 0.5, 3),
                                         [{"type": "text", "text": marker}]))
            end = max(c.end_s for a in s.agents if a.role is not Role.SIDE for c in a.calls if c.turn == turn)
            think = round(start_s - s.turns[-1].end_s, 3) if s.turns else None
            s.turns.append(TurnTruth(turn, start_s, end, self._hops(s) - hops_before, think))
            t = max(t, end)
        main.after = pending

    def _hops(self, s: _Session) -> int:
        return sum(len(a.calls) for a in s.agents if a.role is not Role.SIDE)

    def _think(self) -> float:
        """Human think time: the measured distribution, and now and then days away."""
        if self.chance(0.006):  # days away inside one session; resumed sessions add more
            return round(float(np.exp(self.rng.uniform(np.log(DAY_S / 2), np.log(5 * DAY_S)))), 3)
        return round(self.p.think_s.sample(self.rng), 3)

    def _prompt_lines(self, s: _Session, t: float) -> list[_Line]:
        lines: list[_Line] = []
        if self.chance(0.12):  # a local slash command first: caveat, command, its output
            lines.append(_Line(UserLine.META, t, CAVEAT, {"isMeta": True}))
            cmd = ("<command-name>/model</command-name>\n<command-message>model</command-message>\n"
                   "<command-args></command-args>")
            lines.append(_Line(UserLine.SLASH_COMMAND, t, cmd))
            out = f"<local-command-stdout>Set model to {s.agents[0].model}</local-command-stdout>"
            lines.append(_Line(UserLine.COMMAND_OUTPUT, round(t + 0.05, 3), out))
            t = round(t + self.p.think_s.sample(self.rng, 0.0, 0.5), 3)
        n = len(s.turns)
        lines.append(_Line(UserLine.HUMAN, t, f"Task {n + 1}: please change the code (invented prompt {self.hex(6)})."))
        return lines

    def _compact(self, s: _Session, agent: _Agent, pending: list[_Line], t: float, turn: int) -> None:
        """Auto-compaction before the next call: a side call in 2.1.x writes the summary."""
        s.compactions += 1
        if s.layout is Layout.V21_SUBAGENTS:
            side = _Agent(f"acompact-{self.hex(16)}", Role.SIDE, "compact", agent.model)
            s.agents.append(side)
            self._call(s, side, t, [_Line(UserLine.SIDE_PROMPT, t, "Summarize the conversation so far (invented).")],
                       turn, tools=0, context=agent.prompt_tokens)
            t = side.last_end_s
        pending.append(_Line(UserLine.COMPACT_SUMMARY, round(t + 0.05, 3), COMPACT_TEXT,
                             {"isCompactSummary": True, "isVisibleInTranscriptOnly": True}))
        agent.prompt_tokens = int(self.p.prompt_tokens.sample(self.rng, 0.0, 0.3)) + 3000

    def _call(self, s: _Session, agent: _Agent, t: float, before: list[_Line], turn: int, *,
              tools: int | None = None, spawn: int = 0, force_tool: bool = False,
              context: int | None = None) -> _Call:
        """One API call answering ``before`` (its last line's time is the call's start in the
        legacy layouts; 2.1.3xx sends the request a moment later)."""
        rng = self.rng
        start = round(t + (rng.uniform(0.01, 0.3) if s.layout is Layout.CURRENT else 0.0), 3)
        first = not agent.calls and agent.prompt_tokens == 0  # (a resumed main agent has a context)
        cold = not agent.calls or start - agent.last_end_s > TTL_5M_S
        compacted = any(x.kind is UserLine.COMPACT_SUMMARY for x in before)
        if first:
            lo_hi = (0.0, 0.5) if agent.role is Role.MAIN else (0.0, 0.2)
            prompt = context or int(self.p.prompt_tokens.sample(rng, *lo_hi))
        elif compacted:
            prompt = agent.prompt_tokens
        else:
            prompt = agent.prompt_tokens + int(self.p.new_tokens.sample(rng))  # growth includes the output
        inp = int(rng.integers(3, 12))
        system = min(prompt - inp, 9000 if agent.role is Role.MAIN else 0)
        read = system if cold or compacted else min(agent.prompt_tokens, prompt - inp)
        usage = {"input_tokens": inp, "cache_read_input_tokens": max(0, read),
                 "cache_creation_input_tokens": prompt - inp - max(0, read), "output_tokens": 0}
        n_tools = tools if tools is not None else (1 if force_tool else int(rng.choice([1, 2, 3], p=[0.85, 0.1, 0.05])))
        blocks: list[dict[str, Any]] = []
        if rng.random() < 0.2:
            blocks.append({"type": "thinking", "thinking": "Thinking (invented).", "signature": "c2ln"})
        if n_tools == 0 or rng.random() < 0.5:
            blocks.append({"type": "text", "text": "Done (invented answer)." if n_tools == 0 else "Next step."})
        names = [self._tool_name(agent, force_tool) for _ in range(n_tools)]
        blocks += [{"type": "tool_use", "id": self.tool_id(), "name": name, "input": _tool_input(name)}
                   for name in names]
        blocks += [self._spawn_block(s, i) for i in range(spawn)]
        out = max(len(blocks) * 12, int(self.p.output_tokens.sample(rng)))
        usage["output_tokens"] = out
        duration = round(0.6 + float(rng.exponential(1.2)) + out / 70.0, 3)
        rid, mid = self.ids(s.layout, s.session_id, agent.agent_id, len(agent.calls))
        call = _Call(rid, mid, start, round(start + duration, 3), agent.model, usage, blocks, list(before), turn)
        agent.calls.append(call)
        agent.prompt_tokens, agent.output_tokens, agent.last_end_s = prompt, out, call.end_s
        return call

    def _tool_name(self, agent: _Agent, force: bool) -> str:
        if force:
            return "Bash"
        if agent.role is Role.SUBAGENT:
            return self.pick(_READ_ONLY)
        return str(self.tool_names[int(self.rng.choice(len(self.tool_names), p=self.tool_p))])

    def _spawn_block(self, s: _Session, i: int) -> dict[str, Any]:
        name = "Task" if s.layout in (Layout.V1_SIDECHAIN, Layout.V2_AGENT_FILES) else "Agent"
        background = s.layout in (Layout.V21_SUBAGENTS, Layout.CURRENT) and self.chance(0.6)
        inp: dict[str, Any] = {"description": f"Explore part {i} (invented)",
                               "prompt": f"Find the code for part {i} and report ({self.hex(8)})."}
        if s.layout is not Layout.V1_SIDECHAIN:
            inp["subagent_type"] = self.pick(("Explore", "general-purpose"))
        if name == "Agent" and not background:
            inp["run_in_background"] = False
        return {"type": "tool_use", "id": self.tool_id(), "name": name, "input": inp}

    def _tools(self, s: _Session, agent: _Agent, call: _Call, turn: int,
               interrupted: bool) -> tuple[float, list[_Line], list[_Line]]:
        """Run the call's tool_uses: their result lines, the time the agent goes on, and the
        completion notices of background sub-agents (which arrive later)."""
        results: list[_Line] = []
        notes: list[_Line] = []
        for block in call.blocks:
            if block["type"] != "tool_use":
                continue
            if block["name"] in ("Task", "Agent"):
                line, note = self._subagent(s, block, call.end_s, turn)
                results.append(line)
                notes += [note] if note is not None else []
                continue
            if interrupted:
                done, text, err = round(call.end_s + self.rng.uniform(2, 40), 3), REJECTED, True
            else:
                done = round(call.end_s + self.p.tools[block["name"]][1].sample(self.rng), 3)
                text, err = f"(invented {block['name']} output)", bool(self.rng.random() < 0.05)
            results.append(_Line(UserLine.TOOL_RESULT, done, [{"tool_use_id": block["id"], "type": "tool_result",
                                                               "content": text, "is_error": err}]))
        t = max((x.t for x in results), default=call.end_s)
        if results and not interrupted and agent.calls and self.chance(0.1):
            results.append(_Line(UserLine.SYSTEM_REMINDER, t, [{"type": "text", "text":
                           "<system-reminder>\nThe todo list is empty (invented reminder).\n</system-reminder>"}]))
        return t, sorted(results, key=lambda x: x.t), notes

    def _subagent(self, s: _Session, block: dict[str, Any], t: float, turn: int) -> tuple[_Line, _Line | None]:
        """Run a sub-agent from its spawning tool_use; its tool result, and its notice if background."""
        inp = block["input"]
        background = block["name"] == "Agent" and "run_in_background" not in inp
        if s.layout is Layout.V1_SIDECHAIN:
            agent_id, model = f"sidechain-{sum(a.kind == 'task' for a in s.agents) + 1}", s.agents[0].model
        else:
            agent_id = self.hex(8) if s.layout is Layout.V2_AGENT_FILES else "a" + self.hex(16)
            model = HAIKU if self.chance(0.5) else s.agents[0].model
        sub = _Agent(agent_id, Role.SUBAGENT, "task", model, spawn_tool_use_id=block["id"],
                     background=background, agent_type=inp.get("subagent_type"), description=inp["description"])
        s.agents.append(sub)
        pending = [_Line(UserLine.SUBAGENT_PROMPT, round(t + 0.1, 3), inp["prompt"])]
        hops = max(1, min(60, round(float(self.rng.lognormal(np.log(5), 0.8)))))
        now = pending[0].t
        for i in range(hops):
            call = self._call(s, sub, now, pending, turn, tools=0 if i == hops - 1 else None)
            now, pending, _ = self._tools(s, sub, call, turn, interrupted=False)
        sub.after = pending
        report = f"Part found in src/part.py (invented report of {agent_id})."
        tool_uses = sum(b["type"] == "tool_use" for c in sub.calls for b in c.blocks)
        stats = {"totalDurationMs": int((sub.last_end_s - t) * 1000), "totalTokens": sub.prompt_tokens,
                 "totalToolUseCount": tool_uses}
        content = [{"type": "text", "text": report}]
        if background:
            launched = f"Async agent launched successfully.\nagentId: {agent_id}"
            result = [_result(block["id"], [{"type": "text", "text": launched}])]
            line = _Line(UserLine.AGENT_LAUNCHED, round(t + 0.05, 3), result,
                         {"toolUseResult": {"status": "async_launched", "agentId": agent_id,
                                            "description": inp["description"], "prompt": inp["prompt"]}})
            note = (f"<task-notification>\n<task-id>{agent_id}</task-id>\n<status>completed</status>\n"
                    f"<summary>Agent \"{inp['description']}\" completed</summary>\n<result>{report}</result>\n"
                    "</task-notification>")
            notice = [{"type": "text", "text": note}]
            return line, _Line(UserLine.TASK_NOTIFICATION, round(sub.last_end_s + 0.2, 3), notice)
        tool_result: dict[str, Any] = {"content": content, **stats}
        if s.layout is not Layout.V1_SIDECHAIN:
            tool_result = {"status": "completed", "prompt": inp["prompt"], "agentId": agent_id, **tool_result}
        return _Line(UserLine.AGENT_REPORT, round(sub.last_end_s + 0.3, 3), [_result(block["id"], content)],
                     {"toolUseResult": tool_result}), None

    def _warmups(self, s: _Session, t0: float, idle: bool) -> None:
        """2.0.x Warmup side calls at startup; ``idle``: the first prompt came days later."""
        start = round(t0 - (self.rng.uniform(DAY_S, 4 * DAY_S) if idle else self.rng.uniform(2, 20)), 3)
        turn = len(s.turns)
        for _ in range(int(self.rng.integers(1, 3))):
            side = _Agent(self.hex(8), Role.SIDE, "warmup", HAIKU)
            s.agents.append(side)
            line = _Line(UserLine.WARMUP, start, "Warmup")
            self._call(s, side, start, [line], turn, tools=0, context=int(self.rng.integers(3000, 14000)))
            start = round(start + self.rng.uniform(0.01, 0.5), 3)

    def resume(self, orig: _Session) -> _Session:
        """A resumed copy of ``orig``, days later: its history, then turns of its own."""
        sid = self.uuid()
        main = _Agent(MAIN, Role.MAIN, "main", orig.agents[0].model)
        om = orig.agents[0]
        main.prompt_tokens, main.output_tokens, main.last_end_s = om.prompt_tokens, om.output_tokens, om.last_end_s
        s = _Session(sid, orig.project, orig.layout, orig.version, [main], resumed_from=orig)
        t = max(c.end_s for a in orig.agents for c in a.calls)
        t = round(t + float(np.exp(self.rng.uniform(np.log(3600), np.log(6 * DAY_S)))), 3)
        if orig.layout is Layout.V2_AGENT_FILES:
            self._warmups(s, t, idle=False)
        turns = self._split(max(1, round(self.p.hops_per_session.sample(self.rng, 0.0, 0.8))))
        k = max(0, round(self.p.agents_per_session.sample(self.rng)) - 1)
        self._run_turns(s, main, turns, self._spawn_slots(turns, k), t, first_turn=0)
        s.turns = [TurnTruth(x.index, x.start_s, x.end_s, x.hops,
                             round(x.start_s - om.last_end_s, 3) if x.index == 0 else x.think_before_s)
                   for x in s.turns]
        return s


def _result(tool_use_id: str, content: Any) -> dict[str, Any]:
    return {"tool_use_id": tool_use_id, "type": "tool_result", "content": content, "is_error": False}


def _tool_input(name: str) -> dict[str, Any]:
    inputs: dict[str, dict[str, Any]] = {
        "Bash": {"command": "make test", "description": "Run the tests"},
        "Read": {"file_path": "/work/src/app.py"},
        "Edit": {"file_path": "/work/src/app.py", "old_string": "a = 1", "new_string": "a = 2"},
        "MultiEdit": {"file_path": "/work/src/app.py", "edits": [{"old_string": "x", "new_string": "y"}]},
        "Write": {"file_path": "/work/src/new.py", "content": "print('hi')\n"},
        "Grep": {"pattern": "def main"}, "Glob": {"pattern": "src/**/*.py"},
        "TodoWrite": {"todos": [{"content": "Fix it", "status": "in_progress", "activeForm": "Fixing it"}]},
        "WebFetch": {"url": "https://example.com/", "prompt": "Summarize"},
        "WebSearch": {"query": "python iso week"}, "ExitPlanMode": {"plan": "1. Fix it."},
    }
    return inputs.get(name, {"name": name})


# --- writing the files -----------------------------------------------------------------------


def _iso(t: float) -> str:
    """ISO time of ``t`` rounded to the millisecond (the manifest's times are the same numbers)."""
    from datetime import UTC, datetime

    ms = round(t * 1000)
    return datetime.fromtimestamp(ms // 1000, UTC).strftime("%Y-%m-%dT%H:%M:%S") + f".{ms % 1000:03d}Z"


class _LegacyFile:
    """The lines of one legacy-format file, in time order when written."""

    def __init__(self, session: _Session, planner: _Planner) -> None:
        self.s = session
        self.uuid = planner.uuid
        self.lines: list[tuple[float, int, dict[str, Any]]] = []
        self.counts: dict[str, int] = {}

    def _base(self, kind: str, parent: str | None, agent: _Agent) -> dict[str, Any]:
        rec: dict[str, Any] = {"parentUuid": parent, "isSidechain": agent.role is not Role.MAIN,
                               "userType": "external", "cwd": "/work/" + self.s.project.removeprefix("-work-"),
                               "sessionId": self.s.session_id, "version": self.s.version, "gitBranch": "main"}
        if agent.role is not Role.MAIN and self.s.layout is not Layout.V1_SIDECHAIN:
            rec["agentId"] = agent.agent_id
        rec["type"] = kind
        return rec

    def add(self, t: float, rec: dict[str, Any]) -> str:
        rec["uuid"] = self.uuid()
        rec["timestamp"] = _iso(t)
        self.lines.append((t, len(self.lines), rec))
        return str(rec["uuid"])

    def agent(self, agent: _Agent, parent: str | None = None) -> str | None:
        """Write an agent's chain; returns the uuid of its last line."""
        version2 = not self.s.version.startswith("1.")
        for call in agent.calls:
            for line in call.before:
                if line.kind is UserLine.COMPACT_SUMMARY:  # the chain restarts at a boundary line
                    boundary = {**self._base("system", None, agent), "logicalParentUuid": parent,
                                "subtype": "compact_boundary", "content": "Conversation compacted",
                                "isMeta": False, "compactMetadata": {"trigger": "auto", "preTokens": COMPACT_AT_TOKENS}}
                    parent = self.add(line.t, boundary)
                parent = self._user(agent, line, parent, version2)
            for i, block in enumerate(call.blocks):
                t = round(call.start_s + (call.end_s - call.start_s) * (i + 1) / len(call.blocks), 3)
                parent = self.add(t, self._assistant(agent, call, block, i, parent, version2))
        for line in agent.after:
            parent = self._user(agent, line, parent, version2)
        return parent

    def _user(self, agent: _Agent, line: _Line, parent: str | None, version2: bool) -> str:
        if line.kind is UserLine.HUMAN and version2 and agent.role is Role.MAIN:
            snapshot = {"type": "file-history-snapshot", "messageId": self.uuid(),
                        "snapshot": {"trackedFileBackups": {}}, "isSnapshotUpdate": False}
            self.lines.append((line.t, len(self.lines), snapshot))
        rec = {**self._base("user", parent, agent), "message": {"role": "user", "content": line.content},
               **line.extra}
        self.counts[line.kind.value] = self.counts.get(line.kind.value, 0) + 1
        return self.add(line.t, rec)

    def _assistant(self, agent: _Agent, call: _Call, block: dict[str, Any], i: int, parent: str | None,
                   version2: bool) -> dict[str, Any]:
        last = i == len(call.blocks) - 1
        usage: dict[str, Any] = {k: v for k, v in call.usage.items() if k != "output_tokens"}
        if version2:
            write = call.usage["cache_creation_input_tokens"]
            usage["cache_creation"] = {"ephemeral_5m_input_tokens": write, "ephemeral_1h_input_tokens": 0}
        out = call.usage["output_tokens"]
        usage["output_tokens"] = out if last else max(1, out * (i + 1) // (len(call.blocks) * 3))
        usage["service_tier"] = "standard"
        stop = ("tool_use" if block["type"] == "tool_use" else "end_turn") if last else None
        message = {"id": call.message_id, "type": "message", "role": "assistant", "model": call.model,
                   "content": [block], "stop_reason": stop, "stop_sequence": None, "usage": usage}
        return {**self._base("assistant", parent, agent), "message": message,
                "requestId": call.request_id}

    def write(self, path: Path, head: list[dict[str, Any]] | None = None) -> list[dict[str, Any]]:
        records = (head or []) + [rec for _, _, rec in sorted(self.lines, key=lambda x: (x[0], x[1]))]
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in records))
        return records


def _write_legacy(root: Path, s: _Session, planner: _Planner,
                  copies: dict[str, list[dict[str, Any]]]) -> tuple[dict[str, int], dict[str, str]]:
    """Write a legacy session; returns user-line counts and the file of each agent."""
    project = root / s.project
    main_file = _LegacyFile(s, planner)
    head: list[dict[str, Any]] = []
    parent: str | None = None
    if s.resumed_from is not None:
        copied = [{**r, "sessionId": s.session_id} for r in copies[s.resumed_from.session_id]
                  if r.get("isSidechain") is False]
        parent = next((r["uuid"] for r in reversed(copied) if "uuid" in r), None)
        head = [{"type": "summary", "summary": "Earlier work (invented)", "leafUuid": parent}, *copied]
    main_file.agent(s.agents[0], parent)
    files = {MAIN: f"{s.project}/{s.session_id}.jsonl"}
    counts = main_file.counts
    for agent in s.agents[1:]:
        if s.layout is Layout.V1_SIDECHAIN:
            main_file.agent(agent)
            files[agent.agent_id] = files[MAIN]
            continue
        f = _LegacyFile(s, planner)
        f.agent(agent)
        if s.layout is Layout.V2_AGENT_FILES:
            rel = f"{s.project}/agent-{agent.agent_id}.jsonl"
        else:
            rel = f"{s.project}/{s.session_id}/subagents/agent-{agent.agent_id}.jsonl"
            if agent.role is Role.SUBAGENT:
                meta = {"agentType": agent.agent_type or "general-purpose", "toolUseId": agent.spawn_tool_use_id,
                        "spawnDepth": 1, "model": agent.model, "description": agent.description}
                (root / rel).parent.mkdir(parents=True, exist_ok=True)
                (root / rel.replace(".jsonl", ".meta.json")).write_bytes(orjson.dumps(meta, option=orjson.OPT_INDENT_2))
        f.write(root / rel)
        files[agent.agent_id] = rel
        for k, v in f.counts.items():
            counts[k] = counts.get(k, 0) + v
    copies[s.session_id] = main_file.write(project / f"{s.session_id}.jsonl", head)
    return counts, files


_CURRENT_TOOLS = [{"name": n, "description": f"{n} (invented test description).",
                   "input_schema": {"type": "object", "properties": {}}}
                  for n in ("Agent", "Bash", "Edit", "Glob", "Grep", "MultiEdit", "Read", "TodoWrite",
                            "WebFetch", "WebSearch", "Write", "ExitPlanMode", "TaskUpdate", "Skill")]


def _write_current(root: Path, s: _Session) -> tuple[dict[str, int], dict[str, str]]:
    """Write a 2.1.3xx session with :class:`tests.cc_synth.Writer`."""
    counts: dict[str, int] = {}
    files: dict[str, str] = {}
    for agent in s.agents:
        sub = agent.role is not Role.MAIN
        w = Writer(s.session_id, agent.agent_id if sub else None, model=agent.model, version=s.version,
                   id_prefix=f"{s.session_id[:8]}-", tools=_CURRENT_TOOLS)
        shape = w.shape(agent.calls[0].before[0].t)
        for call in agent.calls:
            _current_lines(w, call.before, counts)
            parts = tuple(call.usage["output_tokens"] if i == len(call.blocks) - 1 else
                          max(1, call.usage["output_tokens"] // 3) for i in range(len(call.blocks)))
            u = {k: call.usage[k] for k in ("input_tokens", "cache_read_input_tokens",
                                            "cache_creation_input_tokens", "output_tokens")}
            w.call(call.start_s, shape, call.blocks, u, duration_s=call.end_s - call.start_s, output_parts=parts)
        _current_lines(w, agent.after, counts)
        rel = (f"{s.project}/{s.session_id}/subagents/agent-{agent.agent_id}.jsonl" if sub
               else f"{s.project}/{s.session_id}.jsonl")
        w.write(root / rel)
        if sub:
            meta = {"agentType": agent.agent_type or "general-purpose", "toolUseId": agent.spawn_tool_use_id,
                    "spawnDepth": 1}
            (root / rel.replace(".jsonl", ".meta.json")).write_bytes(orjson.dumps(meta))
        files[agent.agent_id] = rel
    return counts, files


def _current_lines(w: Writer, lines: list[_Line], counts: dict[str, int]) -> None:
    """User-side lines: tool results merged per message, reminders and notices as blobs only."""
    i = 0
    while i < len(lines):
        line = lines[i]
        counts[line.kind.value] = counts.get(line.kind.value, 0) + 1
        if line.kind in (UserLine.TOOL_RESULT, UserLine.AGENT_REPORT, UserLine.AGENT_LAUNCHED):
            group = [line]
            while i + 1 < len(lines) and lines[i + 1].kind in (UserLine.TOOL_RESULT, UserLine.AGENT_REPORT,
                                                               UserLine.AGENT_LAUNCHED):
                i += 1
                group.append(lines[i])
                counts[lines[i].kind.value] = counts.get(lines[i].kind.value, 0) + 1
            w.results_at([(x.t, x.content[0], x.extra.get("toolUseResult")) for x in group])
        elif line.kind is UserLine.COMPACT_SUMMARY:  # a new chain: the next request has no base
            w.compact()
            w.user_line([{"type": "text", "text": line.content}], line.t, line.extra)
        elif line.kind in (UserLine.SYSTEM_REMINDER, UserLine.TASK_NOTIFICATION):
            w.user_text(line.content[0]["text"], line.t, blob=True)
        else:
            content = line.content if isinstance(line.content, list) else [{"type": "text", "text": line.content}]
            w.user_line(content, line.t, line.extra)
        i += 1


def _truth(s: _Session, counts: dict[str, int], files: dict[str, str]) -> SessionTruth:
    agents = tuple(AgentTruth(a.agent_id, a.role, a.kind, a.model, files[a.agent_id],
                              tuple(c.request_id for c in a.calls), tuple(c.turn for c in a.calls),
                              a.spawn_tool_use_id, a.background) for a in s.agents)
    orig = s.resumed_from
    copied = tuple(c.request_id for c in orig.agents[0].calls) if orig is not None else ()
    warmups = tuple(files[a.agent_id] for a in s.agents if a.kind == "warmup")
    return SessionTruth(s.session_id, s.project, s.layout, s.version, files[MAIN], agents, tuple(s.turns),
                        warmups, orig.session_id if orig is not None else None, copied, s.compactions,
                        dict(sorted(counts.items())))


def _layout_plan(rng: np.random.Generator, n: int) -> list[Layout]:
    """Layouts in their shares (largest remainder), shuffled."""
    shares = np.array([v[0] for v in _LAYOUTS.values()]) * n
    counts = np.floor(shares).astype(int)
    for i in np.argsort(-(shares - counts), kind="stable")[: n - int(counts.sum())]:
        counts[i] += 1
    out = [layout for layout, c in zip(_LAYOUTS, counts, strict=True) for _ in range(c)]
    return [out[i] for i in rng.permutation(len(out))]


def write_corpus(root: Path, sessions: int = 100, seed: int = 0, *, long: bool = False,
                 resumed_share: float = 0.1, profile: str = "corpus_A",
                 manifest: bool = True) -> CorpusManifest:
    """Write a ``~/.claude/projects``-like tree of ``sessions`` sessions under ``root``.

    About ``resumed_share`` of the legacy-layout sessions also get a resumed copy (an extra session
    file, so the tree holds more session files than ``sessions``). ``long`` adds a session of
    ≥ 1,000 hops and 12 agents (2.1.x sub-agent layout). ``manifest`` writes the ground truth to
    ``root / "manifest.json"`` (not a transcript: the importer ignores it).
    """
    rng = np.random.default_rng(seed)
    planner = _Planner(rng, load_profile(profile))
    plans: list[_Session] = []
    for layout in _layout_plan(rng, sessions):
        s = planner.session(layout)
        plans.append(s)
        if layout is not Layout.CURRENT and planner.chance(resumed_share):
            plans.append(planner.resume(s))
    if long:
        plans.append(planner.session(Layout.V21_SUBAGENTS, main_hops=940, sub_agents=11))
    copies: dict[str, list[dict[str, Any]]] = {}
    truths = []
    for s in plans:
        counts, files = (_write_current(root, s) if s.layout is Layout.CURRENT
                         else _write_legacy(root, s, planner, copies))
        truths.append(_truth(s, counts, files))
    result = CorpusManifest(seed, profile, tuple(truths))
    if manifest:
        root.mkdir(parents=True, exist_ok=True)
        (root / "manifest.json").write_bytes(result.to_json())
    return result


def main(argv: list[str] | None = None) -> int:
    """``python -m tests.corpus OUT_DIR --sessions 100 --seed 0 [--long]``."""
    ap = argparse.ArgumentParser(prog="python -m tests.corpus", description=__doc__.split("\n")[0])
    ap.add_argument("out", type=Path, help="directory to write (laid out like ~/.claude/projects)")
    ap.add_argument("--sessions", type=int, default=100)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--long", action="store_true", help="add a session of >= 1,000 hops and 12 agents")
    ap.add_argument("--profile", default="corpus_A", choices=("corpus_A", "corpus_B"))
    args = ap.parse_args(argv)
    if args.out.exists() and any(args.out.iterdir()):
        ap.error(f"{args.out} exists and is not empty")
    m = write_corpus(args.out, args.sessions, args.seed, long=args.long, profile=args.profile)
    print(orjson.dumps(m.totals()).decode())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
