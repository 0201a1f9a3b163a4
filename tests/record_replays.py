"""Re-record the sessions in ``replays/recorded/``: the real Claude Code CLI through a redacting
``agentgraph record`` proxy to the scripted upstream. Run from the repository root:

    python -m tests.record_replays

Each file is redacted (no prompt, message or tool text: the CLI's system prompt and tool
descriptions are not ours to copy) and imports to the same blocks as a full recording.
"""

from __future__ import annotations

import json
import subprocess
import tempfile
import time
from pathlib import Path

from agentgraph.emulator import ScriptedUpstream, parse_script
from agentgraph.record import RecordingProxy
from tests.realcli import DEFAULT_TOOLS, cli_env, install_claude_cli

ROOT = Path(__file__).resolve().parents[1]
REPLAYS = {
    # name: (script, prompt, cache clock speed-up)
    "long-loop": ("replay_long_loop.json", "Work through the steps.", 1.0),
    "fan-out": ("replay_fanout.json", "Survey the repository with helpers.", 1.0),
    "ttl-pauses": ("replay_ttl_pauses.json", "Build and test.", 100.0),
}


def record(name: str, out_dir: Path) -> Path:
    """Record one replay session; returns the redacted recording's path."""
    script_file, prompt, speed = REPLAYS[name]
    claude = install_claude_cli()
    with tempfile.TemporaryDirectory() as tmp:
        home, work = Path(tmp) / "home", Path(tmp) / "work"
        home.mkdir()
        work.mkdir()
        script = parse_script(json.loads((ROOT / "fixtures" / "scripts" / script_file).read_text()),
                              {"WORK_DIR": str(work)})
        start = time.monotonic()
        out = out_dir / f"{name}.record.jsonl"
        out.unlink(missing_ok=True)
        with ScriptedUpstream(script, clock=lambda: start + (time.monotonic() - start) * speed) as up, \
                RecordingProxy(up.url, out, redact=True) as proxy:
            subprocess.run([str(claude), "-p", prompt, "--allowedTools", *DEFAULT_TOOLS], cwd=work,
                           env=cli_env(home, proxy.url), check=True, capture_output=True, timeout=300)
    return out


if __name__ == "__main__":
    target = ROOT / "replays" / "recorded"
    target.mkdir(parents=True, exist_ok=True)
    for replay in REPLAYS:
        print(record(replay, target))
