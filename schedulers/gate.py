"""``agentgraph gate``: fail a CI job when a replay summary regresses against a baseline (issue #6).

The gate reads two summaries (``replay --json``, ``compare --json`` or the ``summary.json`` of
``replay -o DIR``), matches their strategies by name and checks every gated metric against a
threshold: ``max_increase`` (latencies, re-prefill, money: larger is worse) or ``max_decrease``
(hit rate: smaller is worse). A limit ending in ``%`` is relative to the baseline value, any other
is absolute. It does not pass what it cannot check: a gated metric absent from a summary, or a value
no replay writes (a negative latency, a hit rate of 1.5), is a :class:`UsageError` (``allow_missing``
skips the former). Semantics, defaults and a GitHub Actions job: ``docs/ci.md``.

>>> base = {"strategy": "s", "session_e2e_p99_s": 10.0, "hit_rate": 0.80}
>>> report = gate(base, {"strategy": "s", "session_e2e_p99_s": 10.5, "hit_rate": 0.78}, defaults=False,
...               max_increase={"session_e2e_p99_s": "5%"}, max_decrease={"hit_rate": 0.01})
>>> [(c.metric, c.verdict.value) for c in report.checks], report.ok
([('hit_rate', 'REGRESSION'), ('session_e2e_p99_s', 'ok')], False)
"""

from __future__ import annotations

import argparse
import math
import sys
import xml.etree.ElementTree as ET
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from enum import StrEnum
from pathlib import Path
from typing import Any

import orjson
import polars as pl

from agentgraph import cli as base
from agentgraph.errors import TraceFormatError, UsageError
from agentgraph.frames import Schema, frame
from agentgraph.outputs import write_output
from schedulers.metrics import SUMMARY_KEYS

__all__ = [
    "DEFAULT_MAX_DECREASE",
    "DEFAULT_MAX_INCREASE",
    "GATE_SCHEMA",
    "METRICS",
    "NULLABLE",
    "Bound",
    "Check",
    "GateReport",
    "Limit",
    "Verdict",
    "add_gate_command",
    "as_summaries",
    "gate",
    "load_summaries",
    "parse_summaries",
    "thresholds",
]

IDENTITY_KEYS = ("seed", "cluster", "nodes", "sessions", "hops")
"""Summary keys that say which workload ran: never gated, a difference is a warning."""
METRICS = tuple(k for k in SUMMARY_KEYS if k not in ("strategy", *IDENTITY_KEYS))
"""The summary keys a threshold may name (``wall_s`` included, but never gated by default)."""
NULLABLE = tuple(f"{name}_p{q}_s" for name in ("ttft", "hop_latency", "session_e2e") for q in (50, 90, 99))
"""The metrics a replay writes as null (a percentile over no hop or session): gated, they are n/a.
A null anywhere else is refused, as is an absent gated metric (unless ``allow_missing``)."""

DEFAULT_MAX_INCREASE = {
    "reprefill_tokens": "5%",
    "ttft_p99_s": "10%",
    "session_e2e_p50_s": "5%",
    "session_e2e_p99_s": "5%",
    "cost_per_session_usd": "5%",
}
"""Default ``--max-increase`` limits: the re-prefill, tail latency and money a change may add."""
DEFAULT_MAX_DECREASE = {"hit_rate": "0.01"}
"""Default ``--max-decrease`` limits: at most one point of prefix-cache hit rate lost."""

TOLERANCE = 1e-9
"""Relative tolerance of "at the limit" and "unchanged", so float rounding (0.7 + 0.1) decides nothing."""

GATE_SCHEMA: Schema = {
    "strategy": pl.String, "metric": pl.String, "bound": pl.String, "limit": pl.String, "baseline": pl.Float64,
    "current": pl.Float64, "change": pl.Float64, "change_pct": pl.Float64, "allowed": pl.Float64,
    "verdict": pl.String,
}
"""One row per check: :meth:`GateReport.to_frame`."""


class Bound(StrEnum):
    """Which direction of a metric is a regression."""

    MAX_INCREASE = "max_increase"
    MAX_DECREASE = "max_decrease"


class Verdict(StrEnum):
    """The outcome of one check."""

    OK = "ok"
    REGRESSION = "REGRESSION"
    IMPROVED = "improved"
    NA = "n/a"
    """Null on a side (a percentile over nothing): not checked, not a failure."""
    SKIPPED = "skipped"
    """Absent from a summary and skipped because of ``allow_missing`` (``--allow-missing``)."""


@dataclass(frozen=True, slots=True)
class Limit:
    """How far a metric may move in its bad direction: ``value`` % of the baseline when ``relative``,
    else ``value`` in the metric's unit.

    >>> Limit.parse("5%", "--max-increase"), Limit.parse("0.01", "--max-decrease").slack(0.8)
    (Limit(value=5.0, relative=True), 0.01)
    >>> Limit.parse("5%", "--max-increase").slack(20.0), str(Limit(2.5, True)), str(Limit(0.01, False))
    (1.0, '2.5%', '0.01')
    """

    value: float
    relative: bool

    @classmethod
    def parse(cls, text: str, where: str) -> Limit:
        """``"5%"`` (relative) or ``"0.01"`` (absolute); ``where`` names the option in the error."""
        number = text.strip().removesuffix("%").strip()
        try:
            value = float(number)
        except ValueError:
            value = math.nan
        if not (math.isfinite(value) and value >= 0) or not number:
            raise UsageError(f"{where}: malformed limit {text!r}; expected a number >= 0 (absolute, e.g. 0.01), "
                             "a percentage (relative to the baseline, e.g. 5%) or off")
        return cls(value, text.strip().endswith("%"))

    def slack(self, baseline: float) -> float:
        """The change the limit allows from ``baseline`` (a relative limit on a 0 baseline allows none)."""
        return abs(baseline) * self.value / 100 if self.relative else self.value

    def __str__(self) -> str:
        return _short(self.value) + ("%" if self.relative else "")


@dataclass(frozen=True, slots=True)
class Check:
    """One gated metric of one strategy. ``allowed`` is the worst current value that still passes."""

    strategy: str
    metric: str
    bound: Bound
    limit: Limit
    baseline: float | None
    current: float | None
    allowed: float | None
    verdict: Verdict

    @property
    def change(self) -> float | None:
        """``current − baseline`` (None when either is null)."""
        return None if self.baseline is None or self.current is None else self.current - self.baseline

    @property
    def change_pct(self) -> float | None:
        """The change in % of the baseline (None when either is null, or the baseline is 0 and the current not)."""
        change = self.change
        if change is None or self.baseline is None:
            return None
        if self.baseline == 0:
            return 0.0 if change == 0 else None
        return 100 * change / abs(self.baseline)

    @property
    def limit_text(self) -> str:
        """The limit with its direction: ``+5%`` (may rise 5 %), ``-0.01`` (may fall 0.01)."""
        return ("+" if self.bound is Bound.MAX_INCREASE else "-") + str(self.limit)

    def to_dict(self) -> dict[str, Any]:
        return {"strategy": self.strategy, "metric": self.metric, "bound": self.bound.value,
                "limit": str(self.limit), "baseline": self.baseline, "current": self.current,
                "change": self.change, "change_pct": self.change_pct, "allowed": self.allowed,
                "verdict": self.verdict.value}

    def message(self) -> str:
        """One line for a failure: what moved, by how much, and what was allowed."""
        return (f"{self.strategy}: {self.metric} {_num(self.baseline)} -> {_num(self.current)} "
                f"({_signed(self.change)}, {_pct(self.change_pct)}); limit {self.limit_text}, "
                f"allowed {'<=' if self.bound is Bound.MAX_INCREASE else '>='} {_num(self.allowed)}")


COLUMNS = ("strategy", "metric", "baseline", "current", "change", "change%", "limit", "verdict")
"""Columns of the text and Markdown tables."""


@dataclass(frozen=True, slots=True)
class GateReport:
    """The gate's result: every check in order (baseline strategy order, then :data:`METRICS` order),
    the baseline strategies the current file lacks (failures), the new ones (not gated), workload
    warnings, and the summaries whose gated metrics were absent and skipped (``allow_missing``; the CLI
    prints these on stderr)."""

    checks: tuple[Check, ...]
    missing: tuple[str, ...] = ()
    new: tuple[str, ...] = ()
    warnings: tuple[str, ...] = ()
    absent: tuple[str, ...] = ()

    @property
    def regressions(self) -> tuple[Check, ...]:
        return tuple(c for c in self.checks if c.verdict is Verdict.REGRESSION)

    @property
    def skipped(self) -> tuple[Check, ...]:
        """The checks of absent metrics (``allow_missing``)."""
        return tuple(c for c in self.checks if c.verdict is Verdict.SKIPPED)

    @property
    def ok(self) -> bool:
        """No regression and no missing strategy: what exit code 0 means."""
        return not self.regressions and not self.missing

    def summary_line(self) -> str:
        """``gate: ok, M checks[, S skipped]`` or
        ``gate: N regression(s) in M checks[, S skipped][, K baseline strategy(ies) missing]``."""
        skipped = f", {len(self.skipped)} skipped" if self.skipped else ""
        if self.ok:
            return f"gate: ok, {len(self.checks)} checks{skipped}"
        missing = f", {len(self.missing)} baseline strategy(ies) missing" if self.missing else ""
        return f"gate: {len(self.regressions)} regression(s) in {len(self.checks)} checks{skipped}{missing}"

    def notes(self) -> list[str]:
        """Missing and new strategies and workload warnings, one line each."""
        return ([f"missing: {s} is in the baseline but not in the current summary" for s in self.missing]
                + [f"new: {s} is not in the baseline (not gated)" for s in self.new]
                + [f"warning: {w}" for w in self.warnings])

    def rows(self) -> list[tuple[str, ...]]:
        """The table's cells, one tuple per check (in :data:`COLUMNS` order)."""
        return [(c.strategy, c.metric, _num(c.baseline), _num(c.current), _signed(c.change), _pct(c.change_pct),
                 c.limit_text, c.verdict.value) for c in self.checks]

    def text(self) -> str:
        """The plain-text diff table, the notes and the summary line."""
        rows = [COLUMNS, *self.rows()]
        widths = [max(len(r[i]) for r in rows) for i in range(len(COLUMNS))]
        lines = ["  ".join(c.ljust(w) if i in (0, 1, 7) else c.rjust(w)
                           for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip() for r in rows]
        return "\n".join([*lines, *self.notes(), self.summary_line()]) + "\n"

    def markdown(self) -> str:
        """GitHub-flavoured Markdown (for ``$GITHUB_STEP_SUMMARY``): a heading, the table, the notes."""
        icon = "✅" if self.ok else "❌"
        out = [f"### {icon} agentgraph {self.summary_line()}", ""]
        if self.checks:
            out += ["| " + " | ".join(COLUMNS) + " |", "|---|---|---:|---:|---:|---:|---:|---|"]
            out += ["| " + " | ".join(_md_cells(r)) + " |" for r in self.rows()]
        notes = self.notes()
        return "\n".join(out + ([""] if notes and self.checks else []) + [f"- {n}" for n in notes]) + "\n"

    def junit_xml(self) -> str:
        """JUnit XML: one ``<testsuite>`` per strategy, one ``<testcase>`` per check, ``<failure>`` for a
        regression, ``<skipped>`` for n/a and skipped; a missing strategy is a suite with one failing case."""
        skipped = sum(c.verdict in _NOT_CHECKED for c in self.checks)
        root = ET.Element("testsuites", name="agentgraph gate", tests=str(len(self.checks) + len(self.missing)),
                          failures=str(len(self.regressions) + len(self.missing)), skipped=str(skipped))
        for strategy, checks in _by_strategy(self.checks).items():
            _suite(root, strategy, [(f"{c.metric} ({c.limit_text})", c) for c in checks])
        for strategy in self.missing:
            _suite(root, strategy, [("present", f"{strategy} is in the baseline but not in the current summary")])
        ET.indent(root)
        return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"

    def to_dict(self) -> dict[str, Any]:
        """The ``--json`` object."""
        return {"ok": self.ok, "regressions": len(self.regressions), "missing_strategies": list(self.missing),
                "new_strategies": list(self.new), "warnings": list(self.warnings),
                "checks": [c.to_dict() for c in self.checks]}

    def _repr_markdown_(self) -> str:  # Jupyter shows the report as its Markdown table
        return self.markdown()

    def to_frame(self) -> pl.DataFrame:
        """One row per check, columns :data:`GATE_SCHEMA`."""
        return frame([tuple(c.to_dict().values()) for c in self.checks], GATE_SCHEMA)


# --------------------------------------------------------------------------- the gate


def gate(baseline: Mapping[str, Any], current: Mapping[str, Any], *,
         max_increase: Mapping[str, str | float | Limit | None] | None = None,
         max_decrease: Mapping[str, str | float | Limit | None] | None = None,
         defaults: bool = True, strategies: Sequence[str] | None = None, allow_missing: bool = False,
         sources: tuple[str, str] = ("baseline", "current")) -> GateReport:
    """Check ``current`` against ``baseline``.

    Parameters
    ----------
    baseline, current
        A summary (``replay --json``, ``ReplayResult.summary``), a ``compare --json`` object, a
        ``summary.json`` object, or ``{strategy: summary}`` as :func:`load_summaries` returns.
    max_increase, max_decrease
        ``{metric: limit}``: ``"5%"`` (relative), ``0.01`` or ``"0.01"`` (absolute), a :class:`Limit`,
        or ``None`` / ``"off"`` (no check). A metric named here loses all its defaults.
    defaults
        Start from :data:`DEFAULT_MAX_INCREASE` and :data:`DEFAULT_MAX_DECREASE`.
    strategies
        Gate only these baseline strategies (default: all of them).
    allow_missing
        Skip (verdict ``skipped``) a gated metric absent from a summary instead of raising.
    sources
        How errors name the two inputs (the CLI passes the file names).

    Strategies are matched by name; when each side holds exactly one summary they are compared
    whatever their names (an A/B of two strategies), labelled ``base->current``.

    The gate does not pass what it cannot check. Raises :class:`UsageError` naming the input, the
    strategy and the metric when a compared summary holds a value no replay writes (a negative or
    non-finite number, a hit rate outside [0, 1], a null that is not one of :data:`NULLABLE`), or,
    unless ``allow_missing``, lacks a gated metric. A null percentile is n/a, as a replay over nothing
    writes it.

    Examples
    --------
    >>> r = gate({"strategy": "a", "hit_rate": 0.5}, {"strategy": "b", "hit_rate": 0.6},
    ...          max_decrease={"hit_rate": "0%"}, defaults=False)
    >>> r.checks[0].strategy, r.checks[0].verdict.value, r.summary_line()
    ('a->b', 'improved', 'gate: ok, 1 checks')
    >>> gate({"strategy": "a"}, {"strategy": "a", "hit_rate": 0.6}, max_decrease={"hit_rate": "0%"}, defaults=False)
    Traceback (most recent call last):
    agentgraph.errors.UsageError: baseline: strategy 'a': gated metric(s) missing: hit_rate; --allow-missing skips them
    """
    limits = thresholds(max_increase, max_decrease, defaults=defaults)
    if not limits:
        raise UsageError("no thresholds: with --no-defaults give --max-increase or --max-decrease")
    base, cur = as_summaries(baseline, sources[0]), as_summaries(current, sources[1])
    pairs, missing, new = _pairs(base, cur, strategies)
    sides = [side for _, b, c in pairs for side in ((sources[0], b, base[b]), (sources[1], c, cur[c]))]
    for source, name, summary in sides:
        _check_values(summary, name, source)
    absent = _absent(sides, list(dict.fromkeys(metric for metric, _ in limits)))
    if absent and not allow_missing:
        more = f" ({len(absent) - 1} more summary(ies) lack gated metrics too)" if len(absent) > 1 else ""
        raise UsageError(f"{absent[0]}{more}; --allow-missing skips them")
    checks = tuple(_check(label, metric, bound, limit, base[b], cur[c])
                   for label, b, c in pairs for (metric, bound), limit in limits.items())
    warnings = tuple(w for label, b, c in pairs for w in _warnings(label, base[b], cur[c]))
    return GateReport(checks, missing, new, warnings, tuple(f"{line}; skipped (--allow-missing)" for line in absent))


def thresholds(max_increase: Mapping[str, str | float | Limit | None] | None = None,
               max_decrease: Mapping[str, str | float | Limit | None] | None = None, *,
               defaults: bool = True) -> dict[tuple[str, Bound], Limit]:
    """The limits in force, ``{(metric, bound): limit}`` in :data:`METRICS` order.

    >>> limits = thresholds({"ttft_p99_s": "off", "wall_s": 2}, {"hit_rate": "2%"})
    >>> [f"{m} {b} {v}" for (m, b), v in limits.items()][:2], len(limits)
    (['reprefill_tokens max_increase 5%', 'hit_rate max_decrease 2%'], 6)
    """
    given = {Bound.MAX_INCREASE: dict(max_increase or {}), Bound.MAX_DECREASE: dict(max_decrease or {})}
    named = {m for limits in given.values() for m in limits}
    chosen: dict[tuple[str, Bound], Limit] = {}
    if defaults:
        for bound, texts in ((Bound.MAX_INCREASE, DEFAULT_MAX_INCREASE), (Bound.MAX_DECREASE, DEFAULT_MAX_DECREASE)):
            chosen.update({(m, bound): Limit.parse(v, bound) for m, v in texts.items() if m not in named})
    for bound, limits in given.items():
        for metric, value in limits.items():
            limit = _limit(metric, value, f"--{bound.replace('_', '-')}")
            if limit is not None:
                chosen[(metric, bound)] = limit
    order = list(Bound)
    return dict(sorted(chosen.items(), key=lambda kv: (METRICS.index(kv[0][0]), order.index(kv[0][1]))))


def _limit(metric: str, value: str | float | Limit | None, option: str) -> Limit | None:
    if metric not in METRICS:
        raise UsageError(f"{option}: unknown metric {metric!r}; one of: {', '.join(METRICS)}")
    if value is None or isinstance(value, Limit):
        return value
    text = str(value)
    return None if text.strip() == "off" else Limit.parse(text, f"{option} {metric}={text}")


def _pairs(base: dict[str, dict[str, Any]], cur: dict[str, dict[str, Any]], strategies: Sequence[str] | None,
           ) -> tuple[list[tuple[str, str, str]], tuple[str, ...], tuple[str, ...]]:
    """(label, baseline name, current name) per gated strategy, the missing and the new names."""
    for name in strategies or ():
        if name not in base:
            raise UsageError(f"--strategies: {name!r} is not in the baseline (it has: {', '.join(base)})")
    if len(base) == 1 and len(cur) == 1 and not strategies:
        b, c = *base, *cur
        return [(b if b == c else f"{b}->{c}", b, c)], (), ()
    names = [n for n in base if not strategies or n in strategies]
    pairs = [(n, n, n) for n in names if n in cur]
    return pairs, tuple(n for n in names if n not in cur), tuple(n for n in cur if n not in base)


def _check_values(summary: Mapping[str, Any], name: str, source: str) -> None:
    """Refuse what no replay writes: a negative or non-finite number (a latency, token count, cost,
    load or busy fraction), a hit rate outside [0, 1], a null that is not a percentile."""
    for metric in (m for m in METRICS if m in summary):
        value, top = summary[metric], 1.0 if metric == "hit_rate" else math.inf
        if value is None and metric in NULLABLE:
            continue
        if value is None or not (_finite(value) and 0 <= value <= top):
            expected = "a number in [0, 1]" if metric == "hit_rate" else "a finite number >= 0"
            raise UsageError(f"{source}: strategy {name!r}: {metric} is {'null' if value is None else repr(value)}, "
                             f"expected {expected}")


def _finite(value: float) -> bool:
    try:
        return math.isfinite(value)
    except OverflowError:  # an int beyond any float (a Python caller's 10**400)
        return False


def _absent(sides: Iterable[tuple[str, str, Mapping[str, Any]]], metrics: Sequence[str]) -> list[str]:
    """One line per summary that lacks gated metrics: the input, the strategy and the metrics."""
    lines = []
    for source, name, summary in sides:
        lacking = [m for m in metrics if m not in summary]
        if lacking:
            lines.append(f"{source}: strategy {name!r}: gated metric(s) missing: {', '.join(lacking)}")
    return lines


def _check(label: str, metric: str, bound: Bound, limit: Limit, base: Mapping[str, Any],
           cur: Mapping[str, Any]) -> Check:
    b, c = base.get(metric), cur.get(metric)
    if metric not in base or metric not in cur:  # only reached with allow_missing
        return Check(label, metric, bound, limit, b, c, None, Verdict.SKIPPED)
    if b is None or c is None:
        return Check(label, metric, bound, limit, b, c, None, Verdict.NA)
    sign = 1 if bound is Bound.MAX_INCREASE else -1
    allowed = b + sign * limit.slack(b)
    if sign * (c - allowed) > 0 and not _close(c, allowed):
        verdict = Verdict.REGRESSION
    elif sign * (c - b) < 0 and not _close(c, b):
        verdict = Verdict.IMPROVED
    else:
        verdict = Verdict.OK
    return Check(label, metric, bound, limit, b, c, allowed, verdict)


def _close(a: float, b: float) -> bool:
    return math.isclose(a, b, rel_tol=TOLERANCE, abs_tol=0.0)


def _warnings(label: str, base: Mapping[str, Any], cur: Mapping[str, Any]) -> list[str]:
    """The workload keys that differ: the two runs may not replay the same sessions on the same cluster."""
    diffs = [f"{k} {base.get(k)!r} -> {cur.get(k)!r}" for k in IDENTITY_KEYS if base.get(k) != cur.get(k)]
    return [f"{label}: different workload or cluster ({', '.join(diffs)})"] if diffs else []


# --------------------------------------------------------------------------- inputs


def load_summaries(path: str | Path) -> dict[str, dict[str, Any]]:
    """``{strategy: summary}`` from a ``replay --json`` / ``compare --json`` output or a ``summary.json``
    (a directory means its ``summary.json``). Raises :class:`TraceFormatError` naming the file."""
    path = Path(path)
    if path.is_dir():
        path = path / "summary.json"
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise TraceFormatError(exc.strerror or str(exc), path=str(path)) from None
    return parse_summaries(data, str(path))


def parse_summaries(data: bytes, source: str) -> dict[str, dict[str, Any]]:
    """:func:`load_summaries` of bytes read from ``source`` (the name used in errors)."""
    try:
        doc = orjson.loads(data)
    except orjson.JSONDecodeError as exc:
        raise TraceFormatError(f"invalid JSON at column {exc.colno}: {exc.msg}", path=source, line=exc.lineno) from None
    return as_summaries(doc, source)


def as_summaries(doc: Any, source: str = "<input>") -> dict[str, dict[str, Any]]:
    """``{strategy: summary}`` from any of the accepted shapes (see :func:`gate`).

    >>> list(as_summaries({"cluster": {}, "strategies": {"a": {"hit_rate": 0.5}, "b": {}}}))
    ['a', 'b']
    >>> as_summaries({"summary": {"strategy": "a", "hit_rate": None}})
    {'a': {'strategy': 'a', 'hit_rate': None}}
    >>> as_summaries(as_summaries({"strategies": {"a": {}}}))
    {'a': {'strategy': 'a'}}
    """
    if not isinstance(doc, Mapping):
        raise TraceFormatError(f"expected a JSON object, got {type(doc).__name__}", path=source)
    if isinstance(doc.get("strategies"), Mapping):
        found = dict(doc["strategies"])
    elif isinstance(doc.get("summary"), Mapping):
        found = {_name(doc["summary"], source): doc["summary"]}
    elif "strategy" in doc:
        found = {_name(doc, source): doc}
    elif doc and all(isinstance(v, Mapping) and "strategy" in v for v in doc.values()):
        found = dict(doc)
    else:
        raise TraceFormatError("not a replay summary: expected the output of `agentgraph replay --json`, "
                               "`agentgraph compare --json` or a summary.json", path=source)
    if not found:
        raise TraceFormatError("no strategy summary in it", path=source)
    return {name: _summary(name, s, source) for name, s in found.items()}


def _name(summary: Mapping[str, Any], source: str) -> str:
    name = summary.get("strategy")
    if not isinstance(name, str):
        raise TraceFormatError(f'"strategy" is {name!r}, expected a name', path=source)
    return name


def _summary(name: str, summary: Any, source: str) -> dict[str, Any]:
    if not isinstance(summary, Mapping):
        raise TraceFormatError(f"strategy {name!r}: expected a summary object, got {type(summary).__name__}",
                               path=source)
    for metric in METRICS:
        value = summary.get(metric)
        if isinstance(value, bool) or not isinstance(value, int | float | None):
            raise TraceFormatError(f"strategy {name!r}: {metric} is {value!r}, expected a number or null",
                                   path=source)
    return {"strategy": name, **summary}  # named, so that as_summaries reads its own output back


# --------------------------------------------------------------------------- formatting


def _short(value: float) -> str:
    """The shortest text of a limit: ``5``, ``0.01``, ``2.5``."""
    text = f"{value:g}"
    return text if float(text) == value else repr(value)


def _num(value: float | None) -> str:
    """A metric value: integers exactly, floats to 6 significant digits (large ones without exponent)."""
    if value is None:
        return "-"
    if isinstance(value, int):
        return str(value)
    return f"{value:.6g}" if abs(value) < 1e6 else f"{value:.0f}"


def _signed(value: float | None) -> str:
    return "-" if value is None else ("+" if value >= 0 else "-") + _num(abs(value))


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{value:+.2f}%"


def _md_cells(row: tuple[str, ...]) -> list[str]:
    strategy, metric, *numbers, verdict = (c.replace("|", "\\|") for c in row)
    shown = {"REGRESSION": "❌ **REGRESSION**"}.get(verdict, verdict)
    return [strategy, f"`{metric}`", *numbers, shown]


def _by_strategy(checks: Iterable[Check]) -> dict[str, list[Check]]:
    groups: dict[str, list[Check]] = {}
    for c in checks:
        groups.setdefault(c.strategy, []).append(c)
    return groups


_NOT_CHECKED = (Verdict.NA, Verdict.SKIPPED)
"""Verdicts that are ``<skipped>`` in JUnit."""


def _skip_message(c: Check) -> str:
    """Why a check was not made; an absent side is the one without a value (if only one has none)."""
    if c.verdict is Verdict.NA:
        return f"{c.metric} is null in the baseline or the current summary"
    side = ("the current summary" if c.baseline is not None else "the baseline" if c.current is not None
            else "the baseline or the current summary")
    return f"{c.metric} is missing from {side}; skipped (--allow-missing)"


def _suite(root: ET.Element, strategy: str, cases: Sequence[tuple[str, Check | str]]) -> None:
    """A ``<testsuite>``; a case is a check, or the failure message of a case that is not one."""
    failed = [c for _, c in cases if isinstance(c, str) or c.verdict is Verdict.REGRESSION]
    skipped = [c for _, c in cases if isinstance(c, Check) and c.verdict in _NOT_CHECKED]
    suite = ET.SubElement(root, "testsuite", name=strategy, tests=str(len(cases)), failures=str(len(failed)),
                          errors="0", skipped=str(len(skipped)))
    for name, case in cases:
        element = ET.SubElement(suite, "testcase", classname=f"agentgraph.gate.{strategy}", name=name)
        if isinstance(case, str):
            ET.SubElement(element, "failure", message=case, type="missing")
        elif case.verdict is Verdict.REGRESSION:
            ET.SubElement(element, "failure", message=case.message(), type="regression")
        elif case.verdict in _NOT_CHECKED:
            ET.SubElement(element, "skipped", message=_skip_message(case))


# --------------------------------------------------------------------------- command


def add_gate_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``agentgraph gate``."""
    defaults = ", ".join([f"{m}=+{v}" for m, v in DEFAULT_MAX_INCREASE.items()]
                         + [f"{m}=-{v}" for m, v in DEFAULT_MAX_DECREASE.items()])
    g = sub.add_parser("gate", help="fail (exit 1) when a replay summary regresses against a baseline",
                       description="Compare a current replay summary with a baseline, strategy by strategy, "
                       "and exit 1 when a gated metric moved beyond its limit. Inputs: the output of "
                       "`replay --json`, `compare --json`, or a summary.json (or its directory) from "
                       f"`replay -o DIR`; '-' reads stdin. Default limits: {defaults}. See docs/ci.md.")
    g.add_argument("--baseline", required=True, metavar="BASE.json", help="the reference summary")
    g.add_argument("--current", required=True, metavar="CUR.json", help="the summary to check ('-' = stdin)")
    g.add_argument("--max-increase", action="append", default=[], metavar="METRIC=LIMIT",
                   help="METRIC may rise at most LIMIT above the baseline: 5%% (relative) or 0.01 (absolute), "
                   "'off' for no check; repeatable; replaces METRIC's defaults")
    g.add_argument("--max-decrease", action="append", default=[], metavar="METRIC=LIMIT",
                   help="METRIC may fall at most LIMIT below the baseline (as --max-increase)")
    g.add_argument("--no-defaults", action="store_true", help="gate only the metrics given on the command line")
    g.add_argument("--strategies", metavar="A,B,...", help="gate only these baseline strategies (default: all)")
    g.add_argument("--allow-missing", action="store_true",
                   help="skip (with a warning) a gated metric absent from a summary instead of exiting 2")
    fmt = g.add_mutually_exclusive_group()
    fmt.add_argument("--markdown", action="store_true", help="print the table as GitHub-flavoured Markdown")
    fmt.add_argument("--json", action="store_true", help="print the report as one JSON object")
    g.add_argument("--junit", metavar="FILE", help="also write JUnit XML here (one testsuite per strategy)")
    g.set_defaults(run=_cmd_gate)


def _cmd_gate(args: argparse.Namespace) -> int:
    strategies = None if args.strategies is None else [n.strip() for n in args.strategies.split(",") if n.strip()]
    if strategies == []:
        raise UsageError("--strategies is empty; give baseline strategy names")
    (baseline, base_name), (current, cur_name) = _read(args.baseline), _read(args.current)
    report = gate(baseline, current, defaults=not args.no_defaults, strategies=strategies,
                  max_increase=_pairs_of(args.max_increase, "--max-increase"),
                  max_decrease=_pairs_of(args.max_decrease, "--max-decrease"),
                  allow_missing=args.allow_missing, sources=(base_name, cur_name))
    for line in report.absent:
        print(f"warning: {line}", file=sys.stderr)
    if args.json:
        base.print_json(report.to_dict())
    else:
        sys.stdout.write(report.markdown() if args.markdown else report.text())
    if args.junit:
        write_output(args.junit, report.junit_xml())
    return base.EXIT_OK if report.ok else base.EXIT_REGRESSION


def _read(path: str) -> tuple[dict[str, dict[str, Any]], str]:
    """The summaries and the name errors give them (a directory's ``summary.json``, as :func:`load_summaries`)."""
    if path == "-":
        return parse_summaries(sys.stdin.buffer.read(), "<stdin>"), "<stdin>"
    file = Path(path) / "summary.json" if Path(path).is_dir() else Path(path)
    return load_summaries(file), str(file)


def _pairs_of(items: Sequence[str], option: str) -> dict[str, str]:
    """``["m=5%", ...]`` → ``{"m": "5%"}`` (the last one wins)."""
    out: dict[str, str] = {}
    for item in items:
        metric, sep, limit = item.partition("=")
        if not sep or not metric.strip():
            raise UsageError(f"{option}: expected METRIC=LIMIT (e.g. session_e2e_p99_s=5%), got {item!r}")
        out[metric.strip()] = limit
    return out
