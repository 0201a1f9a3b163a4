"""Shared fixtures: the real Claude Code CLI and a runner bound to it (see ``realcli.py``)."""

from __future__ import annotations

import os
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import pytest

from tests.realcli import (
    DEFAULT_TOOLS,
    ClaudeRun,
    ClaudeSession,
    CliUnavailable,
    install_claude_cli,
    run_claude,
)

SKIP_ENV = "AGENTGRAPH_SKIP_REALCLI"


@pytest.fixture(autouse=True, scope="session")
def _no_captured_schemas(tmp_path_factory: pytest.TempPathFactory) -> None:
    """Imports in tests see no captured CLI schemas (a developer's own `agentgraph schemas capture`
    would change their bytes); tests of captures pass their own folder."""
    os.environ["AGENTGRAPH_SCHEMAS"] = str(tmp_path_factory.mktemp("captured-schemas"))


@pytest.fixture(scope="session")
def claude_cli() -> Path:
    """Path of the pinned ``claude`` binary; installs it with npm into the cache on first use.

    Fails when the CLI cannot be installed, unless ``AGENTGRAPH_SKIP_REALCLI=1`` (then skips).
    """
    if os.environ.get(SKIP_ENV) == "1":
        pytest.skip(f"{SKIP_ENV}=1: real Claude Code CLI tests skipped")
    try:
        return install_claude_cli()
    except CliUnavailable as exc:
        reason = str(exc)
    pytest.fail(f"real Claude Code CLI unavailable: {reason}", pytrace=False)


@pytest.fixture
def claude_session(claude_cli: Path, tmp_path: Path) -> ClaudeSession:
    """``claude_session(script, prompt, allowed_tools=...)`` runs the CLI once in ``tmp_path``."""

    def run(script: Mapping[str, Any], prompt: str, allowed_tools: Sequence[str] = DEFAULT_TOOLS) -> ClaudeRun:
        return run_claude(claude_cli, script, prompt, tmp_path, allowed_tools)

    return run


ROOT = Path(__file__).resolve().parents[1]
SYNTHETIC_MOONCAKE = ROOT / "fixtures" / "mooncake" / "synthetic_trace.jsonl"  # Apache-2.0, see its README.md


@pytest.fixture(scope="session")
def replays_trace() -> Any:
    """The bundled ``replays/`` sessions (9 sessions, 72 hops), imported once."""
    from agentgraph.sources import import_paths

    result = import_paths([ROOT / "replays"])
    assert not result.issues
    return result.trace


@pytest.fixture(scope="session")
def mooncake_synthetic() -> Any:
    """The Mooncake FAST'25 synthetic trace in ``fixtures/mooncake/`` (3,993 requests, 512-token blocks)."""
    from agentgraph.sources import import_paths

    result = import_paths([SYNTHETIC_MOONCAKE])
    assert not result.issues
    return result.trace
