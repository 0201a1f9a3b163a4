"""``agentgraph sweep``: replay a grid of strategies × node counts × KV capacities × arrival rates
× seeds, one row per combination in one polars frame (issue #6, point 4).

The grid is the cartesian product in the order strategy, nodes, kv_capacity, rate, seed (strategy
outermost, seed innermost), and the frame's rows keep that order whatever the backend and the
number of workers. Each combination is an independent :func:`~schedulers.simulator.replay` of the
same trace, so the combinations run in parallel: in a process pool (``backend="local"``) or as
Ray tasks (``backend="ray"``, the optional ``agentgraph[ray]`` extra). Every column except
``wall_s`` is byte-identical across runs, backends and worker counts. See ``docs/sweep.md``.

>>> from agentgraph.model import Hop, Trace
>>> hops = tuple(Hop(f"h{i}", f"s{i}", "main", 0, "m", 0.0, 1.0, 128, 2, 0, (1, 2)) for i in range(2))
>>> df = sweep(Trace(hops), strategies=["round_robin", "least_loaded"], nodes=[1, 2], workers=1)
>>> df.select("strategy", "nodes", "kv_capacity", "kv_capacity_tokens", "rate", "cold_tokens").rows()
... # doctest: +NORMALIZE_WHITESPACE
[('round_robin', 1, 'auto', 426788, None, 128), ('round_robin', 2, 'auto', 426788, None, 128),
 ('least_loaded', 1, 'auto', 426788, None, 128), ('least_loaded', 2, 'auto', 426788, None, 128)]
"""

from __future__ import annotations

import argparse
import contextlib
import io
import itertools
import logging
import math
import numbers
import os
import socket
import sys
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Literal, TypeVar

import polars as pl

from agentgraph import cli as base
from agentgraph.errors import UsageError
from agentgraph.frames import Schema, frame
from agentgraph.model import Trace
from agentgraph.outputs import open_output
from schedulers.cluster import DEFAULT_CLUSTER, MAX_NODES, Capacity, ClusterSpec, load_cluster, parse_capacity
from schedulers.limits import MAX_COMBINATIONS, MAX_SEED, check_work, trace_work
from schedulers.metrics import SUMMARY_KEYS, SUMMARY_SCHEMA
from schedulers.simulator import replay
from schedulers.strategies import STRATEGIES, check_strategy
from schedulers.workloads import replicate

__all__ = [
    "BACKENDS",
    "GRID_COLUMNS",
    "METRIC_COLUMNS",
    "RAY_MISSING",
    "SWEEP_SCHEMA",
    "Combination",
    "add_sweep_command",
    "grid",
    "sweep",
]

_T = TypeVar("_T")
Backend = Literal["local", "ray"]
BACKENDS: tuple[Backend, ...] = ("local", "ray")
RAY_MISSING = "--backend ray needs Ray: pip install 'agentgraph[ray]'"

GRID_COLUMNS = ("strategy", "nodes", "kv_capacity", "kv_capacity_tokens", "rate", "seed")
METRIC_COLUMNS = tuple(k for k in SUMMARY_KEYS if k not in GRID_COLUMNS)
SWEEP_SCHEMA: Schema = {
    "strategy": pl.String,
    "nodes": pl.Int64,
    "kv_capacity": pl.String,
    "kv_capacity_tokens": pl.Int64,
    "rate": pl.Float64,
    "seed": pl.Int64,
    **{k: SUMMARY_SCHEMA[k] for k in METRIC_COLUMNS},
}
"""One row per combination: the grid columns, then the replay summary's other keys in
:data:`~schedulers.metrics.SUMMARY_KEYS` order. ``kv_capacity`` is the capacity asked for as text
(``"auto"``, ``"unlimited"``, ``"100000"``), ``kv_capacity_tokens`` the per-node capacity it gives
(null: unlimited); ``rate`` is null when sessions arrive at the trace's timestamps."""


@dataclass(frozen=True, slots=True)
class Combination:
    """One cell of the grid: the strategy, the cluster with its overrides applied, the capacity as
    asked for, the arrival rate (None: the trace's timestamps) and the seed."""

    strategy: str
    spec: ClusterSpec
    kv_capacity: str
    rate: float | None
    seed: int

    def grid_row(self) -> tuple[object, ...]:
        """The values of :data:`GRID_COLUMNS`."""
        return (self.strategy, self.spec.nodes, self.kv_capacity, self.spec.kv_capacity_tokens_per_node(),
                self.rate, self.seed)


def grid(spec: ClusterSpec = DEFAULT_CLUSTER, strategies: str | Sequence[str] = "all",
         nodes: Sequence[int | None] | None = None, kv_capacity_tokens: Sequence[Capacity | None] | None = None,
         rates: Sequence[float | None] | None = None, seeds: Sequence[int] = (0,)) -> list[Combination]:
    """The combinations in sweep order (strategy outermost, then nodes, kv capacity, rate, seed).

    ``None`` for a whole axis, or as one of its values, keeps the cluster's value (for rates: the
    trace's timestamps). Bad values raise a UsageError naming the parameter before anything runs,
    capacities the cluster cannot hold (weights that do not fit) included.

    >>> [(c.strategy, c.spec.nodes, c.kv_capacity) for c in grid(strategies=["random"], nodes=[2, 4],
    ...                                                         kv_capacity_tokens=["unlimited", 9000])]
    [('random', 2, 'unlimited'), ('random', 2, '9000'), ('random', 4, 'unlimited'), ('random', 4, '9000')]
    """
    names = list(STRATEGIES) if strategies == "all" else [strategies] if isinstance(strategies, str) else strategies
    axes = (
        [check_strategy(n) for n in _non_empty(names, "strategies")],
        [None] if nodes is None else [_optional(_nodes, n, "nodes") for n in _non_empty(nodes, "nodes")],
        [None] if kv_capacity_tokens is None else [_optional(parse_capacity, c, "kv_capacity_tokens")
                                                   for c in _non_empty(kv_capacity_tokens, "kv_capacity_tokens")],
        [None] if rates is None else [_optional(_positive_number, r, "rates") for r in _non_empty(rates, "rates")],
        [_seed(s) for s in _non_empty(seeds, "seeds")],
    )
    cells = math.prod(len(axis) for axis in axes)
    if cells > MAX_COMBINATIONS:
        raise UsageError(f"the grid has {cells:,} combinations ({' × '.join(str(len(a)) for a in axes)}), "
                         f"above the limit of {MAX_COMBINATIONS:,}; sweep a coarser grid, or split it")
    out = []
    for name, n, cap, rate, seed in itertools.product(*axes):
        s = spec.with_overrides(n, cap)
        s.kv_capacity_tokens_per_node()  # weights that do not fit fail here, before any replay
        out.append(Combination(name, s, str(s.kv_capacity_tokens), rate, seed))
    return out


def sweep(trace: Trace, spec: ClusterSpec = DEFAULT_CLUSTER, *, strategies: str | Sequence[str] = "all",
          nodes: Sequence[int | None] | None = None, kv_capacity_tokens: Sequence[Capacity | None] | None = None,
          rates: Sequence[float | None] | None = None, seeds: Sequence[int] = (0,), copies: int = 1,
          time_scale: float = 1.0, workers: int | None = None, backend: Backend = "local",
          ray_address: str | None = None, force: bool = False) -> pl.DataFrame:
    """Replay ``trace`` once per combination of :func:`grid` and return one row per combination,
    in grid order, with the columns of :data:`SWEEP_SCHEMA`.

    ``copies`` replays K copies of the sessions (:func:`~schedulers.workloads.replicate`) and
    ``time_scale`` stretches the trace's timestamps, in every combination. ``workers`` (default:
    the CPU count) caps the worker processes (``"local"``) or the CPUs of the Ray instance this
    call starts (``"ray"``); one worker or one combination runs in this process. ``ray_address``
    connects to a running Ray cluster instead of starting a local instance. ``force`` runs a sweep
    above the work limit of :mod:`schedulers.limits`.
    """
    combos = grid(spec, strategies, nodes, kv_capacity_tokens, rates, seeds)
    return _run(trace, combos, copies=copies, time_scale=time_scale, workers=workers, backend=backend,
                ray_address=ray_address, force=force)


def _run(trace: Trace, combos: list[Combination], *, copies: int, time_scale: float, workers: int | None,
         backend: Backend, ray_address: str | None, force: bool = False,
         each: Callable[[], object] | None = None) -> pl.DataFrame:
    """:func:`sweep` once the grid is built; ``each()`` is called as each combination's summary
    arrives, in grid order (a progress bar)."""
    copies = _positive_int(copies, "copies")
    check_work(*trace_work(trace), copies=copies, runs=len(combos), force=force, what="this sweep")
    time_scale = _positive_number(time_scale, "time_scale")
    n_workers = (os.cpu_count() or 1) if workers is None else _positive_int(workers, "workers")
    if backend not in BACKENDS:
        raise UsageError(f"backend must be one of {', '.join(BACKENDS)}, not {backend!r}")
    if ray_address is not None and backend != "ray":
        raise UsageError("a Ray address needs --backend ray")
    work = trace if copies == 1 else replicate(trace, copies)
    processes = _processes(n_workers, len(combos))
    if backend == "ray":
        summaries = _run_ray(work, combos, time_scale, n_workers, ray_address, each)
    elif processes == 1:
        summaries = list(_ticked((_replay_summary(work, c, time_scale) for c in combos), each))
    else:
        summaries = _run_pool(work, combos, time_scale, processes, each)
    rows = []
    for c, s in zip(combos, summaries, strict=True):
        assert (s["strategy"], s["nodes"], s["seed"]) == (c.strategy, c.spec.nodes, c.seed), "result out of order"
        rows.append((*c.grid_row(), *(s[k] for k in METRIC_COLUMNS)))
    return frame(rows, SWEEP_SCHEMA)


def _replay_summary(trace: Trace, c: Combination, time_scale: float) -> dict[str, Any]:
    """The replay summary of one combination (the unit of work every backend runs)."""
    return replay(trace, c.spec, c.strategy, seed=c.seed, rate=c.rate, time_scale=time_scale).summary


def _ticked(items: Iterable[_T], each: Callable[[], object] | None) -> Iterator[_T]:
    for item in items:
        yield item
        if each is not None:
            each()


# --------------------------------------------------------------------------- local process pool

_worker_trace: Trace | None = None
"""The trace of a pool worker, set once by :func:`_init_worker` (not sent with every task)."""


def _init_worker(trace: Trace) -> None:
    global _worker_trace
    _worker_trace = trace


def _pool_task(task: tuple[Combination, float]) -> dict[str, Any]:
    assert _worker_trace is not None, "pool worker used before _init_worker"
    return _replay_summary(_worker_trace, *task)


def _run_pool(trace: Trace, combos: list[Combination], time_scale: float, workers: int,
              each: Callable[[], object] | None = None) -> list[dict[str, Any]]:
    """Summaries in ``combos`` order from a pool of ``workers`` spawned processes.

    Spawned, not forked: polars runs thread pools, and a fork taken while one of their threads
    holds a lock deadlocks the child (spawn is also the only start method on every platform).
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor

    tasks = [(c, time_scale) for c in combos]
    chunk = max(1, len(tasks) // (4 * workers))  # a few chunks per worker: balance vs. round trips
    with ProcessPoolExecutor(workers, mp_context=multiprocessing.get_context("spawn"),
                             initializer=_init_worker, initargs=(trace,)) as pool:
        return list(_ticked(pool.map(_pool_task, tasks, chunksize=chunk), each))


# --------------------------------------------------------------------------- Ray


def _run_ray(trace: Trace, combos: list[Combination], time_scale: float, workers: int,
             address: str | None, each: Callable[[], object] | None = None) -> list[dict[str, Any]]:
    """Summaries in ``combos`` order from one Ray task per combination, the trace put in the
    object store once. Uses the Ray connection already open in this process if there is one;
    else connects to ``address`` (or ``$RAY_ADDRESS``) or starts a quiet local instance with
    ``workers`` CPUs, and shuts down only what it started."""
    try:
        import ray
    except ImportError:
        raise UsageError(RAY_MISSING) from None
    started = not ray.is_initialized()
    if started:
        source = "--ray-address" if address else "$RAY_ADDRESS"
        address = address or os.environ.get("RAY_ADDRESS")
        quiet: dict[str, Any] = {"logging_level": logging.ERROR, "log_to_driver": False}
        if address:
            _check_reachable(address, source)
            ray.init(address=address, **quiet)
        else:
            with _environ("RAY_USAGE_STATS_ENABLED", "0"):  # offline: the instance reports no usage
                ray.init(num_cpus=workers, include_dashboard=False, **quiet)
    try:
        remote = ray.remote(num_cpus=1)(_replay_summary)
        trace_ref = ray.put(trace)
        refs = [remote.remote(trace_ref, c, time_scale) for c in combos]
        summaries: list[dict[str, Any]] = list(_ticked((ray.get(r) for r in refs), each))
        return summaries
    finally:
        if started:
            ray.shutdown()


RAY_CONNECT_TIMEOUT_S = 5.0
"""How long ``--ray-address host:port`` may take to accept a TCP connection before the sweep gives up
(``ray.init`` itself keeps retrying an unreachable head for minutes)."""


def _check_reachable(address: str, source: str) -> None:
    """Fail fast with a usage error when ``address`` names a ``host:port`` (``ray://`` or not) that
    does not accept connections; ``auto``, ``local`` and other forms go to Ray unchecked."""
    host, sep, port = address.removeprefix("ray://").rpartition(":")
    if not sep or not host or not (port.isascii() and port.isdecimal()):
        return
    if not 0 < int(port) < 65536:
        raise UsageError(f"{source} {address}: port {port} is out of range (1-65535)")
    try:
        socket.create_connection((host.strip("[]"), int(port)), timeout=RAY_CONNECT_TIMEOUT_S).close()
    except OSError as exc:
        raise UsageError(f"{source} {address}: cannot connect ({exc.strerror or exc})") from None


@contextlib.contextmanager
def _environ(name: str, value: str) -> Iterator[None]:
    """``$name`` defaults to ``value`` inside the block (processes started there inherit it)."""
    before = os.environ.get(name)
    os.environ.setdefault(name, value)
    try:
        yield
    finally:
        if before is None:
            del os.environ[name]


# --------------------------------------------------------------------------- parameter checks


def _non_empty(values: Iterable[Any], name: str) -> list[Any]:
    out = list(values)
    if not out:
        raise UsageError(f"{name} is empty")
    return out


def _positive_int(value: object, name: str) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value < 1:
        raise UsageError(f"{name}: expected a positive integer, not {value!r}")
    return int(value)


def _optional(check: Callable[[Any, str], _T], value: object, name: str) -> _T | None:
    return None if value is None else check(value, name)


def _seed(value: object) -> int:
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or not 0 <= int(value) <= MAX_SEED:
        raise UsageError(f"seeds: expected an integer in 0..{MAX_SEED}, not {value!r}")
    return int(value)


def _nodes(value: object, name: str) -> int:
    n = _positive_int(value, name)
    if n > MAX_NODES:
        raise UsageError(f"{name}: expected at most {MAX_NODES} nodes, not {n}")
    return n


def _positive_number(value: object, name: str) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) or not 0 < float(value) < math.inf:
        raise UsageError(f"{name}: expected a positive finite number, not {value!r}")
    return float(value)




# --------------------------------------------------------------------------- command line

TABLE = (
    ("hit_rate", "hit_rate", "{:.3f}"), ("reprefill_tokens", "reprefill_tok", "{:d}"),
    ("ttft_p99_s", "ttft_p99_s", "{:.3f}"), ("session_e2e_p50_s", "e2e_p50_s", "{:.2f}"),
    ("session_e2e_p99_s", "e2e_p99_s", "{:.2f}"), ("cost_per_session_usd", "$/session", "{:.4f}"),
)
"""Metric columns of the text table: frame column, header, format."""

OUTPUT_SUFFIXES = (".parquet", ".csv")


def add_sweep_command(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    """Register ``agentgraph sweep``."""
    from schedulers.cli import copy_count, force_option, node_count, progress_option, seed_value, time_scale

    p = sub.add_parser("sweep", help="replay a grid of strategies × nodes × KV capacities × rates, one frame",
                       description="Replay the same sessions once per combination of strategies, node "
                       "counts, KV capacities, arrival rates and seeds (cartesian product, strategy "
                       "outermost, seed innermost), in parallel, and print one row per combination "
                       "or write them as one Parquet/CSV frame. See docs/sweep.md.")
    p.add_argument("trace", nargs="+", metavar="TRACE", help="a trace file, or any importable source")
    base.warnings_option(p)
    p.add_argument("--cluster", metavar="FILE", help="cluster TOML (default: 8 × Llama-3-8B on H100)")
    p.add_argument("--strategies", type=_list(_strategy), default=list(STRATEGIES), metavar="A,B,...|all",
                   help="comma-separated strategy names, or 'all' (default)")
    p.add_argument("--nodes", type=_list(node_count), metavar="N,N,...",
                   help="node counts (default: the cluster's)")
    p.add_argument("--kv-capacity-tokens", type=_list(_capacity), metavar="N|unlimited|auto,...",
                   help="KV capacities per node (default: the cluster's)")
    p.add_argument("--rates", type=_list(_cli_rate), metavar="R,R,...",
                   help="Poisson session arrival rates in sessions/s; 'trace' = the trace's timestamps "
                   "(default: trace only)")
    p.add_argument("--seeds", type=_list(seed_value), default=[0], metavar="S,S,...",
                   help="seeds of every random choice (default 0)")
    p.add_argument("--copies", type=copy_count, default=1, metavar="K",
                   help="replay K copies of the sessions in every combination (default 1)")
    force_option(p)
    p.add_argument("--time-scale", type=time_scale, default=1.0, metavar="X",
                   help="multiply the trace's arrival timestamps by X (default 1)")
    p.add_argument("--workers", type=base.positive_int, metavar="N",
                   help="parallel workers (default: the CPU count; 1 = in this process)")
    p.add_argument("--backend", choices=BACKENDS, default="local",
                   help="local: a process pool; ray: Ray tasks (needs agentgraph[ray]) (default local)")
    p.add_argument("--ray-address", metavar="ADDR",
                   help="connect to this Ray cluster (e.g. auto, ray://head:10001) instead of starting one")
    p.add_argument("-o", "--output", metavar="FILE.parquet|FILE.csv", help="write the frame here")
    progress_option(p)
    p.add_argument("--json", action="store_true", help='print {"rows": [one object per combination]}')
    p.set_defaults(run=_cmd_sweep)


def _list(item: Callable[[str], Any]) -> Callable[[str], list[Any]]:
    """An argparse type for comma-separated values, each checked by ``item``; an empty item (``1,,2``)
    or a repeated value is an error, not skipped (a trailing comma is allowed)."""
    def parse(text: str) -> list[Any]:
        parts = [t.strip() for t in text.split(",")]
        if parts[-1:] == [""] and len(parts) > 1:
            parts.pop()
        if not any(parts) or "" in parts:
            raise argparse.ArgumentTypeError(f"expected comma-separated values with none empty, got {text!r}")
        try:
            values = [item(t) for t in parts]
        except argparse.ArgumentTypeError as exc:
            raise argparse.ArgumentTypeError(f"{exc} (in {text!r})") from None
        repeated = [t for i, t in enumerate(parts) if values.index(values[i]) != i]
        if repeated:
            raise argparse.ArgumentTypeError(f"{repeated[0]!r} is repeated in {text!r}")
        return values
    return parse


_strategy = base.argument_type(lambda text: text if text == "all" else check_strategy(text))


_capacity = base.argument_type(lambda text: parse_capacity(text, "a capacity"))


def _cli_rate(text: str) -> float | None:
    from schedulers.cli import session_rate

    return None if text == "trace" else session_rate(text)


def _cmd_sweep(args: argparse.Namespace) -> int:
    out = None if args.output is None else Path(args.output)
    if out is not None and out.suffix.lower() not in OUTPUT_SUFFIXES:
        raise UsageError(f"-o {args.output}: the file name must end in .parquet or .csv")
    strategies = list(STRATEGIES) if "all" in args.strategies else args.strategies
    spec = DEFAULT_CLUSTER if args.cluster is None else load_cluster(args.cluster)
    combos = grid(spec, strategies, args.nodes, args.kv_capacity_tokens, args.rates, args.seeds)
    trace = base.load_any(args.trace, warnings=args.warnings)  # after the grid: a bad combination fails first
    with open_output(out) if out is not None else contextlib.nullcontext() as f:  # -o fails before the sweep
        start = time.perf_counter()
        from schedulers.cli import progress_bar

        with progress_bar(len(combos), "sweep", "combination", args.progress) as bar:
            df = _run(trace, combos, copies=args.copies, time_scale=args.time_scale, workers=args.workers,
                      backend=args.backend, ray_address=args.ray_address, force=args.force, each=bar.update)
        where = "ray" if args.backend == "ray" else f"{_processes(args.workers, len(combos))} process(es)"
        print(f"swept {len(combos)} combination(s) in {time.perf_counter() - start:.1f} s ({where})",
              file=sys.stderr)
        if args.json:
            base.print_json({"rows": df.to_dicts()})
        else:
            _print_table(df, sys.stdout)
        if f is not None:
            f.write(_encoded(df, csv=args.output.lower().endswith(".csv")))
    if out is not None and not args.json:
        print(f"{df.height} row(s) -> {out}")
    return base.EXIT_OK


def _encoded(df: pl.DataFrame, *, csv: bool) -> bytes:
    if csv:
        return df.write_csv().encode()
    buffer = io.BytesIO()
    df.write_parquet(buffer)
    return buffer.getvalue()


def _processes(workers: int | None, combinations: int) -> int:
    """How many processes the local backend uses (1: this one)."""
    n = (os.cpu_count() or 1) if workers is None else workers
    return 1 if n == 1 or combinations == 1 else min(n, combinations)


def _print_table(df: pl.DataFrame, out: IO[str]) -> None:
    first = df.row(0, named=True)
    out.write(f"{first['sessions']} session(s), {first['hops']} hops on cluster {first['cluster']}: "
              f"{df.height} combination(s)\n")
    heads = ["strategy", "nodes", "kv_capacity", "kv_tokens", "rate", "seed", *(h for _, h, _ in TABLE)]
    rows = [heads]
    for r in df.iter_rows(named=True):
        grid_cells = [r["strategy"], str(r["nodes"]), r["kv_capacity"], _or_dash(r["kv_capacity_tokens"]),
                      "trace" if r["rate"] is None else f"{r['rate']:g}", str(r["seed"])]
        rows.append(grid_cells + ["-" if r[k] is None else fmt.format(r[k]) for k, _, fmt in TABLE])
    widths = [max(len(row[i]) for row in rows) for i in range(len(heads))]
    for row in rows:
        cells = (c.ljust(w) if i in (0, 2) else c.rjust(w) for i, (c, w) in enumerate(zip(row, widths, strict=True)))
        out.write("  ".join(cells).rstrip() + "\n")


def _or_dash(value: object) -> str:
    return "-" if value is None else str(value)
