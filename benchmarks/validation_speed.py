"""Validation speed: agentgraph's regex fast path vs orjson + a JSON Schema validator, text in -> verdict.

    python benchmarks/validation_speed.py [--quick] [--detail] [--json] [--seed 0]

Payloads are Claude Code-like tool inputs (Read, Grep, Edit, Write, Bash, TodoWrite; schemas written
here, structure only), serialized compactly with ``orjson.dumps`` to sizes close to (at most) 100 B,
300 B, 1 KB, 4 KB, 16 KB and 64 KB (``--quick``: 100 B, 1 KB, 16 KB, 64 KB), passed as bytes.
String-heavy tools grow one string (Write ``content``, Edit ``new_string``, Bash ``command``:
code-like ASCII lines with tabs, quotes, backslashes, an ANSI escape, non-ASCII and emoji),
TodoWrite grows the number of todos; Read and Grep only appear at 100 B and 300 B. Each payload
also has an invalid twin with one defect: Read ``limit`` a string (last member), Grep
``output_mode`` outside its enum (last member), Write ``file_path`` a number (first member: a
regex can stop early), Edit without ``old_string`` (seen only at the closing brace), Bash
``timeout`` above its maximum (after the command), TodoWrite's last todo with a ``status``
outside its enum.

Contenders, each precompiled per schema and timed in the same run on the same bytes:

* ``fastpath-regex``: ``SchemaValidator.fast_accepts`` alone (on an invalid text: the time to say no);
* ``agentgraph validate()``: ``SchemaValidator.validate``, the product path (the regex up to
  ``FAST_MAX_BYTES``, above it only for texts holding many strings; on no match ``orjson.loads``
  + agentgraph's jsonschema variant, with the first error's message);
* ``orjson+jsonschema``: ``orjson.loads`` + upstream ``jsonschema.Draft202012Validator.is_valid``,
  the baseline every ratio is against;
* ``orjson+fastjsonschema``: ``orjson.loads`` + ``fastjsonschema.compile`` (it has no 2020-12 mode and
  reads these schemas as draft-07, which means the same for them);
* ``orjson+jsonschema-rs``: ``orjson.loads`` + ``jsonschema_rs.validator_for(...).is_valid``
  (jsonschema-rs 0.x has no entry point taking JSON text, so there is no text-in row for it).

A peer that does not import is reported as skipped. Every contender's verdict on every payload is
checked first; a wrong one is reported (and the run exits 1) instead of being timed. Timing: per
cell (contender, tool, size, valid/invalid), calls in a loop sized to take ``--batch`` seconds
(0.06 s), ``time.perf_counter_ns``, garbage collector off during a batch (as ``timeit`` does), the
median of ``--repeats`` (5) batches, in µs per call. The tables aggregate over tools: the largest
µs, and the geometric mean of per-tool ratios ``orjson+jsonschema µs / this µs``. The crossover
line scans valid Write payloads from 1 KB to 64 KB for the size where ``fast_accepts`` becomes
slower than orjson+jsonschema (and than agentgraph's own fallback, ``SchemaValidator.exact``):
``FAST_MAX_BYTES`` belongs near it. The default run takes about two minutes on two cores.
"""

from __future__ import annotations

import argparse
import gc
import importlib.metadata
import itertools
import json
import math
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import orjson

from agentgraph.validation import FAST_MAX_BYTES, SchemaValidator, compile_schema

DRAFT = "https://json-schema.org/draft/2020-12/schema"
SIZES = (100, 300, 1024, 4096, 16384, 65536)
QUICK_SIZES = (100, 1024, 16384, 65536)
SCAN = (1024, 1536, 2048, 3072, 4096, 6144, 8192, 12288, 16384, 24576, 32768, 49152, 65536)
QUICK_SCAN = (1024, 4096, 8192, 16384, 32768, 65536)
BASELINE = "orjson+jsonschema"

# --------------------------------------------------------------------------- schemas


def _obj(props: dict[str, Any], required: list[str]) -> dict[str, Any]:
    return {"type": "object", "properties": props, "required": required, "additionalProperties": False}


_S: dict[str, Any] = {"type": "string"}
_TODO = _obj({"content": {"type": "string", "minLength": 1},
              "status": {"type": "string", "enum": ["pending", "in_progress", "completed"]},
              "activeForm": {"type": "string", "minLength": 1}}, ["content", "status", "activeForm"])
SCHEMAS: dict[str, dict[str, Any]] = {name: {"$schema": DRAFT, **schema} for name, schema in {
    "Read": _obj({"file_path": _S, "offset": {"type": "integer", "minimum": 0},
                  "limit": {"type": "integer", "exclusiveMinimum": 0}}, ["file_path"]),
    "Grep": _obj({"pattern": _S, "path": _S, "glob": _S,
                  "output_mode": {"type": "string", "enum": ["content", "files_with_matches", "count"]},
                  "-n": {"type": "boolean"}, "-C": {"type": "number"}, "head_limit": {"type": "number"}},
                 ["pattern"]),
    "Edit": _obj({"file_path": _S, "old_string": _S, "new_string": _S, "replace_all": {"type": "boolean"}},
                 ["file_path", "old_string", "new_string"]),
    "Write": _obj({"file_path": _S, "content": _S}, ["file_path", "content"]),
    "Bash": _obj({"command": _S, "description": _S, "timeout": {"type": "number", "maximum": 600000},
                  "run_in_background": {"type": "boolean"}}, ["command"]),
    "TodoWrite": _obj({"todos": {"type": "array", "items": _TODO}}, ["todos"]),
}.items()}

# --------------------------------------------------------------------------- payloads

_WORDS = ("value", "items", "result", "config", "parser", "record", "trace", "session", "tokens", "cache",
          "request", "schema", "index", "buffer", "offset", "limit", "payload", "handler", "node", "edge")
_UNICODE = ("café", "naïve", "Straße", "→", "—", "≥ 0", "中文注释", "日本語", "✓ done", "🚀", "Ωmega", "µs")
_PATH_SEGMENTS = ("src", "agentgraph", "sources", "claude_code", "parsers", "internal", "v2", "legacy",
                  "handlers", "tool_calls", "fixtures", "generated", "schemas", "utils")


class Text:
    """Seeded code-like text: Python lines with escapes and non-ASCII, shell, todo items."""

    def __init__(self, rng: random.Random) -> None:
        self.rng = rng

    def word(self) -> str:
        return self.rng.choice(_WORDS)

    def name(self) -> str:
        return f"{self.word()}_{self.word()}"

    def line(self) -> str:
        r, w, n = self.rng, self.word, self.name
        indent = " " * (4 * r.randint(0, 3))
        templates = (
            lambda: f"def {n()}({w()}: str, {w()}: int = {r.randint(0, 999)}) -> dict[str, Any]:",
            lambda: f'{indent}{n()} = {w()}.get("{w()}", {r.randint(0, 99)})',
            lambda: f"{indent}if {w()} is None or len({w()}) > {r.randint(1, 4096)}:",
            lambda: f'{indent}return f"{{{w()}}} \\"{w()}\\" {r.choice(_UNICODE)}"',
            lambda: f"{indent}# {w()} {r.choice(_UNICODE)} {w()} {w()}",
            lambda: f'{indent}{w()}_re = re.compile(r"^\\s*(\\w+)\\t{w()}\\\\d+$")',
            lambda: f'{indent}log.info("{w()} → %s", {n()})',
            lambda: f"\t{w()}:\t{r.randint(0, 9)}\t# tab-separated {w()}",
            lambda: f'{indent}print("\x1b[31m{w()}\x1b[0m {r.choice(_UNICODE)}")',
            lambda: "",
            lambda: f"{indent}{n()}.append({{'{w()}': {r.random():.4f}, '{w()}': [{w()}, {w()}]}})",
        )
        return r.choice(templates)()

    def code(self, chars: int) -> str:
        lines: list[str] = []
        total = 0
        while total < chars:
            lines.append(self.line())
            total += len(lines[-1]) + 1
        return "\n".join(lines)

    def path(self, chars: int) -> str:
        parts: list[str] = []
        while sum(len(p) + 1 for p in parts) < chars:
            parts.append(self.rng.choice(_PATH_SEGMENTS))
        return "/".join(parts)

    def todo(self) -> dict[str, Any]:
        verb, thing = self.rng.choice((("Fix", "Fixing"), ("Add", "Adding"), ("Update", "Updating"),
                                       ("Run", "Running"))), f"{self.name()} in {self.word()}.py"
        extra = f" ({self.rng.choice(_UNICODE)})" if self.rng.random() < 0.3 else ""
        return {"content": f"{verb[0]} {thing}{extra}",
                "status": self.rng.choice(("pending", "in_progress", "completed")),
                "activeForm": f"{verb[1]} {thing}"}


Build = Callable[[int, bool], dict[str, Any]]
"""(size parameter, valid) -> payload; the size grows with the parameter."""


@dataclass(frozen=True, slots=True)
class Tool:
    name: str
    build: Build
    sizes: tuple[int, ...]
    defect: str


def tools(seed: int) -> list[Tool]:
    """The tools' payload builders, each over its own seeded text pool (70K+ characters)."""
    t = Text(random.Random(seed))
    path_pool = t.path(400)
    pattern_pool = "|".join(rf"def\s+{t.name()}\(|\"{t.word()}\"\s*:\s*[\w\.]+" for _ in range(20))
    code_pool, old_pool, new_pool, script = t.code(70_000), t.code(200), t.code(70_000), t.code(70_000)
    script = f"cd /work/src && python3 - <<'EOF'\n{script}\nEOF"
    todos = [{"content": "Run tests", "status": "pending", "activeForm": "Running tests"}]
    todos += [t.todo() for _ in range(800)]

    def read(n: int, valid: bool) -> dict[str, Any]:
        return {"file_path": f"/work/{path_pool[:n]}/mod.py", "offset": 120, "limit": 200 if valid else "200"}

    def grep(n: int, valid: bool) -> dict[str, Any]:
        return {"pattern": pattern_pool[:max(n, 1)], "path": "/work/src", "glob": "*.py", "-n": True, "-C": 2,
                "head_limit": 50, "output_mode": "content" if valid else "lines"}

    def edit(n: int, valid: bool) -> dict[str, Any]:
        old = old_pool[:min(n, 120)]  # the invalid twin drops it and has that much more new_string
        return {"file_path": "/work/src/m.py", **({"old_string": old} if valid else {}),
                "new_string": new_pool[:n if valid else n + len(old)], "replace_all": False}

    def write(n: int, valid: bool) -> dict[str, Any]:
        return {"file_path": "/work/src/gen.py" if valid else 42, "content": code_pool[:n]}

    def bash(n: int, valid: bool) -> dict[str, Any]:
        return {"command": script[:n], "description": "Run script", "timeout": 120000 if valid else 900000,
                "run_in_background": False}

    def todo_write(n: int, valid: bool) -> dict[str, Any]:
        items = [dict(x) for x in todos[:max(n, 1)]]
        if not valid:
            items[-1]["status"] = "done"
        return {"todos": items}

    small, every = (100, 300), SIZES + SCAN
    return [Tool("Read", read, small, "limit a string (last member)"),
            Tool("Grep", grep, small, "output_mode outside enum (last member)"),
            Tool("Edit", edit, every, "old_string missing (seen at the closing brace)"),
            Tool("Write", write, every, "file_path a number (first member)"),
            Tool("Bash", bash, every, "timeout above maximum (after the command)"),
            Tool("TodoWrite", todo_write, every, "last todo's status outside enum")]


def fit(build: Build, target: int) -> int:
    """The largest size parameter whose valid payload is at most ``target`` bytes (0 if none is)."""
    def size(n: int) -> int:
        return len(orjson.dumps(build(n, True)))

    lo, hi = 0, 70_000
    while lo < hi:  # largest n with size(n) <= target (or 0)
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if size(mid) <= target else (lo, mid - 1)
    return lo


@dataclass(frozen=True, slots=True)
class Payload:
    tool: str
    target: int
    valid: bytes
    invalid: bytes


# --------------------------------------------------------------------------- contenders

Fn = Callable[[bytes], Any]


@dataclass(frozen=True, slots=True)
class Contender:
    name: str
    prepare: Callable[[dict[str, Any], SchemaValidator], tuple[Fn, Callable[[bytes], bool]]]
    """(schema, agentgraph validator) -> (the timed call, its verdict as a bool)."""


def contenders() -> tuple[list[Contender], list[str]]:
    """The contenders that import, and a line per skipped one."""
    loads = orjson.loads
    out = [Contender("fastpath-regex", lambda s, v: (v.fast_accepts, v.fast_accepts)),
           Contender("agentgraph validate()", lambda s, v: (v.validate, lambda t: v.validate(t).valid))]
    skipped: list[str] = []
    try:
        from jsonschema import Draft202012Validator

        def plain(schema: dict[str, Any], v: SchemaValidator) -> tuple[Fn, Callable[[bytes], bool]]:
            is_valid = Draft202012Validator(schema).is_valid

            def call(text: bytes) -> bool:
                return is_valid(loads(text))
            return call, call
        out.append(Contender(BASELINE, plain))
    except ImportError as exc:
        skipped.append(f"{BASELINE}: {exc}")
    try:
        import fastjsonschema

        def fast(schema: dict[str, Any], v: SchemaValidator) -> tuple[Fn, Callable[[bytes], bool]]:
            check, error = fastjsonschema.compile(schema), fastjsonschema.JsonSchemaValueException

            def call(text: bytes) -> bool:
                try:
                    check(loads(text))
                except error:
                    return False
                return True
            return call, call
        out.append(Contender("orjson+fastjsonschema", fast))
    except ImportError as exc:
        skipped.append(f"orjson+fastjsonschema: {exc}")
    try:
        import jsonschema_rs

        def rs(schema: dict[str, Any], v: SchemaValidator) -> tuple[Fn, Callable[[bytes], bool]]:
            is_valid = jsonschema_rs.validator_for(schema).is_valid

            def call(text: bytes) -> bool:
                return bool(is_valid(loads(text)))
            return call, call
        out.append(Contender("orjson+jsonschema-rs", rs))
    except ImportError as exc:
        skipped.append(f"orjson+jsonschema-rs: {exc}")
    return out, skipped


# --------------------------------------------------------------------------- timing


def _batch(fn: Fn, text: bytes, n: int) -> int:
    loop = itertools.repeat(None, n)
    enabled = gc.isenabled()
    gc.disable()
    try:
        start = time.perf_counter_ns()
        for _ in loop:
            fn(text)
        return time.perf_counter_ns() - start
    finally:
        if enabled:
            gc.enable()


def per_call_us(fn: Fn, text: bytes, batch_s: float, repeats: int) -> float:
    """Median over ``repeats`` batches of ~``batch_s`` seconds of the µs one call takes."""
    fn(text)
    n, ns = 1, _batch(fn, text, 1)
    while ns < batch_s * 1e9 / 20:
        n *= 8
        ns = _batch(fn, text, n)
    n = max(1, round(n * batch_s * 1e9 / ns))
    return statistics.median(_batch(fn, text, n) / n for _ in range(repeats)) / 1000


@dataclass
class Cell:
    contender: str
    tool: str
    target: int
    valid: bool
    size: int
    us: float | None  # None: wrong verdict, not timed


@dataclass
class Run:
    cells: list[Cell] = field(default_factory=list)
    mismatches: list[str] = field(default_factory=list)


def bench(payloads: list[Payload], cands: list[Contender], validators: dict[str, SchemaValidator],
          batch_s: float, repeats: int) -> Run:
    run = Run()
    prepared = {(c.name, tool): c.prepare(SCHEMAS[tool], v) for c in cands for tool, v in validators.items()}
    for p in payloads:
        print(f"  timing {p.tool} ~{p.target} B", file=sys.stderr, flush=True)
        for c in cands:
            fn, verdict = prepared[c.name, p.tool]
            for valid, text in ((True, p.valid), (False, p.invalid)):
                got = verdict(text)
                us = None
                if got is not valid:
                    run.mismatches.append(f"{c.name} on {p.tool} {len(text)} B {'valid' if valid else 'invalid'}"
                                          f" payload: verdict {got}, expected {valid}")
                else:
                    us = per_call_us(fn, text, batch_s, repeats)
                run.cells.append(Cell(c.name, p.tool, p.target, valid, len(text), us))
    return run


def crossover(v: SchemaValidator, build: Build, scan: tuple[int, ...], batch_s: float,
              repeats: int) -> dict[str, Any]:
    """``fast_accepts`` vs orjson+jsonschema (and vs ``v.exact``) on valid Write payloads of each size."""
    from jsonschema import Draft202012Validator

    is_valid, loads = Draft202012Validator(SCHEMAS["Write"]).is_valid, orjson.loads

    def plain(text: bytes) -> bool:
        return is_valid(loads(text))

    rows: list[dict[str, Any]] = []
    for target in scan:
        print(f"  crossover scan ~{target} B", file=sys.stderr, flush=True)
        text = orjson.dumps(build(fit(build, target), True))
        if not (v.fast_accepts(text) and plain(text) and v.exact(text).valid):
            raise SystemExit(f"crossover payload of {len(text)} B not valid for every contender")
        rows.append({"bytes": len(text), "fast_accepts_us": per_call_us(v.fast_accepts, text, batch_s, repeats),
                     "orjson_jsonschema_us": per_call_us(plain, text, batch_s, repeats),
                     "agentgraph_exact_us": per_call_us(v.exact, text, batch_s, repeats)})
    return {"tool": "Write", "rows": rows, "vs_orjson_jsonschema": _crossing(rows, "orjson_jsonschema_us"),
            "vs_agentgraph_exact": _crossing(rows, "agentgraph_exact_us"), "fast_max_bytes": FAST_MAX_BYTES}


def _crossing(rows: list[dict[str, Any]], other: str) -> dict[str, Any] | None:
    """First scanned size where the fast path is slower, with the linearly interpolated break-even size."""
    for prev, row in itertools.pairwise(rows):
        d0, d1 = prev["fast_accepts_us"] - prev[other], row["fast_accepts_us"] - row[other]
        if d0 <= 0 < d1:
            at = prev["bytes"] + (row["bytes"] - prev["bytes"]) * (-d0) / (d1 - d0)
            return {"between": [prev["bytes"], row["bytes"]], "interpolated_bytes": round(at)}
    if rows and rows[0]["fast_accepts_us"] > rows[0][other]:
        return {"between": [0, rows[0]["bytes"]], "interpolated_bytes": None}
    return None


# --------------------------------------------------------------------------- report


def _geomean(xs: list[float]) -> float:
    return math.exp(sum(math.log(x) for x in xs) / len(xs))


def aggregate(run: Run, names: list[str], sizes: tuple[int, ...]) -> list[dict[str, Any]]:
    """Per size and contender: max µs over tools and the geomean over tools of the baseline ratio."""
    us = {(c.contender, c.tool, c.target, c.valid): c.us for c in run.cells}
    out = []
    for target in sizes:
        for name in names:
            row: dict[str, Any] = {"size": target, "contender": name}
            for valid, key in ((True, "valid"), (False, "invalid")):
                tools_here = sorted({c.tool for c in run.cells if c.target == target})
                mine = {t: us.get((name, t, target, valid)) for t in tools_here}
                base = {t: us.get((BASELINE, t, target, valid)) for t in tools_here}
                timed = [x for x in mine.values() if x is not None]
                ratios = [b / m for t, m in mine.items() if m and (b := base[t])]
                complete = len(timed) == len(tools_here)
                row[f"max_us_{key}"] = max(timed) if timed and complete else None
                row[f"ratio_{key}"] = _geomean(ratios) if ratios and len(ratios) == len(tools_here) else None
            out.append(row)
    return out


def _fmt(x: float | None, spec: str, suffix: str = "") -> str:
    return "-" if x is None else f"{x:{spec}}{suffix}"


def _size_label(n: int) -> str:
    return f"{n} B" if n < 1024 else f"{n // 1024} KB"


def machine() -> dict[str, Any]:
    versions = {}
    for dist in ("orjson", "jsonschema", "pyre2", "fastjsonschema", "jsonschema_rs"):
        try:
            versions[dist] = importlib.metadata.version(dist)
        except importlib.metadata.PackageNotFoundError:
            versions[dist] = None
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "python": python,
            "versions": versions, "loadavg_start": list(os.getloadavg())}


def report(info: dict[str, Any], run: Run, rows: list[dict[str, Any]], names: list[str], payloads: list[Payload],
           cross: dict[str, Any] | None, skipped: list[str], detail: bool, validators: dict[str, SchemaValidator],
           tool_list: list[Tool]) -> None:
    v = info["versions"]
    print(f"machine: {info['processor']}, {info['cpus']} CPUs, {info['platform']}, {info['python']}")
    print("versions: " + ", ".join(f"{k} {v[k] or 'not installed'}" for k in v))
    print(f"load average at start / end: {info['loadavg_start'][0]:.2f} / {info['loadavg_end'][0]:.2f}")
    print(f"timing: median of {info['repeats']} batches of ~{info['batch_s']} s per cell; µs per call; "
          f"FAST_MAX_BYTES = {FAST_MAX_BYTES}")
    for line in skipped:
        print(f"skipped {line}")
    print("fast path regex chars: " + ", ".join(
        f"{t} {len(val.regex) if val.regex else 'none'}" for t, val in validators.items()))
    print("invalid variants: " + "; ".join(f"{t.name}: {t.defect}" for t in tool_list))
    for m in run.mismatches:
        print(f"MISMATCH (not timed): {m}")
    width = max(len(n) for n in names) + 2
    head = f"{'contender':<{width}} {'valid µs':>10} {'invalid µs':>10} {'x valid':>9} {'x invalid':>9}"
    for target in info["sizes"]:
        here = [p for p in payloads if p.target == target]
        sizes = ", ".join(f"{p.tool} {len(p.valid)}/{len(p.invalid)}" for p in here)
        print(f"\n== ~{_size_label(target)}: {sizes} B (valid/invalid) ==")
        print(head)
        for r in (r for r in rows if r["size"] == target):
            print(f"{r['contender']:<{width}} {_fmt(r['max_us_valid'], '10.2f')} {_fmt(r['max_us_invalid'], '10.2f')} "
                  f"{_fmt(r['ratio_valid'], '8.1f', 'x'):>9} {_fmt(r['ratio_invalid'], '8.1f', 'x'):>9}")
        if detail:
            us = {(c.contender, c.tool, c.valid): c.us for c in run.cells if c.target == target}
            for p in here:
                print(f"  {p.tool} ({len(p.valid)} B valid, {len(p.invalid)} B invalid)")
                for name in names:
                    mv, mi = us.get((name, p.tool, True)), us.get((name, p.tool, False))
                    bv, bi = us.get((BASELINE, p.tool, True)), us.get((BASELINE, p.tool, False))
                    rv = bv / mv if bv and mv else None
                    ri = bi / mi if bi and mi else None
                    print(f"  {name:<{width - 2}} {_fmt(mv, '10.2f')} {_fmt(mi, '10.2f')} "
                          f"{_fmt(rv, '8.1f', 'x'):>9} {_fmt(ri, '8.1f', 'x'):>9}")
    print("\n(µs: the largest over the tools of the bucket; x: geometric mean over those tools of "
          f"{BASELINE} µs / this µs)")
    if cross:
        print("\ncrossover scan, valid Write payloads:")
        print(f"{'bytes':>8} {'fast_accepts µs':>16} {BASELINE + ' µs':>22} {'agentgraph exact() µs':>22}")
        for r in cross["rows"]:
            print(f"{r['bytes']:>8} {r['fast_accepts_us']:>16.2f} {r['orjson_jsonschema_us']:>22.2f} "
                  f"{r['agentgraph_exact_us']:>22.2f}")
        for key, label in (("vs_orjson_jsonschema", BASELINE), ("vs_agentgraph_exact", "agentgraph exact()")):
            c = cross[key]
            if c is None:
                last = cross["rows"][-1]["bytes"]
                print(f"crossover: fast_accepts stays faster than {label} up to {last} B")
            else:
                lo, hi = c["between"]
                at = c["interpolated_bytes"]
                print(f"crossover: fast_accepts becomes slower than {label} between {lo} and {hi} B"
                      + (f" (break-even ~{at} B interpolated)" if at else "")
                      + f"; FAST_MAX_BYTES = {FAST_MAX_BYTES}")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="4 sizes, 3 batches of 0.02 s, 6-point crossover scan")
    ap.add_argument("--detail", action="store_true", help="also print every tool's figures")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead of tables")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--batch", type=float, help="seconds per timed batch (default 0.06, --quick 0.02)")
    ap.add_argument("--repeats", type=int, help="batches per cell, the median is kept (default 5, --quick 3)")
    ap.add_argument("--no-crossover", action="store_true", help="skip the crossover scan")
    args = ap.parse_args(argv)
    batch_s = args.batch or (0.02 if args.quick else 0.06)
    repeats = args.repeats or (3 if args.quick else 5)
    sizes, scan = (QUICK_SIZES, QUICK_SCAN) if args.quick else (SIZES, SCAN)
    info = machine() | {"batch_s": batch_s, "repeats": repeats, "sizes": list(sizes), "seed": args.seed}
    t0 = time.perf_counter()

    tool_list = tools(args.seed)
    validators = {t.name: compile_schema(SCHEMAS[t.name]) for t in tool_list}
    payloads = []
    for t in tool_list:
        for target in sizes:
            if target in t.sizes:
                n = fit(t.build, target)
                payloads.append(Payload(t.name, target, orjson.dumps(t.build(n, True)),
                                        orjson.dumps(t.build(n, False))))
    cands, skipped = contenders()
    names = [c.name for c in cands]
    if BASELINE not in names:
        print(f"the baseline {BASELINE} is not importable: {skipped}", file=sys.stderr)
        return 1
    run = bench(payloads, cands, validators, batch_s, repeats)
    cross = None
    if not args.no_crossover:
        write = next(t for t in tool_list if t.name == "Write")
        cross = crossover(validators["Write"], write.build, scan, batch_s, repeats)
    rows = aggregate(run, names, sizes)
    info["loadavg_end"] = list(os.getloadavg())
    info["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        doc = {"machine": info, "skipped": skipped, "mismatches": run.mismatches, "buckets": rows,
               "cells": [vars(c) for c in run.cells], "crossover": cross,
               "payload_bytes": [{"tool": p.tool, "target": p.target, "valid": len(p.valid),
                                  "invalid": len(p.invalid)} for p in payloads]}
        print(json.dumps(doc, indent=1))
    else:
        report(info, run, rows, names, payloads, cross, skipped, args.detail, validators, tool_list)
        print(f"\n(total {info['seconds']} s)")
    return 1 if run.mismatches else 0


if __name__ == "__main__":
    sys.exit(main())
