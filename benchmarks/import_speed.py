"""Import speed: agentgraph vs ccusage 18 on a large synthetic set of Claude Code transcripts.

    python benchmarks/import_speed.py [--mb 200] [--current-share 0.2] [--seed 0] [--dir DIR]

Writes ``--mb`` MB (10^6 bytes) of transcripts under ``DIR/projects`` (a temp dir by default,
deleted afterwards unless ``--keep``): sessions of 15-60 calls in the legacy layouts (1.0.x
sidechains, 2.0.x ``agent-<id>.jsonl`` with Warmup files, 2.1.x ``subagents/``, resumed copies)
and, for ``--current-share`` of them, the 2.1.3xx format with ``api-request*`` lines (as
``tests/cc_synth.py`` writes it). Tool results are a few KB, calls span one line per block.

Then times, each in its own process: ``agentgraph.sources.import_paths`` (seconds inside the
call), ``agentgraph import ... -o OUT.trace`` (wall time), and ``ccusage daily --json --offline``
(wall time); peak RSS is each child's ``ru_maxrss`` (see :func:`measure`).
"""

from __future__ import annotations

import argparse
import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson

REPO = Path(__file__).resolve().parents[1]
MODEL = "claude-sonnet-4-5-20250929"
LAYOUTS = ("v1", "v2", "v21")
VERSIONS = {"v1": "1.0.88", "v2": "2.0.42", "v21": "2.1.20", "current": "2.1.328"}
API_CHILD = """
import json, sys, time
from agentgraph.sources import import_paths
t = time.perf_counter()
r = import_paths([sys.argv[1]])
s = r.trace.summary()
print(json.dumps({"seconds": time.perf_counter() - t, "issues": len(r.issues), **s}))
"""


# --------------------------------------------------------------------------- synthetic data


class Gen:
    """Seeded source of ids, sizes and text (slices of one random-word corpus)."""

    def __init__(self, rng: np.random.Generator) -> None:
        self.rng = rng
        vocab = ["".join(chr(97 + c) for c in rng.integers(0, 26, n)) for n in rng.integers(2, 11, 5000)]
        self.corpus = " ".join(rng.choice(vocab, 600_000).tolist())

    def text(self, n: int) -> str:
        start = int(self.rng.integers(0, len(self.corpus) - n))
        return self.corpus[start:start + n]

    def sized(self, median: float, lo: int, hi: int) -> str:
        return self.text(int(np.clip(self.rng.lognormal(np.log(median), 0.8), lo, hi)))

    def uuid(self) -> str:
        return str(uuid.UUID(bytes=self.rng.bytes(16), version=4))

    def token(self, prefix: str, n: int = 12) -> str:
        return prefix + self.rng.bytes(n).hex()


def _sha(message: dict[str, Any]) -> str:
    return hashlib.sha256(orjson.dumps(message, option=orjson.OPT_SORT_KEYS)).hexdigest()


def _iso(t: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.gmtime(t)) + f".{int(t * 1000) % 1000:03d}Z"


@dataclass
class Chain:
    """One agent's lines; ``current`` adds the request lines of the 2.1.3xx format."""

    g: Gen
    head: dict[str, Any]
    t: float
    lines: list[dict[str, Any]]
    current: bool = False
    shape: str = ""
    parent: str | None = None
    cache_tokens: int = 12_000
    fresh_chars: int = 0
    messages: list[str] = field(default_factory=list)  # hashes of the messages so far (current format)
    sent: int = 0  # how many of them the last request carried
    last_request: str | None = None

    def _rec(self, kind: str, dt: float, **body: Any) -> dict[str, Any]:
        self.t += dt
        u = self.g.uuid()
        rec = {"parentUuid": self.parent, **self.head, "type": kind, **body, "uuid": u,
               "timestamp": _iso(self.t)}
        self.parent = u
        self.lines.append(rec)
        return rec

    def user(self, content: Any, dt: float, result: Any = None) -> None:
        rec = self._rec("user", dt, message={"role": "user", "content": content})
        if result is not None:
            rec["toolUseResult"] = result
        self.fresh_chars += len(orjson.dumps(content))

    def results(self, blocks: list[dict[str, Any]], dt: float, result: Any = None) -> None:
        for block in blocks:  # parallel results: one line each, one message on the wire
            self.user([block], dt, result)
            dt = 0.05
        if self.current:
            self.messages.append(_sha({"role": "user", "content": blocks}))

    def call(self, blocks: list[dict[str, Any]], dt: float) -> None:
        g, rid = self.g, self.g.token("req_011C", 10)
        ref: dict[str, Any] = {}
        if self.current:
            ref = {"requestRef": rid}
            req = {**self.head, "type": "api-request", "id": rid, "shapeHash": self.shape,
                   "params": {"model": MODEL, "max_tokens": 32000}, "keep": self.sent,
                   "tail": self.messages[self.sent:], "timestamp": _iso(self.t + dt - 0.01)}
            if self.last_request:
                req["base"] = self.last_request
            self.lines.append(req)
            self.last_request, self.sent = rid, len(self.messages)
        created = self.fresh_chars // 4 + int(g.rng.integers(20, 400))
        outs = np.cumsum([max(1, len(orjson.dumps(b)) // 4) for b in blocks])
        usage: dict[str, Any] = {"input_tokens": int(g.rng.integers(1, 10)), "cache_creation_input_tokens": created,
                 "cache_read_input_tokens": self.cache_tokens}
        if self.head["version"] >= "2":
            usage["cache_creation"] = {"ephemeral_5m_input_tokens": created, "ephemeral_1h_input_tokens": 0}
        mid = g.token("msg_01", 11)
        for i, (block, out) in enumerate(zip(blocks, outs, strict=True)):
            last = i == len(blocks) - 1
            message = {"id": mid, "type": "message", "role": "assistant", "model": MODEL, "content": [block],
                       "stop_reason": ("tool_use" if block["type"] == "tool_use" else "end_turn") if last else None,
                       "stop_sequence": None, "usage": {**usage, "output_tokens": int(out if last else out // 3 + 1)}}
            self._rec("assistant", dt if i == 0 else 0.6, message=message, requestId=rid, **ref)
        self.cache_tokens += created
        self.fresh_chars = 0
        if self.current:
            self.messages.append(_sha({"role": "assistant", "content": blocks}))


def _tool_use(g: Gen) -> dict[str, Any]:
    name = str(g.rng.choice(["Bash", "Read", "Edit", "Grep"]))
    inp = {"Bash": lambda: {"command": g.sized(60, 10, 400), "description": g.text(30)},
           "Read": lambda: {"file_path": "/work/src/" + g.text(12).replace(" ", "_") + ".py"},
           "Edit": lambda: {"file_path": "/work/src/mod.py", "old_string": g.sized(200, 20, 2000),
                            "new_string": g.sized(220, 20, 2000)},
           "Grep": lambda: {"pattern": g.text(14), "path": "/work/src"}}[name]()
    return {"type": "tool_use", "id": g.token("toolu_01", 11), "name": name, "input": inp}


def _blocks(g: Gen, final: bool) -> list[dict[str, Any]]:
    blocks: list[dict[str, Any]] = []
    if g.rng.random() < 0.3:
        blocks.append({"type": "thinking", "thinking": g.sized(600, 50, 4000), "signature": g.token("Eq", 60)})
    if final or g.rng.random() < 0.6:
        blocks.append({"type": "text", "text": g.sized(250, 20, 3000)})
    if not final:
        blocks += [_tool_use(g) for _ in range(1 + int(g.rng.random() < 0.15))]
    return blocks


Spawn = Callable[[Chain, dict[str, Any]], tuple[str, str | None]]
"""Runs the sub-agent of a Task/Agent tool_use; returns its answer and agent id (None in 1.0.x)."""


def _task(g: Gen, name: str) -> dict[str, Any]:
    return {"type": "tool_use", "id": g.token("toolu_01", 11), "name": name,
            "input": {"description": g.text(25), "prompt": g.sized(400, 50, 2000),
                      "subagent_type": "general-purpose"}}


def _run_agent(chain: Chain, n_calls: int, spawn: Spawn | None = None, task: str = "Task") -> str:
    """Calls with tool round trips, one of them spawning a sub-agent if ``spawn``; returns the answer."""
    spawn_at = int(chain.g.rng.integers(0, n_calls - 1)) if spawn else -1
    for i in range(n_calls):
        final = i == n_calls - 1
        blocks = _blocks(chain.g, final)
        if i == spawn_at:
            blocks = [b for b in blocks if b["type"] != "tool_use"] + [_task(chain.g, task)]
        chain.call(blocks, float(chain.g.rng.uniform(1.5, 9.0)))
        uses = [b for b in blocks if b["type"] == "tool_use"]
        if spawn and i == spawn_at:
            text, agent_id = spawn(chain, uses[0])
            block = {"tool_use_id": uses[0]["id"], "type": "tool_result", "content": [{"type": "text", "text": text}]}
            result = {"status": "completed", "content": block["content"]} | ({"agentId": agent_id} if agent_id else {})
            chain.results([block], 0.3, result)
        elif uses:
            chain.results([{"tool_use_id": b["id"], "type": "tool_result", "content": chain.g.sized(3000, 100, 40_000),
                            "is_error": bool(chain.g.rng.random() < 0.05)} for b in uses],
                          float(chain.g.rng.uniform(0.1, 6.0)))
        if final:
            return str(blocks[-1].get("text", ""))
    return ""


def _write(path: Path, lines: list[dict[str, Any]]) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    data = b"".join(orjson.dumps(r) + b"\n" for r in lines)
    path.write_bytes(data)
    return len(data)


def _shape_line(g: Gen, head: dict[str, Any]) -> tuple[str, dict[str, Any]]:
    shape = {"system": [{"type": "text", "text": g.text(12_000)}],
             "tools": [{"name": f"Tool{i}", "description": g.text(700), "input_schema": {"type": "object"}}
                       for i in range(16)]}
    h = _sha(shape)
    return h, {**head, "type": "api-request-shape", "shapeHash": h, "shape": shape}


def write_session(g: Gen, project: Path, t0: float, current: bool) -> int:
    """One session (its agent files included); returns the bytes written."""
    layout = "v21" if current else str(g.rng.choice(LAYOUTS))
    sid = g.uuid()
    head = {"isSidechain": False, "userType": "external", "cwd": "/work/bench", "sessionId": sid,
            "version": VERSIONS["current" if current else layout], "gitBranch": "main"}
    main = Chain(g, head, t0, [], current)
    written = 0
    if layout == "v2" and g.rng.random() < 0.3:
        wid = g.token("", 4)
        warm = Chain(g, {**head, "isSidechain": True, "agentId": wid}, t0 - 5, [])
        warm.user("Warmup", 0)
        warm.call([{"type": "text", "text": g.sized(150, 40, 400)}], 1.2)
        written += _write(project / f"agent-{wid}.jsonl", warm.lines)
    if current:
        main.shape, shape_rec = _shape_line(g, head)
        main.lines.append(shape_rec)

    def spawn(parent: Chain, use: dict[str, Any]) -> tuple[str, str | None]:
        nonlocal written
        aid = g.token("a", 8) if layout == "v21" else g.token("", 4)
        sub_head = {**head, "isSidechain": True} | ({} if layout == "v1" else {"agentId": aid})
        sub = Chain(g, sub_head, parent.t, parent.lines if layout == "v1" else [], current)
        if current:
            sub.shape, shape_rec = _shape_line(g, sub_head)
            sub.lines.append(shape_rec)
        sub.user(use["input"]["prompt"], 0.1)
        if current:
            sub.messages.append(_sha({"role": "user", "content": use["input"]["prompt"]}))
        answer = _run_agent(sub, int(g.rng.integers(4, 16)))
        parent.t = sub.t
        if layout == "v2":
            written += _write(project / f"agent-{aid}.jsonl", sub.lines)
        elif layout == "v21":
            base = project / sid / "subagents" / f"agent-{aid}"
            written += _write(base.with_suffix(".jsonl"), sub.lines)
            meta = {"agentType": "general-purpose", "toolUseId": use["id"], "spawnDepth": 1, "model": MODEL}
            base.with_suffix(".meta.json").write_bytes(orjson.dumps(meta))
        return answer, None if layout == "v1" else aid

    prompt = g.sized(200, 20, 2000)
    main.user(prompt, 0)
    if current:
        main.messages.append(_sha({"role": "user", "content": prompt}))
    _run_agent(main, int(g.rng.integers(15, 61)), spawn if g.rng.random() < 0.3 else None,
               "Agent" if layout == "v21" else "Task")
    written += _write(project / f"{sid}.jsonl", main.lines)
    if not current and g.rng.random() < 0.05:  # resumed later: history copied under a new id
        rid = g.uuid()
        copied = [{**r, "sessionId": rid} for r in main.lines if not r.get("isSidechain")]
        resumed = Chain(g, {**head, "sessionId": rid}, main.t + 3600, [], parent=main.parent)
        resumed.user(g.sized(120, 20, 800), 0)
        _run_agent(resumed, int(g.rng.integers(3, 9)))
        summary = {"type": "summary", "summary": g.text(40), "leafUuid": main.parent}
        written += _write(project / f"{rid}.jsonl", [summary, *copied, *resumed.lines])
    return written


def generate(root: Path, mb: float, current_share: float, seed: int) -> tuple[int, int]:
    """Sessions under ``root/projects`` until ``mb`` MB; returns (bytes, sessions)."""
    g = Gen(np.random.default_rng(seed))
    total = sessions = 0
    t = 1_760_000_000.0
    while total < mb * 1e6:
        project = root / "projects" / f"-work-bench-p{sessions // 25:03d}"
        total += write_session(g, project, t, bool(g.rng.random() < current_share))
        sessions += 1
        t += float(g.rng.uniform(600, 7200))
    return total, sessions


# --------------------------------------------------------------------------- timing


@dataclass(frozen=True, slots=True)
class Measured:
    seconds: float
    max_rss_mib: float
    returncode: int
    stdout: str
    stderr: str


_LAUNCH = """import os, sys
pid = os.fork()
if pid == 0:
    os.execvp(sys.argv[2], sys.argv[2:])
_, status, usage = os.wait4(pid, 0)
with open(sys.argv[1], "w") as f:
    f.write(str(usage.ru_maxrss))
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Forks the measured command from a bare interpreter: a child's ``ru_maxrss`` starts at its
parent's RSS at fork time, so forking from this (data-holding) process would inflate it."""


def measure(cmd: list[str], *, env: dict[str, str] | None = None, cwd: Path | None = None) -> Measured:
    """Run ``cmd``; wall seconds and its peak RSS (``wait4`` in a ~9 MiB launcher, the floor)."""
    with tempfile.NamedTemporaryFile("r", suffix=".rss") as rss:
        t0 = time.perf_counter()
        proc = subprocess.run([sys.executable, "-S", "-I", "-c", _LAUNCH, rss.name, *cmd], env=env, cwd=cwd,
                              capture_output=True, text=True, check=False)
        seconds = time.perf_counter() - t0
        kib = rss.read().strip()
    return Measured(seconds, int(kib or 0) / 1024, proc.returncode, proc.stdout, proc.stderr)


def _row(name: str, mb: float, m: Measured | None, seconds: float | None = None) -> float | None:
    if m is None or m.returncode != 0:
        why = "skipped" if m is None else f"failed ({m.returncode}): {m.stderr.strip().splitlines()[-1:]}"
        print(f"{name:<38} {why}")
        return None
    s = m.seconds if seconds is None else seconds
    print(f"{name:<38} {s:9.2f} {mb / s:9.1f} {m.max_rss_mib:12.0f}")
    return mb / s


def _agentgraph_exe() -> list[str]:
    exe = Path(sys.executable).with_name("agentgraph")
    return [str(exe)] if exe.exists() else [sys.executable, "-m", "agentgraph.cli"]


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--mb", type=float, default=200.0, help="size of the generated set, MB (default 200)")
    ap.add_argument("--current-share", type=float, default=0.2, help="share of 2.1.3xx-format sessions")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--dir", type=Path, help="work dir (default: a temp dir)")
    ap.add_argument("--keep", action="store_true", help="keep the generated files")
    ap.add_argument("--skip-agentgraph", action="store_true")
    ap.add_argument("--skip-ccusage", action="store_true")
    args = ap.parse_args(argv)
    work = args.dir or Path(tempfile.mkdtemp(prefix="agentgraph-bench-"))
    marker = work / ".agentgraph-bench"  # never delete a projects/ tree this script did not write
    if (work / "projects").exists() and not marker.exists():
        ap.error(f"{work / 'projects'} exists and was not written by this benchmark; pick another --dir")
    work.mkdir(parents=True, exist_ok=True)
    marker.touch()
    shutil.rmtree(work / "projects", ignore_errors=True)
    try:
        return _bench(work, args)
    finally:
        if not args.keep:
            shutil.rmtree(work / "projects", ignore_errors=True)
            (work / "bench.trace").unlink(missing_ok=True)
            marker.unlink(missing_ok=True)
            if args.dir is None:
                shutil.rmtree(work, ignore_errors=True)


def _bench(work: Path, args: argparse.Namespace) -> int:
    t0 = time.perf_counter()
    size, sessions = generate(work, args.mb, args.current_share, args.seed)
    files = sum(1 for _ in (work / "projects").rglob("*.jsonl"))
    mb = size / 1e6
    print(f"data: {mb:.1f} MB, {sessions} sessions, {files} .jsonl files in {work / 'projects'} "
          f"(generated in {time.perf_counter() - t0:.1f} s, seed {args.seed}, "
          f"{args.current_share:.0%} current format)")
    api = cli = cc = None
    if not args.skip_agentgraph:
        api = measure([sys.executable, "-c", API_CHILD, str(work / "projects")])
        cli = measure([*_agentgraph_exe(), "import", str(work / "projects"), "-o", str(work / "bench.trace")])
    if not args.skip_ccusage:
        sys.path.insert(0, str(REPO))
        from tests import ccusage

        try:
            entry = ccusage.ensure_installed()
        except ccusage.CcusageUnavailable as exc:
            print(f"ccusage unavailable: {exc}", file=sys.stderr)
            return 1
        env = {**os.environ, "CLAUDE_CONFIG_DIR": str(work), "NO_COLOR": "1"}
        cc = measure([shutil.which("node") or "node", str(entry), *ccusage.DAILY], env=env, cwd=work)
    summary = json.loads(api.stdout) if api and api.returncode == 0 else None
    print(f"{'':<38} {'seconds':>9} {'MB/s':>9} {'peak RSS MiB':>12}")
    rate_api = _row("agentgraph import_paths (in call)", mb, api, summary["seconds"] if summary else None)
    rate_cli = _row("agentgraph import -o (CLI, wall)", mb, cli)
    rate_cc = _row("ccusage daily --json --offline (wall)", mb, cc)
    if rate_cc:
        for name, rate in (("import_paths", rate_api), ("CLI", rate_cli)):
            if rate:
                print(f"speed ratio agentgraph {name} / ccusage: {rate / rate_cc:.2f}x")
    if summary and cc and cc.returncode == 0:
        t = json.loads(cc.stdout)["totals"]
        print(f"agentgraph: {summary['sessions']} sessions, {summary['llm_hops']} hops, {summary['issues']} issues")
        print(f"{'tokens':<12} {'input':>12} {'cache read':>14} {'cache write':>12} {'output':>10}")
        print(f"{'agentgraph':<12} {summary['api_input_tokens']:>12} {summary['api_cache_read_tokens']:>14} "
              f"{summary['api_cache_creation_tokens']:>12} {summary['output_tokens']:>10}")
        print(f"{'ccusage':<12} {t['inputTokens']:>12} {t['cacheReadTokens']:>14} {t['cacheCreationTokens']:>12} "
              f"{t['outputTokens']:>10}  (output: first line of each call)")
    return 0 if (cc is None or cc.returncode == 0) else 1


if __name__ == "__main__":
    sys.exit(main())
