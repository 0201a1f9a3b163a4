"""Tool-JSON validation: a regex fast path on the raw text, the exact validator behind it.

A tool call's input arrives as JSON text. :func:`compile_schema` turns the tool's JSON Schema
into a :class:`SchemaValidator` whose fast path is one RE2 regex matched on that text (see
:mod:`agentgraph.validation.fastpath`): a match means valid, without parsing. Everything else
(no match, a schema the fast path does not cover, texts longer than the fast path pays off for)
goes to the exact validator, ``jsonschema`` on the parsed value, which also writes the error.

>>> v = compile_schema({"type": "object", "properties": {"n": {"type": "integer", "minimum": 1}},
...                     "required": ["n"], "additionalProperties": False})
>>> v.fast_accepts('{ "n": 3 }')
True
>>> v.validate(b'{"n": 0}')
Verdict(valid=False, by_fast_path=False, error='$.n: 0 is less than the minimum of 1')
>>> v.validate('{"n": 2}').by_fast_path
True
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import orjson
import re2
from jsonschema import (
    Draft4Validator,
    Draft6Validator,
    Draft7Validator,
    Draft201909Validator,
    Draft202012Validator,
    SchemaError,
)
from jsonschema.protocols import Validator
from referencing.exceptions import Unresolvable

from agentgraph.errors import UsageError
from agentgraph.schemas import schema_id, strip_annotations
from agentgraph.validation.exact import UnusablePatternError, exact_validator, runs_on_re2
from agentgraph.validation.fastpath import compile_regex

__all__ = [
    "FAST_MAX_BYTES",
    "RE2_MAX_MEM",
    "SchemaValidator",
    "Verdict",
    "compile_schema",
    "exact_validator",
    "runs_on_re2",
    "schema_id",
    "strip_annotations",
]

FAST_MAX_BYTES = 12 * 1024
"""Texts up to this size always try the fast path. Longer ones try it only when they hold many
strings: RE2's DFA costs about 2.2 ns a byte, orjson + jsonschema about 0.8 ns a byte plus ~3.5 µs
a string, so one long string is checked faster by the exact validator and many short ones by
the regex (``benchmarks/validation_speed.py``, ``docs/performance.md``)."""
_SAMPLE_BYTES = 1024


def _fast_pays(data: bytes, limit: int) -> bool:
    """Whether the regex is expected to beat orjson + jsonschema on ``data``."""
    n = len(data)
    if n <= limit:
        return True
    # a sample from the middle (the start holds member names); escaped quotes are content
    lo, hi = n // 2 - _SAMPLE_BYTES // 2, n // 2 + _SAMPLE_BYTES // 2
    quotes = data.count(b'"', lo, hi) - data.count(b'\\"', lo, hi)
    strings = quotes / 2 * n / _SAMPLE_BYTES
    return 0.0022 * n < 20.0 + 0.0008 * n + 3.5 * strings


RE2_MAX_MEM = 64 << 20
"""Memory RE2 may use for one fast-path program and its DFA cache."""


@dataclass(frozen=True, slots=True)
class Verdict:
    """Whether a text is valid, whether the fast path alone decided it, and the first error."""

    valid: bool
    by_fast_path: bool
    error: str | None = None


_FAST_VALID = Verdict(True, True)


class SchemaValidator:
    """A compiled tool schema: :meth:`fast_accepts` (regex only) and :meth:`validate` (exact)."""

    __slots__ = ("_exact", "_fast", "fast_max_bytes", "max_text_bytes", "reasons", "regex", "schema")

    def __init__(self, schema: Mapping[str, Any] | bool, exact: Validator, regex: str | None,
                 max_text_bytes: int | None, reasons: tuple[str, ...],
                 fast_max_bytes: int = FAST_MAX_BYTES) -> None:
        self.schema = schema
        self._exact = exact
        self.regex = regex
        self.reasons = reasons
        limit = max_text_bytes if max_text_bytes is not None else 1 << 62
        self.max_text_bytes = limit
        self.fast_max_bytes = min(fast_max_bytes, limit)
        self._fast = None if regex is None else _re2_fullmatch(regex)

    @property
    def has_fast_path(self) -> bool:
        """Whether any text at all can be decided by the fast path."""
        return self._fast is not None

    def fast_accepts(self, text: str | bytes) -> bool:
        """True only when the regex alone shows ``text`` is valid (any length)."""
        data = _utf8(text)
        return (self._fast is not None and data is not None and len(data) <= self.max_text_bytes
                and self._fast(data) is not None)

    def validate(self, text: str | bytes) -> Verdict:
        """The verdict on ``text``: by the fast path when it matches, else by ``jsonschema``."""
        n, limit = len(text), self.fast_max_bytes
        pays = n <= limit or (isinstance(text, bytes) and n <= self.max_text_bytes and _fast_pays(text, limit))
        # fast_accepts checks UTF-8; on the exact path orjson does
        if self._fast is not None and pays and self.fast_accepts(text):
            return _FAST_VALID
        return self.exact(text)

    def exact(self, text: str | bytes) -> Verdict:
        """The verdict of ``orjson.loads`` + ``jsonschema`` alone."""
        try:
            value = orjson.loads(text)
        except orjson.JSONDecodeError as exc:
            return Verdict(False, False, f"invalid JSON: {exc}")
        return self.check(value)

    def check(self, value: Any) -> Verdict:
        """The verdict of ``jsonschema`` on an already parsed value."""
        try:  # the first error, as jsonschema meets it (cheaper than ranking them all)
            error = next(iter(self._exact.iter_errors(value)), None)
        except Unresolvable as exc:  # a remote or missing $ref: nothing can be decided
            return Verdict(False, False, f"cannot validate: unresolvable reference {exc.ref!r}")
        except UnusablePatternError as exc:
            return Verdict(False, False, f"cannot validate: {exc}")
        if error is None:
            return Verdict(True, False)
        return Verdict(False, False, f"{error.json_path}: {error.message}")


def compile_schema(schema: Mapping[str, Any] | bool, *, any_order: bool = True,
                   fast_max_bytes: int = FAST_MAX_BYTES) -> SchemaValidator:
    """Compile a tool's input schema (draft 2020-12 unless its ``$schema`` names draft-07).

    Raises :class:`~agentgraph.errors.UsageError` when ``schema`` is not a valid JSON Schema.
    """
    try:
        exact = exact_validator(schema)
    except SchemaError as exc:
        raise UsageError(f"invalid JSON Schema: {exc.message}") from None

    def accepts(value: Any, subschema: Mapping[str, Any]) -> bool:
        return bool(exact.evolve(schema=subschema).is_valid(value))

    compiled = compile_regex(schema, _CONSTRAINING | set(type(exact).VALIDATORS), accepts,
                             any_order=any_order)
    regex, reasons = compiled.regex, compiled.reasons
    if compiled.too_long or (regex is not None and _re2_fullmatch(regex) is None):
        if any_order:  # too large with every member order: schema order only
            return compile_schema(schema, any_order=False, fast_max_bytes=fast_max_bytes)
        regex, reasons = None, (*reasons, "RE2 cannot compile the regex")
    return SchemaValidator(schema, exact, regex, compiled.max_text_bytes, reasons, fast_max_bytes)


_CONSTRAINING = frozenset().union(*(cls.VALIDATORS for cls in (
    Draft4Validator, Draft6Validator, Draft7Validator, Draft201909Validator, Draft202012Validator)))
"""Keywords some draft enforces: the fast path leaves a subschema using an unsupported one to the
exact validator even where its own draft ignores it (the test suite's compatibility cases)."""


def _re2_fullmatch(regex: str) -> Any:
    """RE2's fullmatch for ``regex`` (a bytes pattern), or None when RE2 itself cannot run it."""
    try:
        compiled = re2.compile(regex.encode("ascii"), max_mem=RE2_MAX_MEM)
    except re2.error:
        return None
    # pyre2 quietly hands patterns RE2 rejects (too large, unsupported) to Python's `re`
    return compiled.fullmatch if type(compiled) is re2.Pattern else None


def _utf8(text: str | bytes) -> bytes | None:
    """``text`` as UTF-8 bytes; None when it is not valid UTF-8 (which orjson rejects too)."""
    if isinstance(text, bytes):
        if text.isascii():
            return text
        try:
            text.decode()
        except UnicodeDecodeError:
            return None
        return text
    try:
        return text.encode()
    except UnicodeEncodeError:  # lone surrogates: not JSON text orjson accepts either
        return None
