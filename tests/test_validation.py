"""Tool-JSON validation: the RE2 fast path is sound, covers real tool calls, and runs in linear time."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path
from typing import Any

import orjson
import pytest
import re2
from hypothesis import given, settings
from hypothesis import strategies as st

from agentgraph.errors import UsageError
from agentgraph.schemas import schema_id, strip_annotations
from agentgraph.validation import FAST_MAX_BYTES, SchemaValidator, Verdict, compile_schema, runs_on_re2
from agentgraph.validation.fastpath import _int_range
from tests.schema_suite import SuiteUnavailable, cases

READ = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "type": "object",
    "properties": {
        "file_path": {"type": "string"},
        "offset": {"type": "integer", "minimum": 0, "maximum": 9007199254740991},
        "limit": {"type": "integer", "exclusiveMinimum": 0, "maximum": 9007199254740991},
    },
    "required": ["file_path"],
    "additionalProperties": False,
}
EDIT = {
    "type": "object",
    "properties": {"file_path": {"type": "string"}, "old_string": {"type": "string"},
                   "new_string": {"type": "string"}, "replace_all": {"type": "boolean", "default": False}},
    "required": ["file_path", "old_string", "new_string"],
    "additionalProperties": False,
}
TODOS = {
    "type": "object",
    "properties": {"todos": {"type": "array", "maxItems": 20, "items": {
        "type": "object",
        "properties": {"content": {"type": "string", "minLength": 1, "maxLength": 60},
                       "status": {"enum": ["pending", "in_progress", "completed"]},
                       "priority": {"type": "number", "minimum": 0, "exclusiveMaximum": 10}},
        "required": ["content", "status"], "additionalProperties": False}}},
    "required": ["todos"],
}
MIXED = {
    "anyOf": [{"type": "string", "maxLength": 3}, {"type": "integer", "minimum": -5, "maximum": 1000}],
    "allOf": [{"type": ["string", "integer", "null"]}],
}
OPEN = {"type": "object", "properties": {"a": {"type": "integer"}, "b": {"const": [1, "x"]}},
        "additionalProperties": {"type": ["string", "null"]}}


def _json_texts(value: Any) -> list[bytes]:
    """The forms a JSON text arrives in: compact, spaced, indented, ASCII-escaped, keys reversed."""
    def reverse(v: Any) -> Any:
        if isinstance(v, dict):
            return {k: reverse(v[k]) for k in reversed(list(v))}
        return [reverse(x) for x in v] if isinstance(v, list) else v

    return [json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode(),
            json.dumps(value).encode(), json.dumps(value, indent=2, ensure_ascii=False).encode(),
            json.dumps(value, ensure_ascii=True).encode(), json.dumps(reverse(value), indent="\t").encode()]


# --------------------------------------------------------------------------- the API


def test_validate_returns_verdicts_with_the_first_error() -> None:
    """A match is valid by the fast path; a miss gets jsonschema's verdict and message."""
    v = compile_schema(READ)
    assert v.validate('{"file_path": "/a.py", "limit": 5}') == Verdict(True, True, None)
    assert v.validate(b'{"file_path":"/a.py","limit":0}') == Verdict(
        False, False, "$.limit: 0 is less than or equal to the minimum of 0")
    assert v.validate('{"limit": 1}') == Verdict(False, False, "$: 'file_path' is a required property")
    assert v.validate('{"file_path": "/a", "mode": 1}') == Verdict(
        False, False, "$: Additional properties are not allowed ('mode' was unexpected)")
    bad = v.validate('{"file_path": "/a"')
    assert not bad.valid and not bad.by_fast_path and bad.error is not None
    assert bad.error.startswith("invalid JSON: ")


def test_a_valid_text_the_fast_path_misses_is_still_valid() -> None:
    """1.0 is an integer to JSON Schema but not to the regex: the exact validator decides."""
    v = compile_schema(READ)
    assert not v.fast_accepts('{"file_path": "/a", "limit": 1.0}')
    assert v.validate('{"file_path": "/a", "limit": 1.0}') == Verdict(True, False, None)


@pytest.mark.parametrize("text", [
    '{"file_path":"/x"}', ' \n{ "file_path" :\t"/x" }\r\n', '{"limit":3,"file_path":"/x","offset":0}',
    '{"file_path":"/\\u00e9\\n\\"q\\"\\/\\ud83d\\ude00"}', '{"file_path":"/é😀"}',
    '{"file_path":"/x","limit":9007199254740991}', '{"offset":1,"offset":2,"file_path":"/x"}',
])
def test_fast_path_accepts_the_forms_valid_text_arrives_in(text: str) -> None:
    """Any whitespace, any member order, escapes, raw UTF-8, str or bytes."""
    v = compile_schema(READ)
    assert v.fast_accepts(text) and v.fast_accepts(text.encode())
    assert v.exact(text).valid


@pytest.mark.parametrize("text", [
    b'{"file_path":"/x\xff"}', '{"file_path":"\\ud800"}', '{"file_path":"\\udc00\\ud800"}',
    '{"file_path":"a\tb"}', '{"file_path":"/x",}', '{"file_path":"/x","limit":9007199254740992}',
    '{"file_path":"/x","limit":0}', '{"file_path":"/x","offset":-1}', '{"file_path":"/x","limit":1e3}',
    '{"\\u0066ile_path":"/x"}', '{"file_path":"/x"} x', '{"file_path":"/x"', "",
])
def test_fast_path_rejects_what_it_cannot_show_valid(text: str | bytes) -> None:
    """Bad UTF-8, lone surrogates, raw control characters, bounds, exponents, escaped names."""
    assert not compile_schema(READ).fast_accepts(text)


def test_lone_surrogate_in_a_str_is_not_valid_json() -> None:
    """A Python str that cannot be UTF-8 is no JSON text: rejected, never an exception."""
    v = compile_schema(READ)
    assert not v.fast_accepts('{"file_path":"\ud800"}')
    assert not v.validate('{"file_path":"\ud800"}').valid


def test_any_order_of_required_members() -> None:
    """Up to four required members match in every order, optional ones anywhere."""
    v = compile_schema(EDIT)
    for order in (["file_path", "old_string", "new_string"], ["new_string", "replace_all", "file_path", "old_string"]):
        value = {k: True if k == "replace_all" else "s" for k in order}
        assert v.fast_accepts(json.dumps(value)), order
    assert not v.fast_accepts('{"file_path":"a","old_string":"b"}')


def test_long_strings_skip_the_fast_path_in_validate() -> None:
    """Past FAST_MAX_BYTES, one long string goes to jsonschema (faster there), many strings stay on RE2."""
    v = compile_schema(READ)
    one_string = json.dumps({"file_path": "x" * 4 * FAST_MAX_BYTES})
    assert v.fast_accepts(one_string)
    assert v.validate(one_string) == Verdict(True, False, None)
    unbounded = {k: v for k, v in TODOS["properties"]["todos"].items() if k != "maxItems"}
    todos = compile_schema({"type": "object", "properties": {"todos": unbounded}})
    many = json.dumps({"todos": [{"content": f"step {i}", "status": "pending"} for i in range(2000)]})
    assert len(many) > 4 * FAST_MAX_BYTES
    assert todos.validate(many.encode()) == Verdict(True, True, None)  # bytes: the density is sampled
    assert todos.validate(many) == Verdict(True, False, None)  # a long str goes to jsonschema


def test_max_length_above_the_regex_count_bounds_the_text() -> None:
    """maxLength 5000 cannot be counted by RE2: texts up to 5000 bytes are decided, longer ones are not."""
    v = compile_schema({"type": "object", "properties": {"s": {"type": "string", "maxLength": 5000}}})
    short, long_ = json.dumps({"s": "é" * 2400}, ensure_ascii=False), json.dumps({"s": "x" * 5001})
    assert v.fast_accepts(short) and v.exact(short).valid
    assert not v.fast_accepts(long_) and not v.exact(long_).valid
    assert not v.fast_accepts(json.dumps({"s": "x" * 4990}) + " " * 20)  # valid, but the text is too long


def test_unsupported_keywords_leave_the_decision_to_jsonschema() -> None:
    """A subschema with oneOf, $ref, format, pattern ... matches nothing in the fast path."""
    v = compile_schema({"type": "object", "properties": {"a": {"type": "string", "format": "email"},
                                                         "b": {"type": "integer"}}})
    assert v.fast_accepts('{"b": 1}') and not v.fast_accepts('{"a": "x@y", "b": 1}')
    assert v.validate('{"a": "x@y", "b": 1}') == Verdict(True, False, None)
    none = compile_schema({"oneOf": [{"type": "string"}, {"type": "integer"}]})
    assert not none.has_fast_path and none.reasons == ("unsupported keyword 'oneOf'",)


def test_enum_const_anyof_allof_and_open_objects() -> None:
    """Enum values the rest of the schema rejects are dropped; anyOf branches merge with their parent."""
    v = compile_schema(MIXED)
    assert [v.fast_accepts(t) for t in ('"abc"', '"abcd"', "-5", "1000", "1001", "null", "1.5")] == [
        True, False, True, True, False, False, False]
    assert v.validate("1001") == Verdict(False, False, "$: 1001 is not valid under any of the given schemas")
    e = compile_schema({"type": "string", "enum": ["a", "bb", 3], "maxLength": 1})
    assert [e.fast_accepts(t) for t in ('"a"', '"bb"', "3")] == [True, False, False]
    o = compile_schema(OPEN)
    assert o.fast_accepts('{"zz": "q", "a": 1, "b": [1, "x"], "n": null}')
    assert not o.fast_accepts('{"a": "1"}') and not o.fast_accepts('{"zz": 1}')
    assert not o.fast_accepts('{"b": [1, "y"]}')


def test_invalid_schema_is_a_usage_error() -> None:
    """A schema that breaks its meta-schema is refused with jsonschema's reason."""
    with pytest.raises(UsageError, match=r"invalid JSON Schema: 3 is not valid under any of the given schemas"):
        compile_schema({"type": 3})


def test_schema_ids_ignore_prose_only() -> None:
    """Descriptions and titles go; a property named 'description' stays; ids follow the structure."""
    documented = {"type": "object", "description": "Runs a command",
                  "properties": {"description": {"type": "string", "title": "What it does"}}}
    assert strip_annotations(documented) == {"type": "object", "properties": {"description": {"type": "string"}}}
    assert schema_id(documented) == schema_id(strip_annotations(documented)) == "40eba811f314b7ea"
    assert schema_id({"type": "object"}) != schema_id({"type": "array"})


# --------------------------------------------------------------------------- RE2, never Python's re


def test_pyre2_falls_back_to_python_re_silently_and_we_guard_it() -> None:
    """pyre2 hands backreferences to Python's re without a word; the validator checks the type."""
    assert type(re2.compile(r"(a)\1")) is not re2.Pattern  # the silent fallback exists
    assert type(re2.compile(r"\d+")) is re2.Pattern
    assert not runs_on_re2(r"^(a)\1$") and runs_on_re2(r"^wf_[a-z0-9-]{6,}$")
    v = compile_schema({"type": "string", "pattern": r"^(a)\1$"})
    assert v.validate('"aa"') == Verdict(True, False, None) and not v.validate('"ab"').valid


def test_fast_path_regexes_compile_in_re2_itself() -> None:
    """Every compiled fast path is a real re2.Pattern (pyre2 offers a FallbackPattern otherwise)."""
    for schema in (READ, EDIT, TODOS, MIXED, OPEN):
        v = compile_schema(schema)
        assert v.regex is not None
        assert type(re2.compile(v.regex.encode("ascii"))) is re2.Pattern


def test_adversarial_pattern_on_100_kb_runs_in_milliseconds() -> None:
    """(a+)+$ backtracks exponentially in Python's re; on RE2 a 100 KB instance takes milliseconds."""
    v = compile_schema({"type": "object", "properties": {"name": {"type": "string", "pattern": "^(a+)+$"}}})
    text = json.dumps({"name": "a" * 100_000 + "!"})
    t0 = time.perf_counter()
    verdict = v.validate(text)
    elapsed = time.perf_counter() - t0
    assert not verdict.valid and verdict.error is not None and "does not match '^(a+)+$'" in verdict.error
    t0 = time.perf_counter()
    assert re.search("^(a+)+$", "a" * 20 + "!") is None  # 20 characters already take ~2^20 steps
    python_re_s = time.perf_counter() - t0
    print(f"RE2 on 100 KB: {elapsed * 1e3:.2f} ms; Python re on 21 characters: {python_re_s * 1e3:.1f} ms")
    assert elapsed < 0.1


# --------------------------------------------------------------------------- soundness


def test_no_false_accept_on_the_json_schema_test_suite() -> None:
    """Zero invalid instances of the official draft 2020-12 suite (optional tests too) pass the fast path."""
    try:
        suite = list(cases())
    except SuiteUnavailable as exc:
        pytest.fail(f"JSON-Schema-Test-Suite unavailable: {exc}", pytrace=False)
    compiled: dict[str, SchemaValidator] = {}
    false_accepts, accepted_valid, texts = [], 0, 0
    for case in suite:
        key = json.dumps(case.schema, sort_keys=True)
        if key not in compiled:
            compiled[key] = compile_schema(case.schema)
        for text in _json_texts(case.data):
            texts += 1
            if compiled[key].fast_accepts(text):
                if case.valid:
                    accepted_valid += 1
                else:
                    false_accepts.append(f"{case.file}: {case.group} / {case.test}: {text[:80]!r}")
    print(f"{len(suite)} suite instances, {texts} texts, {accepted_valid} valid ones decided by the fast path")
    assert false_accepts == []
    assert len(suite) > 1500 and accepted_valid > 500  # the fast path does decide a good share


JSON_VALUES = st.recursive(
    st.none() | st.booleans() | st.integers(-(10**20), 10**20)
    | st.floats(allow_nan=False, allow_infinity=False) | st.text(max_size=12),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(
        st.sampled_from(["todos", "content", "status", "priority", "a", "b", "zz", "file_path", "limit"])
        | st.text(max_size=4), inner, max_size=4),
    max_leaves=12,
)


@st.composite
def _todo_like(draw: st.DrawFn) -> Any:
    item = st.fixed_dictionaries(
        {"content": st.text(max_size=62), "status": st.sampled_from(["pending", "completed", "done"])},
        optional={"priority": st.integers(-1, 11) | st.floats(-1, 11), "x": JSON_VALUES})
    return {"todos": draw(st.lists(item | JSON_VALUES, max_size=22))}


@settings(max_examples=400, deadline=None)
@given(schema=st.sampled_from([READ, EDIT, TODOS, MIXED, OPEN]), value=JSON_VALUES | _todo_like(),
       form=st.integers(0, 4))
def test_fast_path_is_sound_on_generated_values(schema: dict[str, Any], value: Any, form: int) -> None:
    """Whatever the value and its text form: a fast-path match is valid for jsonschema too."""
    text = _json_texts(value)[form]
    v = compile_schema(schema)
    if v.fast_accepts(text):
        assert v.exact(text).valid, text


@settings(max_examples=300, deadline=None)
@given(lo=st.integers(-(10**12), 10**12), span=st.integers(0, 10**6), probe=st.integers(-(10**6), 10**6))
def test_integer_range_regex_is_exact(lo: int, span: int, probe: int) -> None:
    """The regex of [lo, hi] matches exactly the decimal literals of the integers in it."""
    hi = lo + span
    pattern = re2.compile("(?:" + "|".join(_int_range(lo, hi)) + ")")
    for x in (lo, hi, lo - 1, hi + 1, lo + probe % (span + 1), probe, -probe, 0):
        assert (pattern.fullmatch(str(x)) is not None) == (lo <= x <= hi), x


def test_json_values_are_parseable_as_orjson_sees_them() -> None:
    """The fast path never accepts a text orjson refuses (big exponents, huge integers are kept out)."""
    v = compile_schema({"type": "number"})
    for text in ("1e400", "1" * 30, "-0", "0.5e-99", "12345678901234567.5"):
        if v.fast_accepts(text):
            orjson.loads(text)
    assert not v.fast_accepts("1e400") and not v.fast_accepts("1" * 30)


# --------------------------------------------------------------------------- the command line


def test_validate_cli_on_bad_or_schemaless_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing file exits 2 naming it; sources without schemas are counted, not failed."""
    from agentgraph import cli

    assert cli.main(["validate", str(tmp_path / "missing.trace")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'missing.trace'}: No such file or directory\n"
    legacy = Path(__file__).resolve().parent.parent / "fixtures" / "claude_legacy" / "projects"
    assert cli.main(["validate", str(legacy)]) == 0
    out = capsys.readouterr().out
    assert "none with a recorded schema (legacy transcripts" in out
