"""ccusage, the reference Claude Code usage counter, pinned and run offline for cross-checks.

ccusage 18 reads every ``projects/**/*.jsonl`` under ``CLAUDE_CONFIG_DIR`` and keeps the *first*
line of each ``message.id:requestId`` (its ``data-loader`` ``createUniqueHash``), so input and
cache totals are per call, while output is the first line's partial ``output_tokens``.

It is installed with npm into ``${AGENTGRAPH_CACHE:-~/.cache/agentgraph}/npm/ccusage-<version>``
the first time it is needed; :class:`CcusageUnavailable` says why when that cannot be done.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

VERSION = "18.0.11"
DAILY = ("daily", "--json", "--offline", "--timezone", "UTC")
"""All dates, no network (bundled prices), day boundaries independent of the host's zone."""

__all__ = [
    "DAILY",
    "VERSION",
    "CcusageUnavailable",
    "Totals",
    "config_dir_with",
    "daily_totals",
    "ensure_installed",
    "install_dir",
    "run",
]


class CcusageUnavailable(RuntimeError):
    """ccusage is not installed and cannot be (no node/npm, or npm failed)."""


@dataclass(frozen=True, slots=True)
class Totals:
    """Token totals as ccusage reports them."""

    input_tokens: int
    output_tokens: int
    cache_creation_tokens: int
    cache_read_tokens: int

    @classmethod
    def from_json(cls, data: Any) -> Totals:
        """From ``daily/session --json`` output (``[]`` when nothing was found)."""
        if not data:
            return cls(0, 0, 0, 0)
        t = data["totals"]
        return cls(t["inputTokens"], t["outputTokens"], t["cacheCreationTokens"],
                   t["cacheReadTokens"])


def install_dir(version: str = VERSION) -> Path:
    root = Path(os.environ.get("AGENTGRAPH_CACHE") or "~/.cache/agentgraph").expanduser()
    return root / "npm" / f"ccusage-{version}"


def _entry(prefix: Path) -> Path:
    return prefix / "node_modules" / "ccusage" / "dist" / "index.js"


def ensure_installed(version: str = VERSION) -> Path:
    """ccusage's entry script, installing ``ccusage@version`` with npm if it is missing."""
    prefix = install_dir(version)
    if _entry(prefix).is_file():
        return _entry(prefix)
    npm, node = shutil.which("npm"), shutil.which("node")
    if npm is None or node is None:
        raise CcusageUnavailable(
            f"ccusage {version} is not installed in {prefix} and node/npm are not on PATH: "
            "install Node.js >= 20.19, or set AGENTGRAPH_SKIP_REALCLI=1 to skip")
    staging = prefix.with_name(f"{prefix.name}.partial-{os.getpid()}")
    shutil.rmtree(staging, ignore_errors=True)
    staging.mkdir(parents=True)
    cmd = [npm, "install", "--prefix", str(staging), "--no-audit", "--no-fund",
           "--ignore-scripts", "--save-exact", f"ccusage@{version}"]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False)
    if proc.returncode != 0 or not _entry(staging).is_file():
        shutil.rmtree(staging, ignore_errors=True)
        raise CcusageUnavailable(f"`{' '.join(cmd)}` failed ({proc.returncode}):\n"
                                 f"{proc.stderr[-2000:]}")
    if not _entry(prefix).is_file():  # another process may have won the race
        shutil.rmtree(prefix, ignore_errors=True)
        staging.rename(prefix)
    shutil.rmtree(staging, ignore_errors=True)
    return _entry(prefix)


def config_dir_with(projects: Path, dest: Path) -> Path:
    """A fresh ``CLAUDE_CONFIG_DIR`` at ``dest`` holding a copy of ``projects`` and nothing else."""
    shutil.copytree(projects, dest / "projects")
    return dest


def run(config_dir: Path, args: Sequence[str], *, timeout_s: float | None = 600) -> Any:
    """Run ccusage on ``config_dir/projects`` and parse its ``--json`` output.

    The working directory is ``config_dir`` so no ``.ccusage/ccusage.json`` of the caller applies.
    """
    entry = ensure_installed()
    env = {**os.environ, "CLAUDE_CONFIG_DIR": str(config_dir), "NO_COLOR": "1"}
    proc = subprocess.run([shutil.which("node") or "node", str(entry), *args], cwd=config_dir,
                          env=env, capture_output=True, text=True, timeout=timeout_s,
                          check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"ccusage {' '.join(args)} exited {proc.returncode}:\n"
                           f"{proc.stderr[-2000:]}")
    return json.loads(proc.stdout)


def daily_totals(config_dir: Path, *, project: str | None = None) -> Totals:
    """Totals over all dates of ``daily --json --offline``, optionally of one project dir."""
    extra = [f"--project={project}"] if project else []
    return Totals.from_json(run(config_dir, [*DAILY, *extra]))
