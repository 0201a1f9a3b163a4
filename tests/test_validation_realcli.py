"""Validation on the real Claude Code CLI's own tool schemas and calls (captured at test time)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from agentgraph import cli
from agentgraph.sources import import_paths
from agentgraph.validation import compile_schema
from tests.realcli import ClaudeRun, run_claude

SCRIPTS = Path(__file__).resolve().parent.parent / "fixtures" / "scripts"
TOOLS = ("Bash", "Read", "Write", "Edit", "Glob", "Grep", "Agent")


@pytest.fixture(scope="module")
def runs(claude_cli: Path, tmp_path_factory: pytest.TempPathFactory) -> dict[str, ClaudeRun]:
    """Three real sessions: tools + a sub-agent, a 12-step loop, and a call with an invalid input."""
    out = {}
    for name in ("tools_and_subagent", "long_loop", "invalid_tool_input"):
        script = json.loads((SCRIPTS / f"{name}.json").read_text())
        out[name] = run_claude(claude_cli, script, "go", tmp_path_factory.mktemp(name), TOOLS)
    return out


@pytest.fixture(scope="module")
def real_schemas(runs: dict[str, ClaudeRun]) -> dict[str, Any]:
    """The input schema of every tool the CLI offered, as it sent them."""
    tools = {}
    for run in runs.values():
        for request in run.log:
            for tool in request.body.get("tools") or ():
                tools[tool["name"]] = tool["input_schema"]
    assert {"Bash", "Read", "Write", "Edit", "Glob", "Grep", "Agent"} <= set(tools)
    return tools


pytestmark = pytest.mark.realcli


def test_recorded_calls_carry_their_schema_and_pass_the_fast_path(runs: dict[str, ClaudeRun]) -> None:
    """Every tool call of the real sessions links to the schema the CLI sent; the valid ones match the regex."""
    result = import_paths([runs["tools_and_subagent"].projects_dir, runs["long_loop"].projects_dir])
    calls = [t for h in result.trace for t in h.tool_calls]
    assert len(calls) == 5 + 12
    validators = {sid: compile_schema(s) for sid, s in result.trace.schemas.items()}
    verdicts = [validators[t.schema_id].validate(t.input_json) for t in calls if t.schema_id is not None]
    assert len(verdicts) == len(calls)
    assert all(v.valid and v.by_fast_path for v in verdicts)


def test_validate_cli_reports_the_invalid_call(runs: dict[str, ClaudeRun], capsys: pytest.CaptureFixture[str]) -> None:
    """`agentgraph validate --json`: per tool calls, invalid calls with the first error, fast share, µs."""
    assert cli.main(["validate", str(runs["invalid_tool_input"].projects_dir), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    read, bash = report["tools"]["Read"], report["tools"]["Bash"]
    assert (read["calls"], read["invalid"], read["fast_path_share"]) == (2, 1, 0.5)
    assert read["first_error"]["error"] == "$.limit: 0 is less than or equal to the minimum of 0"
    assert (bash["calls"], bash["invalid"], bash["fast_path_share"]) == (1, 0, 1.0)
    assert set(read["us"]) == {"jsonschema", "fastpath", "dpu"}
    assert bash["us"]["dpu"]["p50"] == round(1e6 / 30e6, 3)  # decided on the modeled DPU alone
    assert report["total"] == {"calls": 3, "with_schema": 3, "invalid": 1, "fast_path_share": round(2 / 3, 6)}
    assert cli.main(["validate", str(runs["invalid_tool_input"].projects_dir), "--backend", "dpu,gpu"]) == 2
    assert "unknown validation backend 'gpu'" in capsys.readouterr().err


def test_import_measure_cpu_times_every_hop(runs: dict[str, ClaudeRun], tmp_path: Path) -> None:
    """--measure-cpu fills parse, validate and assemble µs on every hop of a current-format session."""
    out = tmp_path / "t.trace"
    args = ["import", str(runs["tools_and_subagent"].projects_dir), "-o", str(out), "--measure-cpu"]
    assert cli.main([*args, "--cpu-backend", "dpu", "--dpu-rate", "1e6"]) == 0
    from agentgraph import load

    trace = load(out)
    assert trace.meta == {"cpu_backend": "dpu", "dpu_checks_per_s": 1e6}
    for hop in trace:
        assert hop.parse_us is not None and hop.assemble_us is not None and hop.assemble_us > 0
        assert hop.validate_us == pytest.approx(len(hop.tool_calls) * 1.0)  # 1 µs a check, all decided
    assert cli.main(["import", str(runs["tools_and_subagent"].projects_dir), "-o", str(out)]) == 0
    assert all(h.cpu_us is None for h in load(out))  # not asked: nothing timed, output reproducible


def _corpus(schemas: dict[str, Any], n: int, seed: int = 0) -> list[tuple[str, str]]:
    """Realistic tool calls: paths, code edits with quotes and non-ASCII, shell lines, globs, findings."""
    rng = np.random.default_rng(seed)
    words = ["config", "src", "main", "utils", "test_api", "handler", "Ünïcode", "数据", "README"]

    def w() -> str:
        return str(rng.choice(words))

    def code() -> str:
        lines = [f'    {w()} = "{w()}"  # {w()}\n', f"def {w().lower()}(x):\n", '\tprint("a\\tb")\n',
                 "    return {'k': [1, 2]}\n"]
        return "".join(str(rng.choice(lines)) for _ in range(int(rng.integers(1, 40))))

    makers = {
        "Read": lambda: {"file_path": f"/work/{w()}/{w()}.py", **({"offset": int(rng.integers(0, 500)),
                                                                     "limit": 200} if rng.random() < .3 else {})},
        "Edit": lambda: {"file_path": f"/work/{w()}.py", "old_string": code(), "new_string": code(),
                         **({"replace_all": True} if rng.random() < .2 else {})},
        "Write": lambda: {"file_path": f"/work/{w()}.md", "content": code() * int(rng.integers(1, 5))},
        "Bash": lambda: {"command": f"cd /work && grep -rn '{w()}' . | head -{int(rng.integers(1, 50))}",
                         **({"timeout": 120000} if rng.random() < .3 else {})},
        "Grep": lambda: {"pattern": f"def {w()}\\(", **({"path": "/work"} if rng.random() < .5 else {}),
                         **({"output_mode": "content", "-n": True, "-C": 2} if rng.random() < .5 else {})},
        "Glob": lambda: {"pattern": f"**/*{w()}*.py", **({"path": "/work/src"} if rng.random() < .5 else {})},
        "Agent": lambda: {"description": f"Find {w()}", "prompt": f"Look for {w()} in the repo. {code()}",
                          "subagent_type": "general-purpose",
                          **({"run_in_background": False} if rng.random() < .5 else {})},
        "ReportFindings": lambda: {"findings": [
            {"file": f"src/{w()}.py", "line": int(rng.integers(1, 900)), "summary": f"{w()} leaks",
             "failure_scenario": code()[:200], "severity": str(rng.choice(["important", "nit"]))}
            for _ in range(int(rng.integers(0, 12)))]},
    }
    out = []
    for _ in range(n):
        name = str(rng.choice(sorted(n for n in makers if n in schemas)))
        value = makers[name]()
        if rng.random() < 0.2:  # the model does not always follow the schema's member order
            value = dict(reversed(list(value.items())))
        out.append((name, json.dumps(value, ensure_ascii=bool(rng.random() < 0.1), separators=(",", ":"))))
    return out


def test_fast_path_decides_95_percent_of_realistic_calls(real_schemas: dict[str, Any]) -> None:
    """On 2,000 generated realistic calls against the CLI's own schemas, the regex alone decides >= 95%."""
    validators = {name: compile_schema(s) for name, s in real_schemas.items()}
    calls = _corpus(real_schemas, 2000)
    decided: dict[str, list[bool]] = {}
    for name, text in calls:
        verdict = validators[name].validate(text)
        assert verdict.valid, (name, verdict.error)
        decided.setdefault(name, []).append(verdict.by_fast_path)
    shares = {name: sum(v) / len(v) for name, v in sorted(decided.items())}
    total = sum(sum(v) for v in decided.values()) / len(calls)
    print(f"fast-path share {total:.4f}; per tool {shares}")
    assert total >= 0.95


def _values(schema: Any, depth: int = 0) -> st.SearchStrategy[Any]:
    """Values near a schema: mostly of the right shape, sometimes off by a type, bound or member."""
    anything = st.none() | st.booleans() | st.integers() | st.text(max_size=5)
    if not isinstance(schema, dict) or depth > 3:
        return anything
    if "enum" in schema:
        return st.sampled_from(schema["enum"]) | st.text(max_size=6)
    kind = schema.get("type")
    if kind == "string":
        top = schema.get("maxLength", 40)
        return st.text(max_size=min(top + 2, 300)) | anything
    if kind in ("integer", "number"):
        lo, hi = schema.get("minimum", -(10**6)), schema.get("maximum", 10**6)
        near = st.sampled_from([lo - 1, lo, hi, hi + 1, 0, schema.get("exclusiveMinimum", 0)])
        return near | st.integers(-(2**63), 2**63) | st.floats(allow_nan=False, allow_infinity=False)
    if kind == "boolean":
        return st.booleans() | anything
    if kind == "array":
        return st.lists(_values(schema.get("items"), depth + 1), max_size=schema.get("maxItems", 4) + 1) | anything
    if kind == "object":
        props = schema.get("properties", {})
        required = [r for r in schema.get("required", []) if r in props]
        optional = {k: _values(v, depth + 1) for k, v in props.items()}
        shaped = st.fixed_dictionaries({k: _values(props[k], depth + 1) for k in required},
                                       optional={**{k: s for k, s in optional.items() if k not in required},
                                                 "extra": anything})
        partial = st.fixed_dictionaries({}, optional=optional)
        return shaped | partial
    return anything


@settings(max_examples=60, deadline=None, suppress_health_check=list(HealthCheck))
@given(data=st.data())
def test_fast_path_is_sound_on_the_real_tool_schemas(real_schemas: dict[str, Any], data: st.DataObject) -> None:
    """Near-valid inputs for every real tool schema: a fast-path match is always valid for jsonschema."""
    for name, schema in sorted(real_schemas.items()):
        v = compile_schema(schema)
        value = data.draw(_values(schema), label=name)
        for text in (json.dumps(value), json.dumps(value, indent=1, ensure_ascii=False),
                     json.dumps(dict(reversed(list(value.items()))) if isinstance(value, dict) else value)):
            if v.fast_accepts(text):
                assert v.exact(text).valid, (name, text)
