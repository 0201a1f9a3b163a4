"""One agent's calls → hops: sized units, the prompt bound, block hashes and tool calls.

Calls are taken in start order; each is sized by the agent's :class:`~.sizing._AgentSizer`, cut
to :data:`~agentgraph.tokens.MAX_PROMPT_TOKENS` with a warning when above it, and hashed by one
:class:`~agentgraph.tokens.PrefixHasher` per agent (a request that extends the previous one
re-uses its hashed prefix).
"""

from __future__ import annotations

from agentgraph.errors import ImportIssue, IssueKind
from agentgraph.model import Hop, ToolCall
from agentgraph.sources.claude_code.records import _Call
from agentgraph.sources.claude_code.sizing import TokenBook, _AgentSizer
from agentgraph.tokens import MAX_PROMPT_TOKENS, PrefixHasher, truncate_units

__all__: list[str] = []  # internal to the package


def _hops(session_id: str, agent_id: str, calls: list[_Call], book: TokenBook,
          shared_keys: frozenset[bytes], block_size: int,
          results: dict[str, tuple[float | None, bool | None]], path: str,
          issues: list[ImportIssue]) -> list[Hop]:
    hasher = PrefixHasher(block_size)
    sizer = _AgentSizer(book, shared_keys)
    hops: list[Hop] = []
    cut = False  # the hasher holds a request cut to MAX_PROMPT_TOKENS
    for index, call in enumerate(sorted(calls, key=lambda c: c.start_s)):
        reported = None if call.usage is None else call.usage.prompt_tokens
        units, extends = sizer.size(call.units, None if reported is None else min(reported, MAX_PROMPT_TOKENS))
        prompt_tokens, was_cut = sizer.total, cut
        cut = prompt_tokens > MAX_PROMPT_TOKENS
        if cut or (reported or 0) > MAX_PROMPT_TOKENS:
            units, prompt_tokens = _bounded(call, units, prompt_tokens, reported, path, issues)
        hash_ids, shared = hasher.hash(units, extends and not cut and not was_cut)
        tools = tuple(ToolCall(tid, name, inp, t, *results.get(tid, (None, None)), call.tool_schemas.get(name))
                      for tid, name, inp, t in call.tool_uses)
        hops.append(Hop(
            hop_id=f"{session_id}/{agent_id}/{index}", session_id=session_id, agent_id=agent_id,
            index=index, model=call.model, start_s=call.start_s, end_s=call.end_s,
            prompt_tokens=prompt_tokens, output_tokens=call.output_tokens,
            shared_prefix_tokens=shared if index else 0, hash_ids=hash_ids, usage=call.usage,
            tool_calls=tools, stop_reason=call.stop_reason, request_id=call.request_id,
            assemble_us=call.assemble_us,
        ))
    return hops


def _bounded(call: _Call, units: list[tuple[bytes, int]], prompt_tokens: int, reported: int | None,
             path: str, issues: list[ImportIssue]) -> tuple[list[tuple[bytes, int]], int]:
    """A prompt over :data:`MAX_PROMPT_TOKENS` (reported or sized), cut to it, with a warning."""
    if reported is not None and reported > MAX_PROMPT_TOKENS:
        what = f"usage reports a prompt of {reported:,} tokens"
    else:
        what = f"the request's messages size to {prompt_tokens:,} tokens"
    issues.append(ImportIssue(call.path or path, call.line, f"{what}, above the bound of "
                              f"{MAX_PROMPT_TOKENS:,}: the hop keeps its first "
                              f"{min(prompt_tokens, MAX_PROMPT_TOKENS):,} (prompt_tokens and hash_ids)",
                              IssueKind.PROMPT_CAPPED))
    return truncate_units(units, MAX_PROMPT_TOKENS), min(prompt_tokens, MAX_PROMPT_TOKENS)
