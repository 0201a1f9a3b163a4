"""Claude Code transcripts → trace model, both generations of the format.

* **Current** (2.1.3xx): ``api-request`` lines name every request exactly: a shape (system +
  tools, ``api-request-shape``), the kept messages of a base request and the hashes of the
  appended messages (``tail``). The message behind a tail hash is an ``api-request-blob`` line or
  a message of the transcript itself (the CLI hashes ``{"role", "content"}`` as sorted compact
  JSON with SHA-256); the hash alone fixes the prefix structure, the content only sizes it.
* **Legacy**: requests are rebuilt from the ``parentUuid`` chain of user/assistant lines; one
  API call spans several assistant lines (one content block each) sharing ``message.id`` +
  ``requestId`` and is counted once, with the largest ``output_tokens`` of its lines. System
  prompt and tools are not recorded: an opaque per-agent *preamble* unit stands for them and is
  sized from the first call's reported usage.

Sessions are read one at a time (a session file plus its sub-agent files), so memory stays
bounded by the largest session, not the number of sessions.

The stages, one module each, in the order a session goes through them:

* :mod:`.discovery` — which files make up which session, and the order sessions are read in;
* :mod:`.lines` — one pass over a session's lines into the records of :mod:`.records`;
* :mod:`.current`, :mod:`.legacy` — those records → calls, per format generation;
* :mod:`.sizing`, :mod:`.hops` — calls → hops: unit token counts, the prompt bound, block hashes;
* :mod:`.linking` — agents, their spawning tool calls, and the edges between hops;
* :mod:`.importer` — :class:`ClaudeCodeImporter`, which runs them per session, and format detection.
"""

from __future__ import annotations

from agentgraph.sources.claude_code.discovery import SessionFiles, discover
from agentgraph.sources.claude_code.importer import ClaudeCodeImporter, looks_like_claude_code
from agentgraph.sources.claude_code.sizing import TokenBook

# isort: split
# Private names agentgraph.sources.recording imports from here: it builds the same records from
# recordings and hands them to ClaudeCodeImporter.assemble. Issue 20 makes these shared types public.
from agentgraph.sources.claude_code.lines import _check_usage as _check_usage
from agentgraph.sources.claude_code.linking import _SPAWN_TOOLS as _SPAWN_TOOLS
from agentgraph.sources.claude_code.records import _Call as _Call
from agentgraph.sources.claude_code.records import _SessionLines as _SessionLines
from agentgraph.sources.claude_code.records import _usage as _usage

__all__ = ["ClaudeCodeImporter", "SessionFiles", "TokenBook", "discover", "looks_like_claude_code"]
