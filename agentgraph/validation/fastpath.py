"""Compile a JSON Schema into one RE2 regex over the JSON *text* of a valid instance.

The regex is an under-approximation of the schema: every text it matches parses (with orjson)
to a value the schema accepts, but it does not match every such text. A text it does not match
goes to the exact validator. What it matches, by construction:

* any JSON whitespace between tokens; UTF-8 text (the caller checks that non-ASCII bytes are
  valid UTF-8, :class:`~agentgraph.validation.SchemaValidator` does; the regex itself only
  checks it inside strings with a counted length);
* strings with raw characters and every JSON escape except lone surrogates, counted in code
  points for ``minLength``/``maxLength`` (as Python's ``len`` counts them);
* integers of at most 18 digits (orjson turns larger ones into floats) inside the schema's
  bounds; numbers with at most 17 fraction digits and a two-digit exponent when unbounded, or
  ``I.F`` with ``0 <= I < 10**9`` and at most 6 fraction digits when bounded (so float rounding
  cannot carry ``I.F`` over a bound);
* object members in any order when at most :data:`MAX_ORDERED_REQUIRED` members are required
  (each order of the required ones, optional ones anywhere), else in schema order; member names
  written exactly as orjson writes them; extra members only with raw-character ASCII names that
  are not declared, when ``additionalProperties`` allows them. A repeated optional member is
  harmless: every occurrence matched its schema, and the parser keeps one of them;
* arrays, ``enum``/``const`` (the values the rest of the schema accepts, written canonically),
  ``anyOf``/``allOf`` whose branches merge with their parent without interaction, and values of
  unconstrained schemas up to :data:`ANY_DEPTH` levels of nesting.

Any other keyword that constrains instances (``$ref``, ``oneOf``, ``not``, ``if``, ``format``,
``pattern``, ``patternProperties``, ``multipleOf``, ``uniqueItems: true``, ...) makes its
subschema match nothing, so instances that need it are left to the exact validator. Keywords the
exact validator ignores (``description``, ``default``, ``title``, unknown ones) are ignored here.

Large counted repetitions cannot be compiled (RE2 caps ``{n,m}`` at 1000): an upper bound above
:data:`MAX_COUNT` (``maxLength``, ``maxItems``) is enforced instead on the length of the whole
text, since no string or array inside a text of ``N`` bytes has more than ``N`` code points or
items.
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from itertools import permutations
from typing import Any

import orjson

__all__ = [
    "ANY_DEPTH",
    "MAX_COUNT",
    "MAX_ORDERED_REQUIRED",
    "MAX_REGEX_CHARS",
    "Compiled",
    "compile_regex",
]

ANY_DEPTH = 2
"""Nesting depth up to which a value of an unconstrained schema (``{}``, ``true``) is matched."""
MAX_COUNT = 256
"""Largest ``minLength``/``maxLength``/``minItems``/``maxItems`` written into the regex."""
MAX_ORDERED_REQUIRED = 4
"""Objects with at most this many required members match them in any order (``k!`` branches)."""
MAX_REGEX_CHARS = 60_000
"""Longer regexes are not used: RE2's program and DFA cache would outgrow their memory budget."""
MAX_INT_DIGITS = 18
_INT_CAP = 10**MAX_INT_DIGITS - 1
_DEC_CAP = 10**9

WS = r"[ \t\n\r]*"
_ASCII_RAW = r"\x20\x21\x23-\x5b\x5d-\x7f"
# no counted repetitions inside one character: RE2 caps the product of nested counts at 1000
_C = r"[\x80-\xbf]"
_MULTIBYTE = (
    rf"[\xc2-\xdf]{_C}|\xe0[\xa0-\xbf]{_C}|[\xe1-\xec\xee\xef]{_C}{_C}|\xed[\x80-\x9f]{_C}"
    rf"|\xf0[\x90-\xbf]{_C}{_C}|[\xf1-\xf3]{_C}{_C}{_C}|\xf4[\x80-\x8f]{_C}{_C}"
)
_H = "[0-9a-fA-F]"
_ESCAPE = (
    r'\\["\\/bfnrt]'
    rf"|\\u(?:[0-9a-cA-CefEF]{_H}{_H}{_H}|[dD][0-7]{_H}{_H})"
    rf"|\\u[dD][89abAB]{_H}{_H}\\u[dD][c-fC-F]{_H}{_H}"
)
CHAR = f"(?:[{_ASCII_RAW}]|{_MULTIBYTE}|{_ESCAPE})"
"""One code point of a JSON string's content, raw or escaped (for counted lengths)."""
_LOOSE_CHAR = rf"(?:[{_ASCII_RAW}\x80-\xff]|{_ESCAPE})"
STRING = rf'"(?:[{_ASCII_RAW}\x80-\xff]|{_ESCAPE})*"'
"""A JSON string of any length; its non-ASCII bytes are checked to be UTF-8 outside the regex."""
NUMBER = r"-?(?:0|[1-9][0-9]{0,16})(?:\.[0-9]{1,17})?(?:[eE][+-]?[0-9]{1,2})?"
_SCALAR = f"(?:{STRING}|{NUMBER}|true|false|null)"

_SUPPORTED = frozenset({
    "additionalItems", "additionalProperties", "allOf", "anyOf", "const", "enum",
    "exclusiveMaximum", "exclusiveMinimum", "items", "maxItems", "maxLength", "maximum",
    "minItems", "minLength", "minimum", "properties", "required", "type", "uniqueItems",
})
_OBJECT_KEYS = frozenset({"properties", "additionalProperties", "patternProperties", "required",
                          "unevaluatedProperties", "propertyNames"})
_ARRAY_KEYS = frozenset({"items", "additionalItems", "prefixItems", "contains", "unevaluatedItems"})
_TYPES = ("null", "boolean", "string", "number", "array", "object")


class _Empty(Exception):
    """The subschema matches nothing in the fast path (unsupported or unsatisfiable)."""


@dataclass(slots=True)
class Compiled:
    """A schema's fast-path regex (``None``: the fast path decides nothing) and its side bound."""

    regex: str | None
    max_text_bytes: int | None = None
    reasons: tuple[str, ...] = ()
    too_long: bool = False  # over MAX_REGEX_CHARS: worth retrying with members in schema order


@dataclass(slots=True)
class _Context:
    constraining: frozenset[str]
    accepts: Callable[[Any, Mapping[str, Any]], bool]
    any_order: bool = True
    max_text_bytes: int | None = None
    reasons: list[str] = field(default_factory=list)

    def bound_text(self, n: int) -> None:
        self.max_text_bytes = n if self.max_text_bytes is None else min(self.max_text_bytes, n)

    def empty(self, why: str) -> _Empty:
        if why not in self.reasons:
            self.reasons.append(why)
        return _Empty(why)


def compile_regex(schema: Any, constraining: Iterable[str],
                  accepts: Callable[[Any, Mapping[str, Any]], bool], *, any_order: bool = True) -> Compiled:
    """The fast-path regex of ``schema``.

    ``constraining`` names the keywords the exact validator enforces (the others are annotations);
    ``accepts(value, subschema)`` is the exact validator, used to keep only the ``enum`` values
    the rest of their subschema accepts.

    >>> c = compile_regex({"type": "boolean"}, ["type"], lambda v, s: True)
    >>> c.regex
    '[ \\\\t\\\\n\\\\r]*(?:true|false)[ \\\\t\\\\n\\\\r]*'
    """
    ctx = _Context(frozenset(constraining), accepts, any_order)
    try:
        body = _schema(schema, ctx)
    except _Empty:
        return Compiled(None, None, tuple(ctx.reasons))
    if len(body) > MAX_REGEX_CHARS:
        return Compiled(None, None, (*ctx.reasons, f"regex longer than {MAX_REGEX_CHARS} characters"), True)
    return Compiled(f"{WS}{body}{WS}", ctx.max_text_bytes, tuple(ctx.reasons))


def _alt(parts: Iterable[str]) -> str:
    unique = list(dict.fromkeys(parts))
    if not unique:
        raise _Empty("no alternative is left")
    return unique[0] if len(unique) == 1 else "(?:" + "|".join(unique) + ")"


def _any(depth: int) -> str:
    if depth == 0:
        return _SCALAR
    inner = _any(depth - 1)
    member = f"{STRING}{WS}:{WS}{inner}"
    array = rf"\[{WS}(?:{inner}(?:{WS},{WS}{inner})*)?{WS}\]"
    obj = rf"\{{{WS}(?:{member}(?:{WS},{WS}{member})*)?{WS}\}}"
    return f"(?:{_SCALAR}|{array}|{obj})"


# --------------------------------------------------------------------------- schemas


def _schema(s: Any, ctx: _Context) -> str:
    if s is True:
        return _any(ANY_DEPTH)
    if s is False or not isinstance(s, dict):
        raise ctx.empty("false or malformed schema")
    keys = {k for k in s if k in ctx.constraining}
    unsupported = sorted(keys - _SUPPORTED)
    if unsupported:
        raise ctx.empty(f"unsupported keyword {unsupported[0]!r}")
    if not keys:
        return _any(ANY_DEPTH)
    if "allOf" in s:
        return _schema(_merge_all(s, ctx), ctx)
    if "anyOf" in s:
        base = {k: v for k, v in s.items() if k != "anyOf"}
        branches = _list(s["anyOf"], ctx)
        out = []
        for branch in branches:
            try:
                out.append(_schema(_merge(base, branch, ctx), ctx))
            except _Empty:
                continue
        return _alt(out)
    if "enum" in s or "const" in s:
        return _enum(s, ctx)
    types = s.get("type", list(_TYPES))
    types = [types] if isinstance(types, str) else types
    if not isinstance(types, list) or not all(isinstance(t, str) for t in types):
        raise ctx.empty("malformed 'type'")
    if "number" in types and "integer" in types:
        types = [t for t in types if t != "integer"]
    out = []
    for t in types:
        try:
            out.append(_TYPED[t](s, ctx))
        except KeyError:
            raise ctx.empty(f"unknown type {t!r}") from None
        except _Empty:
            continue
    return _alt(out)


def _list(v: Any, ctx: _Context) -> list[Any]:
    if not isinstance(v, list) or not v:
        raise ctx.empty("malformed list of subschemas")
    return v


def _merge_all(s: dict[str, Any], ctx: _Context) -> dict[str, Any]:
    merged = {k: v for k, v in s.items() if k != "allOf"}
    for branch in _list(s["allOf"], ctx):
        merged = _merge(merged, branch, ctx)
    return merged


def _merge(base: dict[str, Any], branch: Any, ctx: _Context) -> dict[str, Any]:
    """``base`` and ``branch`` as one schema, when their keywords do not interact."""
    if branch is True:
        return base
    if not isinstance(branch, dict):
        raise ctx.empty("false or malformed branch")
    own = {k for k in base if k in ctx.constraining}
    other = {k for k in branch if k in ctx.constraining}
    for group in (_OBJECT_KEYS, _ARRAY_KEYS):
        if own & group and other & group:
            raise ctx.empty("branches constrain the same members")
    merged = {k: v for k, v in base.items() if k in ctx.constraining}
    for k in other:
        if k == "type" and "type" in merged:
            merged["type"] = _type_meet(merged["type"], branch["type"], ctx)
        elif k == "required" and "required" in merged:
            merged["required"] = list(dict.fromkeys([*merged["required"], *branch["required"]]))
        elif k in merged and merged[k] != branch[k]:
            raise ctx.empty(f"branches both set {k!r}")
        else:
            merged[k] = branch[k]
    return merged


def _type_meet(a: Any, b: Any, ctx: _Context) -> list[str]:
    sa, sb = ({x} if isinstance(x, str) else set(x) for x in (a, b))
    meet = sa & sb
    if ("integer" in sa and "number" in sb) or ("number" in sa and "integer" in sb):
        meet.add("integer")
    if not meet:
        raise ctx.empty("branches allow no common type")
    return sorted(meet)


def _enum(s: dict[str, Any], ctx: _Context) -> str:
    values = s["enum"] if "enum" in s else [s["const"]]
    if not isinstance(values, list):
        raise ctx.empty("malformed 'enum'")
    out = []
    for v in values:
        if not ctx.accepts(v, s):  # enum values the rest of the subschema rejects
            continue
        try:
            out.append(_literal(v, ctx))
        except _Empty:
            continue
    return _alt(out)


def _literal(v: Any, ctx: _Context) -> str:
    if v is None or isinstance(v, bool):
        return orjson.dumps(v).decode()
    if isinstance(v, int):
        if abs(v) > _INT_CAP:
            raise ctx.empty("integer beyond 18 digits")
        return str(v)
    if isinstance(v, float):
        if v.is_integer() and abs(v) <= _INT_CAP:
            return str(int(v))
        return _escape_bytes(orjson.dumps(v))
    if isinstance(v, str):
        return _escape_bytes(orjson.dumps(v))
    if isinstance(v, list):
        items = f"{WS},{WS}".join(_literal(x, ctx) for x in v)
        return rf"\[{WS}{items}{WS}\]"
    if isinstance(v, dict):
        members = f"{WS},{WS}".join(f"{_escape_bytes(orjson.dumps(k))}{WS}:{WS}{_literal(x, ctx)}"
                                    for k, x in v.items())
        return rf"\{{{WS}{members}{WS}\}}"
    raise ctx.empty(f"enum value of type {type(v).__name__}")


def _escape_bytes(data: bytes) -> str:
    """A regex matching exactly ``data`` (bytes written as ``\\xNN`` unless alphanumeric)."""
    return "".join(chr(b) if chr(b).isalnum() and b < 0x80 else f"\\x{b:02x}" for b in data)


# --------------------------------------------------------------------------- types


def _null(s: dict[str, Any], ctx: _Context) -> str:
    return "null"


def _boolean(s: dict[str, Any], ctx: _Context) -> str:
    return "(?:true|false)"


def _string(s: dict[str, Any], ctx: _Context) -> str:
    lo, hi = _count(s, "minLength", ctx, 0), _count(s, "maxLength", ctx, None)
    if not lo and hi is None:
        return STRING
    # a unit per byte or escape is at least one code point: exact enough for an upper bound
    unit = CHAR if lo else _LOOSE_CHAR
    return f'"{_repeat(unit, lo, hi, ctx)}"'


def _count(s: dict[str, Any], key: str, ctx: _Context, default: int | None) -> int | None:
    v = s.get(key, default)
    if v is None:
        return None
    if isinstance(v, float) and v.is_integer():
        v = int(v)
    if not isinstance(v, int) or isinstance(v, bool) or v < 0:
        raise ctx.empty(f"malformed {key!r}")
    return v


def _repeat(unit: str, lo: int | None, hi: int | None, ctx: _Context) -> str:
    """``unit`` repeated between ``lo`` and ``hi`` times (``hi`` None: unbounded)."""
    lo = lo or 0
    if hi is not None and hi < lo:
        raise ctx.empty("minimum count above maximum")
    if lo > MAX_COUNT:
        raise ctx.empty("minimum count too large for the regex")
    if hi is not None and hi > MAX_COUNT:
        ctx.bound_text(hi)
        hi = None
    if (lo, hi) == (0, 0):
        return ""
    inner = _inner_count(unit)
    if lo * inner > _RE2_MAX_REPEAT:
        raise ctx.empty("nested counts too large for RE2")
    if hi is not None and hi * inner > _RE2_MAX_REPEAT:
        hi = _RE2_MAX_REPEAT // inner  # RE2 refuses nested counts past 1000: accept fewer
    if hi is None:
        return f"{unit}*" if lo == 0 else f"{unit}{{{lo},}}"
    return f"{unit}{{{lo},{hi}}}"


_RE2_MAX_REPEAT = 1000
_COUNTED = re.compile(r"\{(\d+)(?:,(\d*))?\}")


def _inner_count(unit: str) -> int:
    """The largest count of a counted repetition inside ``unit`` (1 if none)."""
    return max((int(b or a) for a, b in _COUNTED.findall(unit)), default=1)


def _bounds(s: dict[str, Any], ctx: _Context) -> tuple[float | None, float | None, float | None, float | None]:
    out = []
    for key in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum"):
        v = s.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int | float) or not math.isfinite(v)):
            raise ctx.empty(f"malformed {key!r}")
        out.append(v)
    return out[0], out[1], out[2], out[3]


def _int_limits(s: dict[str, Any], ctx: _Context) -> tuple[int, int]:
    """The smallest and largest integers the bounds allow, clamped to 18 digits."""
    mn, emn, mx, emx = _bounds(s, ctx)
    lo, hi = -_INT_CAP, _INT_CAP
    if mn is not None:
        lo = max(lo, math.ceil(mn))
    if emn is not None:
        lo = max(lo, math.floor(emn) + 1)
    if mx is not None:
        hi = min(hi, math.floor(mx))
    if emx is not None:
        hi = min(hi, math.ceil(emx) - 1)
    return lo, hi


def _integer(s: dict[str, Any], ctx: _Context) -> str:
    lo, hi = _int_limits(s, ctx)
    return _alt(_int_range(lo, hi))


def _number(s: dict[str, Any], ctx: _Context) -> str:
    if not any(k in s for k in ("minimum", "exclusiveMinimum", "maximum", "exclusiveMaximum")):
        return NUMBER
    lo, hi = _int_limits(s, ctx)
    parts = list(_int_range(lo, hi))
    # I.F lies in [I, I + 1): inside the bounds when I >= lo and I + 1 <= hi (see module doc)
    dec_lo, dec_hi = max(lo, 0), min(hi - 1, _DEC_CAP - 1)
    parts += [rf"{p}\.[0-9]{{1,6}}" for p in _int_range(dec_lo, dec_hi)]
    return _alt(parts)


def _int_range(lo: int, hi: int) -> list[str]:
    """Regexes (alternatives) of the integer literals in ``[lo, hi]``; none if the range is empty."""
    if lo > hi:
        return []
    out = []
    if lo < 0:
        out += ["-" + p for p in _naturals(max(1, -min(hi, -1)), -lo)]
    if hi >= 0:
        out += _naturals(max(lo, 0), hi)
    return out


def _naturals(lo: int, hi: int) -> list[str]:
    out = []
    for digits in range(len(str(lo)), len(str(hi)) + 1):
        a = max(lo, 10 ** (digits - 1) if digits > 1 else 0)
        b = min(hi, 10**digits - 1)
        if a <= b:
            out += _same_length(str(a), str(b))
    return out


def _same_length(a: str, b: str) -> list[str]:
    """Regexes of the digit strings between ``a`` and ``b`` (equal lengths) inclusive."""
    n = len(a)
    if a == b:
        return [a]
    if a == "0" * n and b == "9" * n:
        return [f"[0-9]{{{n}}}" if n > 1 else "[0-9]"]
    if n == 1:
        return [f"[{a}-{b}]"]
    if a[0] == b[0]:
        return [a[0] + p for p in _group(_same_length(a[1:], b[1:]))]
    out = [a[0] + p for p in _group(_same_length(a[1:], "9" * (n - 1)))]
    if int(a[0]) + 1 <= int(b[0]) - 1:
        out.append(f"[{int(a[0]) + 1}-{int(b[0]) - 1}][0-9]{{{n - 1}}}")
    out += [b[0] + p for p in _group(_same_length("0" * (n - 1), b[1:]))]
    return out


def _group(parts: list[str]) -> list[str]:
    return parts if len(parts) == 1 else ["(?:" + "|".join(parts) + ")"]


def _array(s: dict[str, Any], ctx: _Context) -> str:
    items = s.get("items", True)
    if isinstance(items, list):
        raise ctx.empty("tuple-form 'items'")
    lo, hi = _count(s, "minItems", ctx, 0) or 0, _count(s, "maxItems", ctx, None)
    if s.get("uniqueItems") is True and (hi is None or hi > 1):
        raise ctx.empty("uniqueItems")
    if hi == 0:
        return rf"\[{WS}\]"
    try:
        item = _schema(items, ctx)
    except _Empty:
        if lo:
            raise
        return rf"\[{WS}\]"
    rest = _repeat(f"(?:{WS},{WS}{item})", max(lo - 1, 0), None if hi is None else hi - 1, ctx)
    body = f"{item}{rest}"
    return rf"\[{WS}{body}{WS}\]" if lo else rf"\[{WS}(?:{body})?{WS}\]"


def _object(s: dict[str, Any], ctx: _Context) -> str:
    props = s.get("properties", {})
    required = s.get("required", [])
    extra = s.get("additionalProperties", True)
    if not isinstance(props, dict) or not isinstance(required, list):
        raise ctx.empty("malformed 'properties' or 'required'")
    members: dict[str, str | None] = {}
    for name in [*props, *(r for r in required if r not in props)]:
        if not isinstance(name, str):
            raise ctx.empty("non-string member name")
        try:
            value = _schema(props.get(name, extra), ctx)
            members[name] = f"{_escape_bytes(orjson.dumps(name))}{WS}:{WS}{value}"
        except _Empty:
            members[name] = None
    needed = list(dict.fromkeys(required))
    if any(members[name] is None for name in needed):
        raise ctx.empty("a required member matches nothing")
    optional = [m for name, m in members.items() if m is not None and name not in needed]
    try:
        if extra is not False:
            optional.append(f'"{_not_in(members)}"{WS}:{WS}{_schema(extra, ctx)}')
    except _Empty:
        pass
    x = _alt(optional) if optional else None
    orders = permutations(needed) if ctx.any_order and len(needed) <= MAX_ORDERED_REQUIRED else [needed]
    sep = f"{WS},{WS}"
    branches = []
    for order in orders:
        if not order:
            branches.append("" if x is None else f"(?:{x}(?:{sep}{x})*)?")
            continue
        more = "" if x is None else f"(?:{sep}{x})*"
        head = "" if x is None else f"(?:{x}{sep})*"
        branches.append(head + sep.join(f"{members[n]}{more}" for n in order))
    return rf"\{{{WS}{_alt(branches)}{WS}\}}"


def _not_in(names: Iterable[str]) -> str:
    """Raw ASCII member names (no escapes) other than ``names``."""
    allowed = [b for b in range(0x20, 0x80) if b not in (0x22, 0x5C)]
    trie: dict[str, Any] = {}
    for name in names:
        if all(ord(c) in allowed for c in name):
            node = trie
            for c in name:
                node = node.setdefault(c, {})
            node[""] = {}
    out: list[str] = []

    def walk(node: dict[str, Any], prefix: str) -> None:
        if "" not in node:
            out.append(prefix)
        children = {ord(c) for c in node if c}
        others = [b for b in allowed if b not in children]
        if others:
            out.append(f"{prefix}{_byte_class(others)}[{_ASCII_RAW}]*")
        for c, child in sorted(node.items()):
            if c:
                walk(child, prefix + _escape_bytes(c.encode()))

    walk(trie, "")
    return _alt(out)


def _byte_class(values: list[int]) -> str:
    runs: list[tuple[int, int]] = []
    for v in sorted(values):
        if runs and runs[-1][1] == v - 1:
            runs[-1] = (runs[-1][0], v)
        else:
            runs.append((v, v))
    return "[" + "".join(f"\\x{a:02x}" if a == b else f"\\x{a:02x}-\\x{b:02x}" for a, b in runs) + "]"


_TYPED: dict[str, Callable[[dict[str, Any], _Context], str]] = {
    "null": _null, "boolean": _boolean, "string": _string, "integer": _integer,
    "number": _number, "array": _array, "object": _object,
}
