"""``agentgraph demo``: every strategy on the bundled sessions, one table and a report folder.

The bundled ``replays/`` (nine recorded sessions) are replayed as 40 copies arriving at one
session per second on the default cluster (about half busy) under every strategy, with the same
arrivals for each. The report folder holds:

* ``summary.json``: ``{"cluster": ..., "strategies": {name: summary}}``, the shape of ``compare
  --json`` without the machine-dependent ``wall_s`` (``agentgraph gate`` reads it);
* ``run.json``: each strategy's ``wall_s`` and the demo's own wall seconds;
* ``sessions.csv`` and ``hops.csv``: every strategy's sessions and hops frames, with a
  ``strategy`` column (a per-turn CSV joins them once hops carry turns, issue #14);
* ``latency_cdf.png``, ``hit_rate.png``, ``context_growth.png``, ``call_graph.png``;
* ``index.html``, which shows the table and the four plots.

Everything but ``run.json`` is byte-identical for the same inputs and seed.
"""

from __future__ import annotations

import argparse
import html
import math
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import orjson
import polars as pl

from agentgraph.errors import UsageError
from agentgraph.model import Trace
from agentgraph.outputs import output_dir, write_output
from schedulers.cluster import DEFAULT_CLUSTER, ClusterSpec
from schedulers.limits import MAX_COPIES, MAX_SEED, check_work, trace_work
from schedulers.metrics import ReplayResult, without_wall
from schedulers.simulator import compare
from schedulers.strategies import STRATEGIES, check_strategy
from schedulers.workloads import replicate

if TYPE_CHECKING:
    import jinja2
    from matplotlib.figure import Figure

__all__ = ["BUNDLED_TRACE", "DemoReport", "add_demo_command", "bundled_replays", "demo_sessions", "run_demo"]

COPIES, RATE = 40, 1.0  # 360 sessions, ~half the default cluster's capacity
_TRADE_OFFS = ("transferred_tokens", "max_mean_load")  # not bolded as "best" in index.html
PLOTS = (
    ("latency_cdf.png", "Session end-to-end latency, CDF per strategy",
     "Each curve is one strategy (colour, dash and marker differ; the markers are its p50 and p99); "
     "further left is faster. The steps are the recorded sessions (their tool and user time is "
     "fixed, think time included); the spread within a step is what placement changes. Where a "
     "curve crosses the dotted line is its session p99. Per-turn latency replaces it once the "
     "importer knows turns."),
    ("hit_rate.png", "Prefix-cache hit rate per strategy",
     "Share of prompt tokens found in the chosen node's cache; the light segment is the share "
     "fetched from another node's cache instead of recomputed."),
    ("context_growth.png", "Context growth per hop",
     "Prompt tokens of each hop of the longest session: the prefix shared with the agent's "
     "previous hop (reusable from cache) and the new tokens (tool results, the previous output); "
     "output tokens per hop on the right axis. Above 200 hops each bar is the mean of a bin of "
     "consecutive hops."),
    ("call_graph.png", "The call graph of one session",
     "The session with the most agents: one lane per agent (an agent reuses the lane of one that "
     "had finished), hops in start order; spawn, sequence and join edges; the critical path (the "
     "session's makespan) in bold. Above 80 hops a node stands for one agent's hops in a span."),
)


@dataclass(frozen=True, slots=True)
class DemoReport:
    """What :func:`run_demo` produced: the per-strategy results and the files it wrote."""

    out_dir: Path
    spec: ClusterSpec
    results: dict[str, ReplayResult]
    files: tuple[Path, ...]
    wall_s: float

    @property
    def summaries(self) -> dict[str, dict[str, Any]]:
        return {name: r.summary for name, r in self.results.items()}


BUNDLED_TRACE = Path(__file__).resolve().parent / "data" / "replays.trace"
"""The bundled sessions of ``replays/``, imported (``agentgraph import replays -o`` this file): what
the demo reads when installed without a checkout. ``tests/test_demo.py`` keeps it equal to a fresh
import of ``replays/``."""


def bundled_replays() -> Path:
    """The demo's default input: the checkout's ``replays/`` directory, else (an install from a
    wheel) :data:`BUNDLED_TRACE`, the same sessions pre-imported."""
    checkout = Path(__file__).resolve().parents[1] / "replays"
    if checkout.is_dir():
        return checkout
    if BUNDLED_TRACE.is_file():
        return BUNDLED_TRACE
    raise UsageError(f"no bundled sessions: neither {checkout} nor {BUNDLED_TRACE} exists; pass trace files or "
                     "session directories explicitly")


def demo_sessions(trace: Trace) -> tuple[str, str]:
    """(the session with the most hops, the session with the most agents): what the context-growth
    and call-graph plots show. Ties go to the earlier session."""
    hops: dict[str, int] = {}
    agents: dict[str, set[str]] = {}
    for h in trace.hop_list:
        hops[h.session_id] = hops.get(h.session_id, 0) + 1
        agents.setdefault(h.session_id, set()).add(h.agent_id)
    if not hops:
        raise UsageError("the trace has no hops")
    order = {s: i for i, s in enumerate(trace.sessions())}
    longest = max(order, key=lambda s: (hops[s], -order[s]))
    widest = max(order, key=lambda s: (len(agents[s]), hops[s], -order[s]))
    return longest, widest


def run_demo(trace: Trace, spec: ClusterSpec = DEFAULT_CLUSTER, *, out_dir: str | Path = "demo-report",
             strategies: Sequence[str] | None = None, copies: int = COPIES, rate: float | None = RATE,
             seed: int = 0, progress: bool | None = None, force: bool = False) -> DemoReport:
    """Replay ``copies`` copies of ``trace`` under every strategy (or ``strategies``) and write the
    report folder. ``progress``: a progress bar on stderr; None shows it only on a terminal.
    ``force``: run even above the work limit of :mod:`schedulers.limits`."""
    from tqdm import tqdm

    from schedulers import plots

    started = time.perf_counter()
    names = list(STRATEGIES) if strategies is None else [check_strategy(n) for n in strategies]
    if not names:
        raise UsageError("no strategies to replay")
    if not 1 <= copies <= MAX_COPIES or not 0 <= seed <= MAX_SEED or (rate is not None and not 0 < rate < math.inf):
        raise UsageError(f"copies must be in 1..{MAX_COPIES} (got {copies}), seed in 0..{MAX_SEED} (got {seed}) "
                         f"and rate a finite number > 0 or None (got {rate})")
    check_work(*trace_work(trace), copies=copies, runs=len(names), force=force)
    workload = trace if copies == 1 else replicate(trace, copies)
    out = output_dir(out_dir)  # an unusable folder fails before replaying
    bar = tqdm(total=len(names) + len(PLOTS), desc="demo", unit="step", file=sys.stderr,
               disable=None if progress is None else not progress, leave=False, dynamic_ncols=True)
    def replayed(name: str, _: ReplayResult) -> None:
        bar.set_postfix_str(name)
        bar.update()

    with bar:
        results = compare(workload, spec, names, seed=seed, rate=rate, each=replayed)
        longest, widest = demo_sessions(trace)
        figures: tuple[Callable[[], Figure], ...] = (
            lambda: plots.latency_cdf(results),
            lambda: plots.hit_rates({n: r.summary for n, r in results.items()}),
            lambda: plots.context_growth(trace, longest),
            lambda: plots.call_graph(trace, widest),
        )
        files: list[Path] = []
        for (filename, _, _), make in zip(PLOTS, figures, strict=True):
            bar.set_postfix_str(filename)
            files.append(plots.save_png(make(), out / filename))
            bar.update()
    summaries = {n: without_wall(r.summary) for n, r in results.items()}
    files.append(write_output(out / "summary.json", orjson.dumps({"cluster": spec.describe(), "strategies": summaries},
                                                           option=orjson.OPT_INDENT_2) + b"\n"))
    sessions = pl.concat([r.sessions.select(pl.lit(n).alias("strategy"), pl.all()) for n, r in results.items()])
    files.append(write_output(out / "sessions.csv", sessions.write_csv()))
    hops = pl.concat([r.hops.select(pl.lit(n).alias("strategy"), pl.all()) for n, r in results.items()])
    files.append(write_output(out / "hops.csv", hops.write_csv()))
    files.append(write_output(out / "index.html", _html(summaries, spec, copies, rate, seed)))
    wall = time.perf_counter() - started
    files.append(write_output(out / "run.json", orjson.dumps(
        {"wall_s": wall, "strategies": {n: r.summary["wall_s"] for n, r in results.items()}},
        option=orjson.OPT_INDENT_2) + b"\n"))
    return DemoReport(out, spec, results, tuple(files), wall)


def _html(summaries: dict[str, dict[str, Any]], spec: ClusterSpec, copies: int, rate: float | None,
          seed: int) -> str:
    """index.html from ``templates/index.html.j2``: the numbers formatted and the best per column
    marked here, the markup there."""
    from schedulers.cli import TABLE

    first = next(iter(summaries.values()))
    best = {k: (min if k != "hit_rate" else max)(s[k] for s in summaries.values() if s[k] is not None)
            for k, _, _ in TABLE if k not in _TRADE_OFFS and any(s[k] is not None for s in summaries.values())}
    rows = [(name, [("-" if s[k] is None else fmt.format(s[k]), s[k] is not None and s[k] == best.get(k))
                    for k, _, fmt in TABLE]) for name, s in summaries.items()]
    return _template().render(
        sessions=first["sessions"], hops=first["hops"], copies=copies, seed=seed, cluster=spec.describe(),
        arrivals="trace timestamps" if rate is None else f"Poisson arrivals at {rate:g} session(s)/s",
        heads=[h for _, h, _ in TABLE], rows=rows, figures=PLOTS)


def _template() -> jinja2.Template:
    """The report template, shipped as package data. Autoescaped, with :func:`html.escape`'s
    entities (``&#x27;``, ``&quot;``) rather than markupsafe's, so the page is what the hand-built
    one was, byte for byte."""
    import jinja2

    env = jinja2.Environment(loader=jinja2.PackageLoader("schedulers", "templates"), autoescape=True,
                             trim_blocks=True, keep_trailing_newline=True, undefined=jinja2.StrictUndefined,
                             finalize=_escaped)
    return env.get_template("index.html.j2")


def _escaped(value: object) -> object:
    import markupsafe

    return value if isinstance(value, markupsafe.Markup) else markupsafe.Markup(html.escape(str(value)))


def add_demo_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``agentgraph demo``."""
    from agentgraph import cli as base
    from schedulers.cli import copy_count, force_option, node_count, seed_value

    p = sub.add_parser("demo", help="every strategy on the bundled sessions: a table and a report folder",
                       description="Replay the bundled sessions in replays/ (or TRACE...) under every "
                       "strategy on the default cluster, print a comparison table and write a report "
                       "folder with PNG plots and an index.html. Progress bar on a terminal only.")
    p.add_argument("trace", nargs="*", metavar="TRACE",
                   help="traces or session sources (default: the bundled sessions, replays/)")
    base.warnings_option(p)
    p.add_argument("-o", "--output", default="demo-report", metavar="DIR",
                   help="the report folder (default demo-report/)")
    p.add_argument("--cluster", metavar="FILE", help="cluster TOML (default: 8 × Llama-3-8B on H100)")
    p.add_argument("--nodes", type=node_count, metavar="N", help="override the cluster's node count")
    p.add_argument("--strategies", default="all", metavar="A,B,...",
                   help="comma-separated strategy names, or 'all' (default)")
    p.add_argument("--copies", type=copy_count, default=COPIES, metavar="K",
                   help=f"replay K copies of the sessions (default {COPIES})")
    p.add_argument("--rate", type=_demo_rate, default=RATE, metavar="SESSIONS_PER_S",
                   help=f"Poisson session arrivals per second (default {RATE:g}); 0 = trace timestamps")
    p.add_argument("--seed", type=seed_value, default=0, help="seed of every random choice (default 0)")
    force_option(p)
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always show the progress bar (default: only on a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show it")
    p.add_argument("--json", action="store_true", help="print summary.json's object instead of the table")
    p.set_defaults(run=_cmd_demo)


def _demo_rate(text: str) -> float:
    """``--rate``: sessions per second as ``replay --rate`` takes them, or 0 for the trace's timestamps."""
    from schedulers.cli import session_rate

    return 0.0 if text.strip() in ("0", "0.0") else session_rate(text)


def _cmd_demo(args: argparse.Namespace) -> int:
    from agentgraph import cli as base
    from schedulers import cli
    from schedulers.cluster import load_cluster
    from schedulers.strategies import parse_strategies

    names = parse_strategies(args.strategies)
    spec = DEFAULT_CLUSTER if args.cluster is None else load_cluster(args.cluster)
    spec = spec.with_overrides(args.nodes, None)
    trace = base.load_any(args.trace or [str(bundled_replays())], warnings=args.warnings)
    report = run_demo(trace, spec, out_dir=args.output, strategies=names, copies=args.copies,
                      rate=args.rate or None, seed=args.seed, progress=args.progress, force=args.force)
    if args.json:
        base.print_json({"cluster": spec.describe(),
                         "strategies": {n: without_wall(s) for n, s in report.summaries.items()}})
    else:
        cli.print_table(report.summaries, spec, sys.stdout)
        print(f"report -> {report.out_dir / 'index.html'}")
    n = len(report.results)
    print(f"demo: {n} strateg{'y' if n == 1 else 'ies'} in {report.wall_s:.1f} s", file=sys.stderr)
    return base.EXIT_OK
