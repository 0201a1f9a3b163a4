"""The ``agentgraph`` command with the replay commands: ``replay``, ``compare``, ``gate``, ``sweep``, ``demo``.

The console script runs :func:`main`: :mod:`agentgraph.cli`'s commands plus the ones added here
(this package imports :mod:`agentgraph`, never the reverse).
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

import orjson

from agentgraph import cli as base
from agentgraph.model import Trace
from agentgraph.outputs import output_dir, write_output
from schedulers.cluster import DEFAULT_CLUSTER, MAX_NODES, ClusterSpec, load_cluster, parse_capacity
from schedulers.demo import add_demo_command
from schedulers.gate import add_gate_command
from schedulers.limits import MAX_COPIES, MAX_SEED, check_work, trace_work
from schedulers.metrics import ReplayResult, without_wall
from schedulers.simulator import replay
from schedulers.strategies import STRATEGIES, check_strategy, parse_strategies
from schedulers.sweep import add_sweep_command
from schedulers.workloads import replicate

if TYPE_CHECKING:
    from tqdm import tqdm

__all__ = ["main"]

TABLE = (
    ("hit_rate", "hit_rate", "{:.3f}"), ("reprefill_tokens", "reprefill_tok", "{:d}"),
    ("transferred_tokens", "transfer_tok", "{:d}"), ("ttft_p99_s", "ttft_p99_s", "{:.3f}"),
    ("session_e2e_p50_s", "e2e_p50_s", "{:.2f}"), ("session_e2e_p99_s", "e2e_p99_s", "{:.2f}"),
    ("max_mean_load", "max/mean", "{:.2f}"), ("cost_per_session_usd", "$/session", "{:.4f}"),
)
"""Columns of the text tables: summary key, header, format."""


def main(argv: Sequence[str] | None = None) -> int:
    """Run the ``agentgraph`` command line with every command (exit codes as in agentgraph.cli)."""
    return base.main(argv, extensions=(add_commands,))


def add_commands(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    rep = sub.add_parser("replay", help="replay traces on a modeled cluster under one strategy",
                         description="Replay sessions on a modeled GPU cluster under one scheduling "
                         "strategy and report prefix-cache hits, re-prefill, TTFT and session latency.")
    _common(rep)
    rep.add_argument("--strategy", default="topology_aware", metavar="NAME",
                     help=f"one of: {', '.join(STRATEGIES)} (default topology_aware)")
    rep.add_argument("-o", "--output", metavar="DIR",
                     help="write hops.csv, sessions.csv, nodes.csv, summary.json and run.json here")
    rep.set_defaults(run=_cmd_replay)

    cmp = sub.add_parser("compare", help="replay traces under several strategies, one table",
                         description="Replay the same sessions under each strategy (same cluster, "
                         "same seed) and compare their summaries.")
    _common(cmp)
    cmp.add_argument("--strategies", default="all", metavar="A,B,...",
                     help="comma-separated strategy names, or 'all' (default)")
    cmp.set_defaults(run=_cmd_compare)
    add_gate_command(sub)
    add_sweep_command(sub)
    add_demo_command(sub)


def _common(p: argparse.ArgumentParser) -> None:
    p.add_argument("trace", nargs="+", metavar="TRACE", help="a trace file, or any importable source")
    base.warnings_option(p)
    p.add_argument("--cluster", metavar="FILE", help="cluster TOML (default: 8 × Llama-3-8B on H100)")
    p.add_argument("--nodes", type=node_count, metavar="N", help="override the cluster's node count")
    p.add_argument("--kv-capacity-tokens", type=_capacity, metavar="N|unlimited|auto",
                   help="override the KV capacity per node")
    p.add_argument("--seed", type=seed_value, default=0, help="seed of every random choice (default 0)")
    p.add_argument("--rate", type=session_rate, metavar="SESSIONS_PER_S",
                   help="Poisson session arrivals at this rate instead of the trace's timestamps")
    p.add_argument("--time-scale", type=time_scale, default=1.0, metavar="X",
                   help="multiply the trace's arrival timestamps by X (default 1)")
    p.add_argument("--copies", type=copy_count, default=1, metavar="K",
                   help="replay K copies of the sessions (shared prefixes kept, private ones renamed)")
    force_option(p)
    progress_option(p)
    p.add_argument("--json", action="store_true", help="print the summary as one JSON object")


node_count = base.int_range(1, MAX_NODES)
seed_value = base.int_range(0, MAX_SEED)
copy_count = base.int_range(1, MAX_COPIES)
session_rate = base.float_range(1e-6, 1e6)
time_scale = base.float_range(1e-6, 1e6)
"""The bounded options (argparse types) every replaying command shares (docs/cli.md)."""


def force_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--force", action="store_true",
                   help="run even when the work is above the limits of docs/cli.md (replayed hops and "
                   "prefix blocks, blocks held in memory)")


def progress_option(p: argparse.ArgumentParser) -> None:
    """``--progress`` / ``--no-progress``; neither: a bar only when stderr is a terminal."""
    bar = p.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always show the progress bar (default: only on a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show it")


def progress_bar(total: int, desc: str, unit: str, progress: bool | None) -> tqdm[Any]:
    """A bar on stderr, gone when closed; ``progress`` None draws it only on a terminal (tqdm's
    ``disable=None``), so piped output (CI logs) stays clean."""
    from tqdm import tqdm

    return tqdm(total=total, desc=desc, unit=unit, file=sys.stderr, leave=False, dynamic_ncols=True,
                disable=None if progress is None else not progress)


_capacity = base.argument_type(lambda text: parse_capacity(text, "--kv-capacity-tokens"))


def _setup(args: argparse.Namespace, strategies: int) -> tuple[Trace, ClusterSpec]:
    spec = DEFAULT_CLUSTER if args.cluster is None else load_cluster(args.cluster)
    spec = spec.with_overrides(args.nodes, args.kv_capacity_tokens)
    spec.kv_capacity_tokens_per_node()  # an override can make the weights not fit: fail before loading
    trace = base.load_any(args.trace, warnings=args.warnings)
    check_work(*trace_work(trace), copies=args.copies, runs=strategies, force=args.force)  # before copying
    return (trace if args.copies == 1 else replicate(trace, args.copies)), spec


def _run(trace: Trace, spec: ClusterSpec, strategy: str, args: argparse.Namespace) -> ReplayResult:
    return replay(trace, spec, strategy, seed=args.seed, rate=args.rate, time_scale=args.time_scale)


def _cmd_replay(args: argparse.Namespace) -> int:
    name = check_strategy(args.strategy)
    out = None if args.output is None else output_dir(args.output)  # an unusable -o fails before the work
    trace, spec = _setup(args, 1)
    with progress_bar(1, "replay", "strategy", args.progress) as bar:  # the simulator has no per-hop hook
        bar.set_postfix_str(name)
        result = _run(trace, spec, name, args)
        bar.update()
    if out is not None:
        _write(out, result, spec)
    if args.json:
        base.print_json(result.summary)
    else:
        print_table({name: result.summary}, spec, sys.stdout)
        if args.output:
            print(f"frames and summary -> {args.output}")
    return base.EXIT_OK


def _cmd_compare(args: argparse.Namespace) -> int:
    names = parse_strategies(args.strategies)
    trace, spec = _setup(args, len(names))
    summaries = {}
    with progress_bar(len(names), "compare", "strategy", args.progress) as bar:
        for n in names:
            bar.set_postfix_str(n)
            summaries[n] = _run(trace, spec, n, args).summary
            bar.update()
    if args.json:
        base.print_json({"cluster": spec.describe(), "strategies": summaries})
    else:
        print_table(summaries, spec, sys.stdout)
    return base.EXIT_OK


def print_table(summaries: dict[str, dict[str, Any]], spec: ClusterSpec, out: IO[str]) -> None:
    first = next(iter(summaries.values()))
    d = spec.describe()
    out.write(f"{first['sessions']} session(s), {first['hops']} hops on {d['nodes']} × {d['model']} "
              f"({d['gpu']} ×{d['tensor_parallel']}, KV {d['kv_capacity_tokens']} tok/node)\n")
    width = max(len("strategy"), *(len(n) for n in summaries))
    heads = [h for _, h, _ in TABLE]
    out.write("  ".join([f"{'strategy':<{width}}", *(f"{h:>13}" for h in heads)]).rstrip() + "\n")
    for name, s in summaries.items():
        cells = ["-" if s[k] is None else fmt.format(s[k]) for k, _, fmt in TABLE]
        out.write("  ".join([f"{name:<{width}}", *(f"{c:>13}" for c in cells)]) + "\n")


def _write(out: Path, result: ReplayResult, spec: ClusterSpec) -> None:
    """The frames as CSV and the summary as JSON: byte-identical for the same inputs and seed
    (``wall_s``, the only machine-dependent figure, goes to run.json)."""
    for name, frame in (("hops.csv", result.hops), ("sessions.csv", result.sessions), ("nodes.csv", result.nodes)):
        write_output(out / name, frame.write_csv())
    summary = without_wall(result.summary)
    write_output(out / "summary.json", orjson.dumps({"summary": summary, "cluster": spec.describe()},
                                                    option=orjson.OPT_INDENT_2) + b"\n")
    write_output(out / "run.json", orjson.dumps({"wall_s": result.summary["wall_s"]}) + b"\n")


if __name__ == "__main__":
    sys.exit(main())
