"""The exact validator: ``jsonschema`` with its regex keywords run on RE2.

``pattern``, ``patternProperties`` and ``additionalProperties`` (which consults the
``patternProperties`` regexes) search with RE2, so a schema's pattern runs in linear time
whatever it is. RE2 reads ``\\d``, ``\\w``, ``\\s`` and ``$`` the way ECMA-262 (the dialect JSON
Schema names) does for ASCII, unlike Python's ``re``. A pattern RE2 cannot run (backreferences,
lookaround) is searched with Python's ``re``: exact, but it may backtrack. pyre2 would silently
do the same; here it is explicit and :func:`runs_on_re2` tells which.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterator, Mapping
from functools import cache
from typing import Any

import re2
from jsonschema import Draft202012Validator, SchemaError, ValidationError
from jsonschema.exceptions import best_match
from jsonschema.protocols import Validator
from jsonschema.validators import extend, validator_for

__all__ = [
    "UnusablePatternError",
    "exact_validator",
    "runs_on_re2",
]


class UnusablePatternError(Exception):
    """A schema's pattern compiles neither in RE2 nor in Python's ``re`` (e.g. ECMA's ``\\cC``)."""


def exact_validator(schema: Mapping[str, Any] | bool) -> Validator:
    """A jsonschema validator for ``schema`` (its ``$schema`` draft, else 2020-12) using RE2.

    Raises ``jsonschema.SchemaError`` when ``schema`` breaks its draft's meta-schema. Patterns
    are not checked here (Python's ``re`` rejects valid ECMA-262 ones); one that neither engine
    compiles raises :class:`UnusablePatternError` when an instance reaches it.
    """
    cls: type[Validator] = validator_for(schema, default=Draft202012Validator)
    meta = validator_for(cls.META_SCHEMA, default=cls)(cls.META_SCHEMA)
    error = best_match(meta.iter_errors(schema))
    if error is not None:
        raise SchemaError.create_from(error)
    return _on_re2(cls)(schema)


def runs_on_re2(pattern: str) -> bool:
    """Whether RE2 itself runs ``pattern`` (``False``: Python's ``re`` has to)."""
    return _compiled(pattern)[1]


@cache
def _on_re2(cls: type[Validator]) -> type[Validator]:
    return extend(cls, {  # type: ignore[no-untyped-call,no-any-return]
        "pattern": _pattern,
        "patternProperties": _pattern_properties,
        "additionalProperties": _additional_properties,
    })


@cache
def _compiled(pattern: str) -> tuple[Callable[[str], Any], bool]:
    try:
        compiled = re2.compile(pattern)
        if type(compiled) is re2.Pattern:  # pyre2 returns a FallbackPattern running `re` otherwise
            return compiled.search, True
    except (re2.error, re.error):  # pyre2 re-raises what its `re` fallback says
        pass
    try:
        return re.compile(pattern).search, False
    except re.error as exc:
        message = f"pattern {pattern!r} compiles neither in RE2 nor in Python's re ({exc})"

    def unusable(text: str) -> Any:
        raise UnusablePatternError(message)

    return unusable, False


def _search(pattern: str, text: str) -> bool:
    return _compiled(pattern)[0](text) is not None


def _pattern(validator: Validator, pattern: str, instance: Any, schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if validator.is_type(instance, "string") and not _search(pattern, instance):
        yield ValidationError(f"{instance!r} does not match {pattern!r}")


def _pattern_properties(validator: Validator, patterns: Mapping[str, Any], instance: Any,
                        schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    for pattern, subschema in patterns.items():
        for name, value in instance.items():
            if _search(pattern, name):
                yield from validator.descend(value, subschema, path=name, schema_path=pattern)  # type: ignore[attr-defined]


def _additional_properties(validator: Validator, extra: Any, instance: Any,
                           schema: Mapping[str, Any]) -> Iterator[ValidationError]:
    if not validator.is_type(instance, "object"):
        return
    declared = schema.get("properties", {})
    patterns = schema.get("patternProperties", {})
    extras = [name for name in instance
              if name not in declared and not any(_search(p, name) for p in patterns)]
    if validator.is_type(extra, "object"):
        for name in extras:
            yield from validator.descend(instance[name], extra, path=name)  # type: ignore[attr-defined]
    elif extra is False and extras:
        names = ", ".join(repr(n) for n in sorted(extras))
        verb = "was" if len(extras) == 1 else "were"
        yield ValidationError(f"Additional properties are not allowed ({names} {verb} unexpected)")
