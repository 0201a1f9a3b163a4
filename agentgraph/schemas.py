"""Tool input schemas as traces keep them: without their prose, under a short content id.

Kept apart from :mod:`agentgraph.validation` so importers need neither jsonschema nor RE2.
"""

from __future__ import annotations

import hashlib
from typing import Any

from agentgraph.tokens import canonical_json

__all__ = [
    "schema_id",
    "strip_annotations",
    "tool_schemas",
]

_ANNOTATIONS = frozenset({"description", "title", "examples", "$comment"})
_SCHEMA_MAPS = frozenset({"properties", "patternProperties", "$defs", "definitions", "dependentSchemas"})
_SCHEMA_ONE = frozenset({"additionalProperties", "additionalItems", "not", "if", "then", "else",
                         "contains", "propertyNames", "unevaluatedItems", "unevaluatedProperties",
                         "contentSchema", "items"})
_SCHEMA_LISTS = frozenset({"allOf", "anyOf", "oneOf", "prefixItems", "items"})


def strip_annotations(schema: Any) -> Any:
    """``schema`` without its prose (``description``, ``title``, ``examples``, ``$comment``).

    Only keyword positions are touched: a property *named* ``description`` stays.

    >>> strip_annotations({"description": "x", "properties": {"description": {"type": "string"}}})
    {'properties': {'description': {'type': 'string'}}}
    """
    if not isinstance(schema, dict):
        return schema
    out: dict[str, Any] = {}
    for key, value in schema.items():
        if key in _ANNOTATIONS:
            continue
        if key in _SCHEMA_MAPS and isinstance(value, dict):
            value = {name: strip_annotations(sub) for name, sub in value.items()}
        elif key in _SCHEMA_LISTS and isinstance(value, list):
            value = [strip_annotations(sub) for sub in value]
        elif key in _SCHEMA_ONE or (key == "dependencies" and isinstance(value, dict)):
            value = ({k: strip_annotations(v) for k, v in value.items()} if key == "dependencies"
                     else strip_annotations(value))
        out[key] = value
    return out


def schema_id(schema: Any) -> str:
    """A short content id of a schema without its prose (16 hex digits).

    >>> schema_id({"type": "object", "description": "a"}) == schema_id({"type": "object"})
    True
    """
    return hashlib.blake2b(canonical_json(strip_annotations(schema)), digest_size=8).hexdigest()


def tool_schemas(tools: Any, into: dict[str, Any]) -> dict[str, str]:
    """``{tool name: schema id}`` of a request's ``tools``; their stripped schemas go ``into``."""
    out: dict[str, str] = {}
    for tool in tools if isinstance(tools, list) else ():
        if isinstance(tool, dict) and isinstance(tool.get("input_schema"), dict):
            stripped = strip_annotations(tool["input_schema"])
            sid = hashlib.blake2b(canonical_json(stripped), digest_size=8).hexdigest()
            into.setdefault(sid, stripped)
            out[str(tool.get("name"))] = sid
    return out
