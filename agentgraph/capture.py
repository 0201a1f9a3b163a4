"""Tool input schemas captured from the user's own Claude Code CLI, attached to plain transcripts.

Transcripts keep no tool schemas; proxy recordings do. ``agentgraph schemas capture`` runs the
installed ``claude`` once against the scripted upstream (:mod:`agentgraph.emulator`), takes the
``tools`` of its first request, strips their prose (:func:`agentgraph.schemas.strip_annotations`)
and stores ``{cli_version, captured_at, tools: {name: schema}}`` as
``$AGENTGRAPH_CACHE/schemas/claude-code-VERSION.json`` (default cache ``~/.cache/agentgraph``;
``$AGENTGRAPH_SCHEMAS`` names the folder directly).
:func:`attach_schemas` then gives each tool call that has no schema the captured one of its
session's CLI version (else the nearest captured version, see :func:`nearest_capture`), by name or
through :data:`ALIASES`. MCP tools (``mcp__*``) and names the capture does not offer stay without.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shutil
import subprocess
import tempfile
import time
from collections import Counter
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import orjson

from agentgraph.errors import UsageError
from agentgraph.model import Trace
from agentgraph.outputs import write_output
from agentgraph.schemas import schema_id, strip_annotations

__all__ = [
    "ALIASES",
    "Attachment",
    "Capture",
    "attach_captured",
    "attach_schemas",
    "cache_root",
    "capture_schemas",
    "cli_version",
    "find_claude",
    "load_captures",
    "nearest_capture",
    "save_capture",
    "schema_lines",
    "session_versions",
]

ALIASES: dict[str, str] = {"Task": "Agent"}
"""Old tool name -> the name a newer CLI offers the same tool under (``Task`` became ``Agent`` in 2.1.x)."""
CAPTURE_TIMEOUT_S = 120
_ONE_TURN = {"agents": {"main": {"turns": [{"text": "Done."}]}}}
# 2.1.328 leaves Glob and Grep out of -p requests unless allowed; the one-turn script calls nothing.
_ALLOWED = ("Agent", "Bash", "Edit", "Glob", "Grep", "NotebookEdit", "Read", "TodoWrite", "WebFetch",
            "WebSearch", "Write")
_VERSION = re.compile(r"\d+(?:\.\d+)*")


@dataclass(frozen=True, slots=True)
class Capture:
    """The stripped tool input schemas one CLI version offers, by tool name."""

    cli_version: str
    captured_at: str
    tools: dict[str, Any]

    def to_json(self) -> bytes:
        return orjson.dumps({"cli_version": self.cli_version, "captured_at": self.captured_at,
                             "tools": self.tools}, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


@dataclass(frozen=True, slots=True)
class Attachment:
    """What :func:`attach_schemas` did: calls given a schema per captured version, aliases used,
    calls that already had one, and the tool names left without (``mcp__*`` and unknown)."""

    by_version: dict[str, int] = field(default_factory=dict)
    aliased: dict[str, int] = field(default_factory=dict)  # "Task -> Agent": calls
    recorded: int = 0
    no_schema: dict[str, int] = field(default_factory=dict)
    redacted: int = 0  # "{}" inputs of sessions without a transcript version: redacted recordings

    def to_json(self) -> dict[str, Any]:
        return {"captured": sum(self.by_version.values()), "by_version": dict(sorted(self.by_version.items())),
                "aliased": dict(sorted(self.aliased.items())), "recorded": self.recorded,
                "no_schema": dict(sorted(self.no_schema.items())), "redacted": self.redacted}


def cache_root() -> Path:
    """``$AGENTGRAPH_CACHE``, else ``~/.cache/agentgraph`` (the same place the test CLI lives)."""
    env = os.environ.get("AGENTGRAPH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "agentgraph"


def _schema_dir(root: Path | None) -> Path:
    """Where captures live: ``root/schemas``, else ``$AGENTGRAPH_SCHEMAS`` (the test suite points it
    at an empty folder, so a developer's real captures never change what imports produce there),
    else the cache root's ``schemas``."""
    if root is None and os.environ.get("AGENTGRAPH_SCHEMAS"):
        return Path(os.environ["AGENTGRAPH_SCHEMAS"])
    return (root or cache_root()) / "schemas"


def find_claude(path: str | None = None) -> Path:
    """``path`` if given, else ``claude`` on ``PATH``; a missing binary is a :class:`UsageError`."""
    found = path if path is not None else shutil.which("claude")
    if found is None or not Path(found).is_file():
        raise UsageError(f"claude not found ({found or 'not on PATH'}); give its path with --claude PATH")
    return Path(found)


def cli_version(claude: Path) -> str:
    """The version ``claude --version`` reports (its first dotted number)."""
    out = subprocess.run([str(claude), "--version"], capture_output=True, text=True, timeout=60, check=False)
    match = _VERSION.search(out.stdout)
    if out.returncode != 0 or match is None:
        raise UsageError(f"{claude} --version failed ({out.returncode}): {out.stdout.strip()} {out.stderr.strip()}")
    return match.group(0)


def capture_schemas(claude: Path) -> Capture:
    """Run ``claude -p`` once against a one-turn script in a throw-away HOME; its tools' schemas."""
    from agentgraph.emulator import ScriptedUpstream, parse_script

    version = cli_version(claude)
    with tempfile.TemporaryDirectory(prefix="agentgraph-capture-") as tmp, \
            ScriptedUpstream(parse_script(_ONE_TURN)) as upstream:
        home = Path(tmp)
        command = [str(claude), "-p", "Say done.", "--allowedTools", *_ALLOWED]
        out = subprocess.run(command, cwd=home, env=_cli_env(home, upstream.url), stdin=subprocess.DEVNULL,
                             capture_output=True, text=True, timeout=CAPTURE_TIMEOUT_S, check=False)
        bodies = [r.body for r in upstream.log]
    tools = next((b["tools"] for b in bodies if isinstance(b, dict) and b.get("tools")), None)
    if not isinstance(tools, list):
        raise UsageError(f"{claude} sent no request with tools (exit {out.returncode}): {out.stderr.strip()[-400:]}")
    schemas = {str(t["name"]): strip_annotations(t["input_schema"]) for t in tools
               if isinstance(t, dict) and isinstance(t.get("input_schema"), dict)}
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())
    return Capture(version, stamp, dict(sorted(schemas.items())))


def _cli_env(home: Path, base_url: str) -> dict[str, str]:
    return {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home), "LANG": "C.UTF-8",
            "SHELL": shutil.which("bash") or "/bin/sh", "ANTHROPIC_BASE_URL": base_url,
            "ANTHROPIC_API_KEY": "dummy", "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1"}


def save_capture(capture: Capture, root: Path | None = None) -> Path:
    """Write ``capture`` as ``schemas/claude-code-VERSION.json`` under the cache; its path."""
    return write_output(_schema_dir(root) / f"claude-code-{capture.cli_version}.json", capture.to_json())


def load_captures(root: Path | None = None) -> list[Capture]:
    """Every capture in the cache, oldest CLI version first; unreadable files are skipped."""
    out = []
    for path in sorted(_schema_dir(root).glob("claude-code-*.json")):
        try:
            data = orjson.loads(path.read_bytes())
            out.append(Capture(str(data["cli_version"]), str(data["captured_at"]), dict(data["tools"])))
        except (OSError, orjson.JSONDecodeError, KeyError, TypeError, ValueError):
            continue
    return sorted(out, key=lambda c: _key(c.cli_version))


def _key(version: str) -> tuple[int, ...]:
    match = _VERSION.search(version)
    return tuple(int(p) for p in match.group(0).split(".")) if match else ()


def nearest_capture(captures: Sequence[Capture], version: str | None) -> Capture | None:
    """The capture of ``version``; else the newest one older than it; else the oldest newer one.

    Without a version (native traces, recordings, Mooncake) the newest capture is used.

    >>> caps = [Capture(v, "", {}) for v in ("2.0.76", "2.1.328")]
    >>> [nearest_capture(caps, v).cli_version for v in ("2.1.328", "2.1.114", "1.0.88", None)]
    ['2.1.328', '2.0.76', '2.0.76', '2.1.328']
    """
    if not captures:
        return None
    ordered = sorted(captures, key=lambda c: _key(c.cli_version))
    if version is None:
        return ordered[-1]
    older = [c for c in ordered if _key(c.cli_version) <= _key(version)]
    return older[-1] if older else ordered[0]


def session_versions(sources: Iterable[str | Path]) -> dict[str, str]:
    """``{sessionId: CLI version}`` from the transcript lines under ``sources`` (``*.jsonl``).

    The trace model keeps no CLI version, so it is read here: the first line of each file that
    names both; a session written by several versions (resumed later) gets the newest.
    """
    out: dict[str, str] = {}
    for source in sources:
        path = Path(source)
        files = [path] if path.is_file() else sorted(path.rglob("*.jsonl")) if path.is_dir() else []
        for file in files:
            found = _first_version(file)
            if found and (found[0] not in out or _key(found[1]) > _key(out[found[0]])):
                out[found[0]] = found[1]
    return out


def _first_version(file: Path, most_lines: int = 50) -> tuple[str, str] | None:
    try:
        with file.open("rb") as f:
            for _, line in zip(range(most_lines), f, strict=False):
                try:
                    rec = orjson.loads(line)
                except orjson.JSONDecodeError:
                    continue
                if isinstance(rec, dict) and isinstance(rec.get("version"), str) \
                        and isinstance(rec.get("sessionId"), str):
                    return rec["sessionId"], rec["version"]
    except OSError:
        return None
    return None


def attach_schemas(trace: Trace, captures: Sequence[Capture],
                   versions: Mapping[str, str] | None = None) -> tuple[Trace, Attachment]:
    """``trace`` with a captured schema on every tool call that has none and whose tool the
    capture nearest its session's version offers (by name or :data:`ALIASES`).

    Calls with a recorded schema are kept as they are. In sessions of unknown version (native
    traces, recordings) an input of ``{}`` is left alone: that is what a redacted recording keeps
    of every input. Without captures the trace is returned unchanged (the same object), so an
    import stays byte-identical.
    """
    if not captures:
        return trace, Attachment()
    versions = versions or {}
    schemas = dict(trace.schemas)
    by_version: Counter[str] = Counter()
    aliased: Counter[str] = Counter()
    missing: Counter[str] = Counter()
    recorded = redacted = 0
    hops = []
    for hop in trace.hop_list:
        version = versions.get(hop.session_id)
        capture = nearest_capture(captures, version)
        assert capture is not None, "captures is not empty"
        calls = []
        for call in hop.tool_calls:
            if call.schema_id is not None or (version is None and call.input_json == "{}"):
                recorded += call.schema_id is not None
                redacted += call.schema_id is None
                calls.append(call)
                continue
            name = call.name if call.name in capture.tools else ALIASES.get(call.name, "")
            if name not in capture.tools:
                missing[call.name] += 1
                calls.append(call)
                continue
            if name != call.name:
                aliased[f"{call.name} -> {name}"] += 1
            sid = schema_id(capture.tools[name])
            schemas.setdefault(sid, capture.tools[name])
            by_version[capture.cli_version] += 1
            calls.append(dataclasses.replace(call, schema_id=sid))
        hops.append(dataclasses.replace(hop, tool_calls=tuple(calls)) if calls != list(hop.tool_calls) else hop)
    report = Attachment(dict(by_version), dict(aliased), recorded, dict(missing), redacted)
    if not by_version:
        return trace, report
    return dataclasses.replace(trace, hop_list=tuple(hops), schemas=schemas), report


def attach_captured(parts: Iterable[Trace], sources: Sequence[str], mode: str = "auto",
                    root: Path | None = None) -> Iterator[Trace]:
    """:func:`attach_schemas` over streamed parts (``agentgraph import --schemas auto|off``)."""
    captures = load_captures(root) if mode == "auto" else []
    if not captures:
        yield from parts
        return
    versions = session_versions(sources)
    for part in parts:
        yield attach_schemas(part, captures, versions)[0]


def schema_lines(info: Mapping[str, Any] | None) -> list[str]:
    """What ``validate`` prints about captured schemas, from :meth:`Attachment.to_json`.

    >>> schema_lines({"captured": 3, "by_version": {"2.1.328": 3}, "aliased": {"Task -> Agent": 1},
    ...               "recorded": 0, "no_schema": {"mcp__gh__pr": 2, "LS": 1}})
    ['3 call(s) got a schema from a captured CLI: 2.1.328 (3); aliases: Task -> Agent (1)', \
'no schema: MCP mcp__gh__pr (2); not offered by the capture: LS (1)']
    """
    if not info:
        return []
    versions = ", ".join(f"{v} ({n})" for v, n in info["by_version"].items()) or "none"
    head = f"{info['captured']} call(s) got a schema from a captured CLI: {versions}"
    if info["recorded"]:
        head += f" ({info['recorded']} had one recorded)"
    if info["aliased"]:
        head += "; aliases: " + ", ".join(f"{a} ({n})" for a, n in info["aliased"].items())
    missing = info["no_schema"]
    mcp = [f"{name} ({n})" for name, n in missing.items() if name.startswith("mcp__")]
    other = [f"{name} ({n})" for name, n in missing.items() if not name.startswith("mcp__")]
    parts = ([f"MCP {', '.join(mcp)}"] if mcp else []) + ([f"not offered by the capture: {', '.join(other)}"]
                                                          if other else [])
    if info.get("redacted"):
        parts.append(f"{info['redacted']} redacted input(s) (recordings made with --redact)")
    return [head] + (["no schema: " + "; ".join(parts)] if parts else [])
