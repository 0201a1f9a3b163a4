"""Replay speed: the scheduler simulator vs the bare prefix-cache loop, on the Mooncake synthetic trace.

    python benchmarks/replay_speed.py [--repeats 2] [--processes 3] [--copies 10] [--strategies a,b] [--json]
                                      [--trace PATH]

For every strategy in ``schedulers.STRATEGIES`` (or ``--strategies``), fresh child processes
(``--one STRATEGY --copies K``) each load the trace (``agentgraph.sources.import_paths``), build
``schedulers.replicate(trace, K)`` when K > 1, then call ``schedulers.replay(trace,
DEFAULT_CLUSTER, STRATEGY)`` ``--repeats`` times, after an untimed replay of the trace's first
``WARM_UP_HOPS`` hops (a process's first replay pays ~0.03 s for lazy imports and first calls). A
1x child replays the trace once over, a Kx child ``--copies`` shifted copies (copy k shifted by k
times the trace's span). ``--processes`` pairs of children run per strategy, alternating 1x and Kx,
and each figure is the best over every replay of its children: a process's memory layout (ASLR,
allocator state) moves its replay times by up to ~10 % for all of its repeats, so the best of
several processes, not of several repeats in one, is what measures the code. Each child prints one JSON line:

* the wall seconds of every ``replay()`` call (``time.perf_counter`` around the call: event loop
  and result frames), and the simulator's own ``summary["wall_s"]`` (event loop only: the "loop"
  columns);
* ``resource.getrusage(RUSAGE_SELF).ru_maxrss`` after loading the trace, the warm-up and (Kx)
  replicating, the baseline, and after the first timed replay: the peak. Growth = peak - baseline. The children are
  forked from a bare launcher interpreter (``_LAUNCH``), so their ``ru_maxrss`` does not start at
  this (trace-holding) process's RSS. Memory figures are those of the first child of each kind.

Targets: 1x replay at >= 10,000 hops simulated per second for every strategy; Kx time at most
1.1 x K times the 1x time (11x for the default 10 copies). Each gets PASS/FAIL; the script exits 0
whatever they say (it reports; the tests do not assert performance) and 1 only if a child fails.

Peer, timed in this process on the same trace (best of ``max(--repeats, 10)`` passes of ~10 ms):
the bare "cache ratio" loop the Mooncake paper's hit ratio comes from -- one pass over the hops with a
Python set of seen block hashes, a hop's hit tokens = min(hit blocks x block size, prompt tokens) (the
computation of ``tests/test_mooncake.py::test_synthetic_trace_prefix_hit_ratio``). "Overhead x" is a
strategy's replay seconds over that loop's seconds. "Real time x" is the trace span in simulated seconds
over the replay's wall seconds. The default run takes about three minutes on two cores.
"""

from __future__ import annotations

import argparse
import dataclasses
import gc
import json
import os
import platform
import resource
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from agentgraph.model import Trace

REPO = Path(__file__).resolve().parents[1]
TRACE = REPO / "fixtures" / "mooncake" / "synthetic_trace.jsonl"
MIN_HOPS_PER_S = 10_000.0
SCALE_SLACK = 1.1  # Kx replay may take up to SCALE_SLACK * K times the 1x replay
PEER = "bare cache-ratio loop"
WARM_UP_HOPS = 200  # small enough that the warm-up's memory peak stays below the measured replay's

_LAUNCH = """import os, sys
pid = os.fork()
if pid == 0:
    os.execv(sys.argv[1], sys.argv[1:])
_, status = os.waitpid(pid, 0)
sys.exit(os.waitstatus_to_exitcode(status))
"""
"""Forks the child from a bare interpreter: a child's ``ru_maxrss`` starts at the RSS of the process
it was forked from, so forking from this (trace-holding) process would inflate its baseline."""


# --------------------------------------------------------------------------- child: one strategy


def load(path: Path) -> Trace:
    from agentgraph.sources import import_paths

    return import_paths([path]).trace


def span_s(trace: Trace) -> float:
    """Simulated seconds from the first hop's start to the last hop's end."""
    hops = trace.hop_list
    return max(h.end_s for h in hops) - min(h.start_s for h in hops) if hops else 0.0


def head(trace: Trace, n: int) -> Trace:
    """The first ``n`` hops of ``trace`` and the edges between them."""
    hops = trace.hop_list[:n]
    ids, sessions = {h.hop_id for h in hops}, {h.session_id for h in hops}
    edges = tuple(e for e in trace.edges if e.src in ids and e.dst in ids)
    agents = tuple(a for a in trace.agents if a.session_id in sessions)
    return dataclasses.replace(trace, hop_list=hops, edges=edges, agents=agents)


def _maxrss_kib() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss  # KiB on Linux


def one(path: Path, strategy: str, copies: int, repeats: int) -> dict[str, Any]:
    """Replay ``copies`` copies of the trace under ``strategy`` ``repeats`` times, in this process."""
    import schedulers

    trace = load(path)
    schedulers.replay(head(trace, WARM_UP_HOPS), schedulers.DEFAULT_CLUSTER, strategy)  # untimed
    if copies > 1:
        trace = schedulers.replicate(trace, copies)
    gc.collect()
    base = _maxrss_kib()
    seconds: list[float] = []
    loop_s: list[float] = []
    peak = base
    summary: dict[str, Any] = {}
    for i in range(repeats):
        t0 = time.perf_counter()
        result = schedulers.replay(trace, schedulers.DEFAULT_CLUSTER, strategy)
        seconds.append(time.perf_counter() - t0)
        summary = result.summary
        loop_s.append(float(summary["wall_s"]))
        if i == 0:
            peak = _maxrss_kib()
        del result
        gc.collect()
    return {"strategy": strategy, "copies": copies, "hops": int(summary["hops"]), "span_s": span_s(trace),
            "seconds": seconds, "loop_seconds": loop_s, "rss_base_kib": base, "rss_peak_kib": peak,
            "hit_rate": summary["hit_rate"], "session_e2e_p99_s": summary["session_e2e_p99_s"]}


# --------------------------------------------------------------------------- parent


def bare_loop(trace: Trace) -> tuple[int, int]:
    """The cache-ratio loop (as ``test_synthetic_trace_prefix_hit_ratio``): (hit tokens, prompt tokens)."""
    seen: set[int] = set()
    hit_tokens = total = 0
    block = trace.block_size
    for hop in trace:
        hits = sum(1 for h in hop.hash_ids if h in seen)
        hit_tokens += min(hits * block, hop.prompt_tokens)
        total += hop.prompt_tokens
        seen.update(hop.hash_ids)
    return hit_tokens, total


def time_bare(trace: Trace, repeats: int) -> tuple[float, float]:
    """Best seconds of ``repeats`` passes of :func:`bare_loop`, and its hit ratio."""
    best = float("inf")
    hit = total = 0
    for _ in range(repeats):
        t0 = time.perf_counter()
        hit, total = bare_loop(trace)
        best = min(best, time.perf_counter() - t0)
    return best, hit / total if total else 0.0


def run_child(path: Path, strategy: str, copies: int, repeats: int) -> dict[str, Any]:
    cmd = [sys.executable, "-S", "-I", "-c", _LAUNCH, sys.executable, str(Path(__file__).resolve()),
           "--trace", str(path), "--one", strategy, "--copies", str(copies), "--repeats", str(repeats)]
    proc = subprocess.run(cmd, capture_output=True, text=True, check=False, cwd=REPO)
    if proc.returncode != 0:
        raise RuntimeError(f"child {strategy} x{copies} failed ({proc.returncode}):\n{proc.stderr.strip()}")
    out: dict[str, Any] = json.loads(proc.stdout.strip().splitlines()[-1])
    return out


@dataclass(frozen=True, slots=True)
class Row:
    strategy: str
    hops: int
    seconds: float  # best 1x replay() wall seconds
    loop_seconds: float  # best 1x summary["wall_s"] (event loop only)
    hops_per_s: float
    overhead: float  # seconds / bare loop seconds
    real_time: float  # trace span / seconds
    rss_growth_mib: float
    rss_peak_mib: float
    k_hops: int
    k_seconds: float
    k_hops_per_s: float
    k_rss_growth_mib: float
    k_rss_peak_mib: float
    scale: float  # k_seconds / seconds
    loop_scale: float  # the same for the event loop alone (summary["wall_s"])
    hit_rate: float
    speed_pass: bool
    scale_pass: bool


def best(children: list[dict[str, Any]], key: str) -> float:
    """The smallest of ``key``'s seconds over every replay of ``children``."""
    return float(min(min(c[key]) for c in children))


def make_row(small: list[dict[str, Any]], big: list[dict[str, Any]], bare_s: float, copies: int) -> Row:
    """One strategy's row from its 1x and Kx children: best times over all of them, the first's memory."""
    s, ks = best(small, "seconds"), best(big, "seconds")
    loop_s, k_loop_s = best(small, "loop_seconds"), best(big, "loop_seconds")
    one_x, k_x = small[0], big[0]
    mib = 1 / 1024
    hps = one_x["hops"] / s
    return Row(one_x["strategy"], one_x["hops"], s, loop_s, hps, s / bare_s,
               one_x["span_s"] / s, (one_x["rss_peak_kib"] - one_x["rss_base_kib"]) * mib,
               one_x["rss_peak_kib"] * mib, k_x["hops"], ks, k_x["hops"] / ks,
               (k_x["rss_peak_kib"] - k_x["rss_base_kib"]) * mib, k_x["rss_peak_kib"] * mib, ks / s, k_loop_s / loop_s,
               float(one_x["hit_rate"]), hps >= MIN_HOPS_PER_S, ks / s <= SCALE_SLACK * copies)


def machine() -> dict[str, Any]:
    python = f"{platform.python_implementation()} {platform.python_version()}"
    return {"processor": platform.processor() or platform.machine(), "cpus": os.cpu_count(),
            "platform": platform.platform(), "python": python, "loadavg_start": list(os.getloadavg())}


def report(info: dict[str, Any], rows: list[Row], copies: int) -> None:
    print(f"machine: {info['processor']}, {info['cpus']} CPUs, {info['platform']}, {info['python']}")
    print(f"trace: {info['trace']} ({info['hops']:,} hops, span {info['span_s']:,.0f} simulated s); "
          f"cluster: DEFAULT_CLUSTER ({info['nodes']} nodes); best of {info['processes']} processes x "
          f"{info['repeats']} replays")
    print(f"peer: {PEER}, {info['bare_s'] * 1e3:.1f} ms for 1x ({info['hops'] / info['bare_s']:,.0f} hops/s, "
          f"hit ratio {info['bare_hit_ratio']:.3f}), {info['bare_k_s'] * 1e3:.1f} ms for {copies}x")
    print(f"load average at start / end: {info['loadavg_start'][0]:.2f} / {info['loadavg_end'][0]:.2f}\n")
    limit = SCALE_SLACK * copies
    head = (f"{'strategy':<19} {'1x s':>6} {'hops/s':>8} {'loop s':>6} {'overhead':>8} {'real time':>9} "
            f"{'RSS +MiB':>8} {'peak':>5} {f'{copies}x s':>7} {f'{copies}x/1x':>7} {'loop':>6} {f'{copies}x +MiB':>8} "
            f"{'hit rate':>8}  {'>=10k/s':<7} {f'<={limit:g}x':<7}")
    print(head)
    print("-" * len(head))
    for r in rows:
        print(f"{r.strategy:<19} {r.seconds:>6.3f} {r.hops_per_s:>8,.0f} {r.loop_seconds:>6.3f} "
              f"{r.overhead:>7.1f}x {r.real_time:>8,.0f}x {r.rss_growth_mib:>8.1f} {r.rss_peak_mib:>5.0f} "
              f"{r.k_seconds:>7.2f} {r.scale:>6.2f}x {r.loop_scale:>5.2f}x {r.k_rss_growth_mib:>8.1f} "
              f"{r.hit_rate:>8.3f}  {'PASS' if r.speed_pass else 'FAIL':<7} {'PASS' if r.scale_pass else 'FAIL':<7}")
    slow = min(rows, key=lambda r: r.hops_per_s)
    print(f"\nslowest: {slow.strategy}, {slow.hops_per_s:,.0f} hops/s, {slow.overhead:.1f}x the {PEER}")
    print(f"targets: hops/s >= {MIN_HOPS_PER_S:,.0f} {sum(r.speed_pass for r in rows)}/{len(rows)} PASS; "
          f"{copies}x time <= {limit:g}x the 1x time {sum(r.scale_pass for r in rows)}/{len(rows)} PASS")


def main(argv: list[str] | None = None) -> int:
    assert __doc__ is not None
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=2, help="replays per child process (default 2)")
    ap.add_argument("--processes", type=int, default=3,
                    help="child processes per strategy and size, best replay kept (default 3)")
    ap.add_argument("--copies", type=int, default=10, help="shifted copies for the scaling run (default 10)")
    ap.add_argument("--strategies", help="comma-separated strategy names (default: every one in STRATEGIES)")
    ap.add_argument("--json", action="store_true", help="print the figures as JSON instead of a table")
    ap.add_argument("--trace", type=Path, default=TRACE, help=f"trace to replay (default {TRACE})")
    ap.add_argument("--one", metavar="STRATEGY", help=argparse.SUPPRESS)  # child mode: one JSON line
    args = ap.parse_args(argv)
    if args.repeats < 1 or args.copies < 1 or args.processes < 1:
        ap.error("--repeats, --processes and --copies must be at least 1")
    if not args.trace.exists():
        print(f"trace not found: {args.trace}", file=sys.stderr)
        return 1
    if args.one:
        print(json.dumps(one(args.trace, args.one, args.copies, args.repeats)))
        return 0

    import schedulers

    names = args.strategies.split(",") if args.strategies else list(schedulers.STRATEGIES)
    unknown = [n for n in names if n not in schedulers.STRATEGIES]
    if unknown:
        ap.error(f"unknown strategies {unknown}; known: {', '.join(schedulers.STRATEGIES)}")
    info = machine()
    t0 = time.perf_counter()
    trace = load(args.trace)
    big = schedulers.replicate(trace, args.copies) if args.copies > 1 else trace
    bare_repeats = max(args.repeats, 10)  # ~10 ms a pass: more passes than replays for a stable best
    bare_s, ratio = time_bare(trace, bare_repeats)
    bare_k_s, _ = time_bare(big, bare_repeats)
    del big
    info |= {"trace": str(args.trace), "hops": len(trace), "span_s": span_s(trace),
             "nodes": schedulers.DEFAULT_CLUSTER.nodes, "repeats": args.repeats,
             "processes": args.processes, "copies": args.copies,
             "bare_s": bare_s, "bare_k_s": bare_k_s, "bare_hit_ratio": ratio}
    rows: list[Row] = []
    children: list[dict[str, Any]] = []
    try:
        for name in names:
            runs = [run_child(args.trace, name, k, args.repeats)
                    for _ in range(args.processes) for k in (1, args.copies)]
            children += runs
            rows.append(make_row(runs[0::2], runs[1::2], bare_s, args.copies))
            if not args.json:
                print(f"  {name}: {rows[-1].hops_per_s:,.0f} hops/s", file=sys.stderr, flush=True)
    except RuntimeError as exc:
        print(exc, file=sys.stderr)
        return 1
    info["loadavg_end"] = list(os.getloadavg())
    info["seconds"] = round(time.perf_counter() - t0, 1)
    if args.json:
        print(json.dumps({"machine": info, "targets": {"min_hops_per_s": MIN_HOPS_PER_S,
                                                       "max_scale": SCALE_SLACK * args.copies},
                          "rows": [{k: getattr(r, k) for k in Row.__slots__} for r in rows],
                          "children": children}, indent=1))
    else:
        report(info, rows, args.copies)
        print(f"\n(total {info['seconds']} s)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
