"""Drive the real Claude Code CLI (npm) against the scripted upstream, offline.

Tests use it through the ``claude_cli`` and ``claude_session`` fixtures of ``conftest.py``, or
import :func:`run_claude` directly::

    from tests.realcli import run_claude

The CLI is installed once per machine into ``${AGENTGRAPH_CACHE:-~/.cache/agentgraph}/npm/``
and reused. Strings of a script may use ``${WORK_DIR}``: it is replaced by the absolute path of
the run's working directory (Claude Code's Write and Read tools want absolute paths).
"""

from __future__ import annotations

import os
import shutil
import subprocess
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgraph.emulator import ScriptedUpstream, ServedRequest, parse_script

CLAUDE_CODE_PACKAGE = "@anthropic-ai/claude-code"
CLAUDE_CODE_VERSION = "2.1.328"
"""The one pinned CLI version every real-CLI test runs (transcript format 2.1.3xx)."""
CLI_TIMEOUT_S = 120
INSTALL_TIMEOUT_S = 900
DEFAULT_TOOLS = ("Bash", "Read", "Write", "Agent")


class CliUnavailable(Exception):
    """The CLI cannot be installed or run on this machine (message says why)."""


@dataclass(frozen=True, slots=True)
class ClaudeRun:
    """What one CLI run left behind: its transcripts, the upstream's log and the work dir."""

    projects_dir: Path
    session_file: Path
    subagent_files: tuple[Path, ...]
    log: tuple[ServedRequest, ...]
    work_dir: Path
    stdout: str


ClaudeSession = Callable[..., ClaudeRun]
"""The ``claude_session`` fixture: ``(script, prompt, allowed_tools=DEFAULT_TOOLS) -> ClaudeRun``."""


def cache_root() -> Path:
    """``$AGENTGRAPH_CACHE``, else ``~/.cache/agentgraph``."""
    env = os.environ.get("AGENTGRAPH_CACHE")
    return Path(env) if env else Path.home() / ".cache" / "agentgraph"


def cli_prefix(version: str = CLAUDE_CODE_VERSION) -> Path:
    """The npm prefix the pinned CLI is installed into."""
    return cache_root() / "npm" / f"claude-code-{version}"


def install_claude_cli(version: str = CLAUDE_CODE_VERSION) -> Path:
    """Path of the ``claude`` binary of ``version``, installed with npm on first use."""
    binary = cli_prefix(version) / "node_modules" / ".bin" / "claude"
    if not _reports_version(binary, version):
        _npm_install(version)
    if not _reports_version(binary, version):
        raise CliUnavailable(f"{binary} does not report version {version} after npm install")
    return binary


def _reports_version(binary: Path, version: str) -> bool:
    if not binary.exists():
        return False
    try:
        out = subprocess.run([binary, "--version"], capture_output=True, text=True, timeout=60, check=False)
    except OSError:
        return False
    return out.returncode == 0 and out.stdout.split()[:1] == [version]


def _npm_install(version: str) -> None:
    missing = [tool for tool in ("node", "npm") if shutil.which(tool) is None]
    if missing:
        raise CliUnavailable(
            f"{' and '.join(missing)} not found on PATH: the real-CLI tests need Node.js + npm "
            f"to install {CLAUDE_CODE_PACKAGE}@{version} (or set AGENTGRAPH_SKIP_REALCLI=1)"
        )
    prefix = cli_prefix(version)
    # Install beside the final place and rename, so a concurrent or interrupted install never
    # leaves a half-installed prefix behind.
    staging = prefix.with_name(f"{prefix.name}.tmp-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    command = ["npm", "install", "--prefix", str(staging), "--no-audit", "--no-fund",
               f"{CLAUDE_CODE_PACKAGE}@{version}"]  # fmt: skip
    try:
        out = subprocess.run(command, capture_output=True, text=True, timeout=INSTALL_TIMEOUT_S)
    except subprocess.TimeoutExpired as exc:
        raise CliUnavailable(f"{' '.join(command)} timed out after {exc.timeout} s") from exc
    if out.returncode != 0:
        shutil.rmtree(staging, ignore_errors=True)
        raise CliUnavailable(f"{' '.join(command)} failed ({out.returncode}):\n{out.stdout}\n{out.stderr}")
    _publish(staging, prefix)


def _publish(staging: Path, prefix: Path) -> None:
    shutil.rmtree(prefix, ignore_errors=True)
    try:
        staging.rename(prefix)
    except OSError:  # another process published first
        shutil.rmtree(staging, ignore_errors=True)


def cli_env(home: Path, base_url: str) -> dict[str, str]:
    """A clean environment: nothing of the caller's Anthropic/Claude settings leaks in."""
    return {
        "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
        "HOME": str(home),
        "SHELL": shutil.which("bash") or "/bin/sh",
        "LANG": "C.UTF-8",
        "ANTHROPIC_BASE_URL": base_url,
        "ANTHROPIC_API_KEY": "sk-agentgraph-emulator",
        "CLAUDE_CODE_DISABLE_NONESSENTIAL_TRAFFIC": "1",
    }


def run_claude(
    claude_cli: Path,
    script: Mapping[str, Any],
    prompt: str,
    tmp_path: Path,
    allowed_tools: Sequence[str] = DEFAULT_TOOLS,
) -> ClaudeRun:
    """Run ``claude -p prompt`` against ``script`` in a fresh HOME and work dir under ``tmp_path``.

    Fails (``AssertionError``) with the CLI's output and the upstream's refusals when the CLI
    exits non-zero or leaves no single session transcript.
    """
    home, work = tmp_path / "home", tmp_path / "work"
    home.mkdir()
    work.mkdir()
    parsed = parse_script(script, {"WORK_DIR": str(work)})
    command = [str(claude_cli), "-p", prompt, "--allowedTools", *allowed_tools]
    with ScriptedUpstream(parsed) as upstream:
        out = _run(command, work, cli_env(home, upstream.url))
        log, refused = tuple(upstream.log), [r.message for r in upstream.rejected]
    assert out.returncode == 0, (
        f"claude exited {out.returncode}\nstdout:\n{out.stdout}\nstderr:\n{out.stderr}\nupstream refused: {refused}"
    )
    return _collect(home / ".claude" / "projects", log, work, out.stdout)


def _run(command: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command, cwd=cwd, env=env, stdin=subprocess.DEVNULL, capture_output=True, text=True,
        timeout=CLI_TIMEOUT_S, check=False,
    )  # fmt: skip


def _collect(projects: Path, log: tuple[ServedRequest, ...], work: Path, stdout: str) -> ClaudeRun:
    sessions = sorted(projects.glob("*/*.jsonl"))
    assert len(sessions) == 1, f"expected one session transcript under {projects}: {sessions}"
    session = sessions[0]
    agents = tuple(sorted((session.parent / session.stem / "subagents").glob("agent-*.jsonl")))
    return ClaudeRun(projects, session, agents, log, work, stdout)
