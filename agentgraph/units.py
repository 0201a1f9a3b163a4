"""The units of an Anthropic Messages API request, as every Claude Code source hashes them.

A request is cut, in API order, into tool definitions, system blocks and messages; each is a
unit with a 16-byte content key and an estimated token count (see :mod:`agentgraph.tokens`).
``cache_control`` markers are not content: they are stripped before hashing. Redacted
recordings store exactly these keys and estimates instead of the content.
"""

from __future__ import annotations

import hashlib
from typing import Any

from agentgraph.tokens import Unit, canonical_json, estimate_tokens, unit_key

__all__ = ["message_unit", "plain_unit", "request_units", "strip_cache_control"]


def strip_cache_control(value: Any) -> Any:
    """``value`` without any ``cache_control`` key, at any depth."""
    if isinstance(value, dict):
        return {k: strip_cache_control(v) for k, v in value.items() if k != "cache_control"}
    if isinstance(value, list):
        return [strip_cache_control(v) for v in value]
    return value


def plain_unit(value: Any) -> Unit:
    """A tool definition or system block: keyed BLAKE2b of its canonical JSON."""
    data = canonical_json(strip_cache_control(value))
    return unit_key(data), estimate_tokens(data)


def message_unit(message: Any) -> Unit:
    """A message: SHA-256 of sorted compact ``{"role","content"}`` JSON (the CLI's own message
    hash), string content read as the one text block the API sees it as.

    >>> message_unit({"role": "user", "content": "hi"}) == message_unit(
    ...     {"role": "user", "content": [{"type": "text", "text": "hi", "cache_control": {"type": "ephemeral"}}]})
    True
    """
    if not isinstance(message, dict):
        raise ValueError("a message is not an object")
    content = message.get("content")
    if isinstance(content, str):
        content = [{"type": "text", "text": content}]
    data = canonical_json(strip_cache_control({"role": message.get("role"), "content": content}))
    return hashlib.sha256(data).digest()[:16], estimate_tokens(data)


def request_units(body: dict[str, Any]) -> tuple[list[Unit], list[Unit]]:
    """(tool and system units, message units) of a request body, in API order."""
    system = body.get("system") or []
    if isinstance(system, str):
        system = [{"type": "text", "text": system}]
    fixed = [plain_unit(t) for t in body.get("tools") or ()] + [plain_unit(b) for b in system]
    return fixed, [message_unit(m) for m in body.get("messages") or ()]
