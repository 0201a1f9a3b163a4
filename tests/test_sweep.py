"""``agentgraph sweep``: a grid of replays as one frame, the same bytes from every backend."""

from __future__ import annotations

import concurrent.futures
import itertools
import json
import sys
import time
from pathlib import Path
from typing import Any, ClassVar

import polars as pl
import pytest
from polars.testing import assert_frame_equal

from agentgraph.errors import UsageError
from agentgraph.model import Trace
from schedulers.cli import main
from schedulers.cluster import DEFAULT_CLUSTER, MODELS, Capacity, ClusterSpec
from schedulers.metrics import SUMMARY_KEYS
from schedulers.simulator import replay
from schedulers.sweep import GRID_COLUMNS, METRIC_COLUMNS, RAY_MISSING, SWEEP_SCHEMA, grid, sweep
from schedulers.workloads import replicate

ROOT = Path(__file__).resolve().parents[1]
REPLAYS = str(ROOT / "replays")
GRID: dict[str, Any] = {"strategies": ["round_robin", "random", "topology_aware"], "nodes": [2, 4],
                        "kv_capacity_tokens": ["unlimited", 20000], "rates": [None, 0.5], "seeds": [0, 1]}
"""3 × 2 × 2 × 2 × 2 = 48 combinations, about 0.6 s in one process."""
DEFAULT_KV = 426788  # tokens per node of DEFAULT_CLUSTER (H100 80 GB − 10 % − Llama-3-8B weights)


@pytest.fixture(scope="module")
def frame_1(replays_trace: Trace) -> pl.DataFrame:
    """The small grid swept in this process (workers=1)."""
    return sweep(replays_trace, **GRID, workers=1)


def without_wall(df: pl.DataFrame) -> pl.DataFrame:
    return df.drop("wall_s")


def assert_same_bytes(a: pl.DataFrame, b: pl.DataFrame) -> None:
    """Equal frames, floats compared exactly, and equal CSV text: wall_s is the only difference allowed."""
    assert_frame_equal(without_wall(a), without_wall(b), check_exact=True)
    assert without_wall(a).write_csv() == without_wall(b).write_csv()


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


# --------------------------------------------------------------------------- the frame


def test_columns_are_the_grid_then_every_other_summary_key() -> None:
    """The schema: six grid columns, then SUMMARY_KEYS minus the ones the grid already has, in order."""
    assert tuple(SWEEP_SCHEMA) == GRID_COLUMNS + METRIC_COLUMNS
    assert tuple(k for k in SUMMARY_KEYS if k not in {"strategy", "nodes", "seed"}) == METRIC_COLUMNS
    assert METRIC_COLUMNS[0] == "cluster" and METRIC_COLUMNS[-1] == "wall_s"


def test_rows_follow_the_grid_order(frame_1: pl.DataFrame) -> None:
    """One row per combination, strategy outermost and seed innermost."""
    assert frame_1.schema == pl.Schema(SWEEP_SCHEMA)
    expected = [(s, n, str(k), None if k == "unlimited" else k, r, seed)
                for s, n, k, r, seed in itertools.product(*GRID.values())]
    assert frame_1.select(GRID_COLUMNS).rows() == expected
    assert expected[:3] == [("round_robin", 2, "unlimited", None, None, 0),
                            ("round_robin", 2, "unlimited", None, None, 1),
                            ("round_robin", 2, "unlimited", None, 0.5, 0)]
    assert frame_1.height == 48 and set(frame_1["sessions"]) == {9} and set(frame_1["hops"]) == {72}


def test_each_row_is_the_replay_of_its_combination(replays_trace: Trace, frame_1: pl.DataFrame) -> None:
    """Every metric equals a direct replay() of the same strategy, cluster, rate and seed."""
    for row in frame_1.iter_rows(named=True):
        cap: Capacity = "unlimited" if row["kv_capacity"] == "unlimited" else int(row["kv_capacity"])
        spec = DEFAULT_CLUSTER.with_overrides(row["nodes"], cap)
        summary = replay(replays_trace, spec, row["strategy"], seed=row["seed"], rate=row["rate"]).summary
        assert {k: row[k] for k in SUMMARY_KEYS if k != "wall_s"} == {k: v for k, v in summary.items() if k != "wall_s"}
    assert all(w > 0 for w in frame_1["wall_s"])


def test_defaults_keep_the_clusters_values(replays_trace: Trace) -> None:
    """Without nodes / capacities / rates: the cluster's node count and 'auto' capacity, the trace's timestamps."""
    df = sweep(replays_trace, strategies=["least_loaded"], workers=1)
    assert df.select(GRID_COLUMNS).rows() == [("least_loaded", 8, "auto", DEFAULT_KV, None, 0)]
    spec = ClusterSpec(name="tiny", nodes=3, kv_capacity_tokens=9000)
    df = sweep(replays_trace, spec, strategies="random", kv_capacity_tokens=[None, "auto"], workers=1)
    assert df.select(*GRID_COLUMNS, "cluster").rows() == [("random", 3, "9000", 9000, None, 0, "tiny"),
                                                          ("random", 3, "auto", DEFAULT_KV, None, 0, "tiny")]


def test_copies_and_time_scale_apply_to_every_combination(replays_trace: Trace) -> None:
    """copies=K replays replicate(trace, K); time_scale stretches its timestamps."""
    df = sweep(replays_trace, strategies=["session_affinity", "dynamo_kv"], copies=2, time_scale=0.5, workers=1)
    doubled = replicate(replays_trace, 2)
    for row in df.iter_rows(named=True):
        summary = replay(doubled, DEFAULT_CLUSTER, row["strategy"], time_scale=0.5).summary
        assert (row["sessions"], row["hops"]) == (18, 144)
        assert row["session_e2e_p99_s"] == summary["session_e2e_p99_s"] and row["cost_usd"] == summary["cost_usd"]


def test_seeds_change_random_choices(frame_1: pl.DataFrame) -> None:
    """Seeds are a real axis: random placement under seed 0 and 1 differs, round-robin does not."""
    def by_seed(strategy: str) -> list[list[int]]:
        rows = frame_1.filter(pl.col("strategy") == strategy, pl.col("rate").is_null())
        return [rows.filter(pl.col("seed") == s)["cached_tokens"].to_list() for s in (0, 1)]

    random0, random1 = by_seed("random")
    assert random0 != random1
    rr0, rr1 = by_seed("round_robin")
    assert rr0 == rr1


def test_parquet_round_trip(frame_1: pl.DataFrame, tmp_path: Path) -> None:
    """write_parquet then read_parquet gives the frame back, types and nulls included."""
    frame_1.write_parquet(tmp_path / "s.parquet")
    assert_frame_equal(pl.read_parquet(tmp_path / "s.parquet"), frame_1, check_exact=True)


# --------------------------------------------------------------------------- backends


class SpyPool(concurrent.futures.ProcessPoolExecutor):
    """The real pool, recording how it was built."""

    made: ClassVar[list[dict[str, Any]]] = []

    def __init__(self, max_workers: int, **kw: Any) -> None:
        SpyPool.made.append({"workers": max_workers, "start": kw["mp_context"].get_start_method(),
                             "initargs": kw["initargs"]})
        super().__init__(max_workers, **kw)


def test_process_pool_gives_the_same_bytes(replays_trace: Trace, frame_1: pl.DataFrame,
                                           monkeypatch: pytest.MonkeyPatch) -> None:
    """workers=2: spawned processes, the trace sent once per worker, rows identical to workers=1."""
    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", SpyPool)
    SpyPool.made.clear()
    assert_same_bytes(sweep(replays_trace, **GRID, workers=2), frame_1)
    assert SpyPool.made == [{"workers": 2, "start": "spawn", "initargs": (replays_trace,)}]


def test_one_worker_or_one_combination_runs_in_process(replays_trace: Trace, monkeypatch: pytest.MonkeyPatch) -> None:
    """No pool for workers=1 or for a grid of one combination."""
    def no_pool(*args: Any, **kw: Any) -> None:
        raise AssertionError("a pool was started")

    monkeypatch.setattr(concurrent.futures, "ProcessPoolExecutor", no_pool)
    assert sweep(replays_trace, strategies=["random"], workers=8).height == 1
    assert sweep(replays_trace, strategies=["random", "round_robin"], workers=1).height == 2


def test_ray_backend_gives_the_same_bytes(replays_trace: Trace, frame_1: pl.DataFrame,
                                          capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch) -> None:
    """backend="ray" on a real local Ray instance: rows identical to workers=1; the instance the sweep
    started is shut down, one that was already running is kept (and the CLI uses it)."""
    import ray

    assert not ray.is_initialized()
    start = time.perf_counter()
    by_ray = sweep(replays_trace, **GRID, workers=2, backend="ray")
    started_own_s = time.perf_counter() - start
    assert_same_bytes(by_ray, frame_1)
    assert not ray.is_initialized()

    monkeypatch.setenv("RAY_USAGE_STATS_ENABLED", "0")  # offline
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False)
    try:
        code, out, _ = run(capsys, "sweep", REPLAYS, "--strategies", "round_robin,random,topology_aware",
                           "--nodes", "2,4", "--kv-capacity-tokens", "unlimited,20000", "--rates", "trace,0.5",
                           "--seeds", "0,1", "--backend", "ray", "--json")
        assert ray.is_initialized()
    finally:
        ray.shutdown()
    assert code == 0
    assert [{k: v for k, v in r.items() if k != "wall_s"} for r in json.loads(out)["rows"]] == \
        without_wall(frame_1).to_dicts()
    print(f"ray sweep with its own local instance: {started_own_s:.1f} s")  # shown with pytest -s


def test_ray_missing_is_a_usage_error(replays_trace: Trace, monkeypatch: pytest.MonkeyPatch,
                                      capsys: pytest.CaptureFixture[str]) -> None:
    """Without Ray installed, --backend ray says how to install it (exit 2)."""
    monkeypatch.setitem(sys.modules, "ray", None)  # `import ray` now raises ImportError
    with pytest.raises(UsageError, match=r"pip install 'agentgraph\[ray\]'"):
        sweep(replays_trace, strategies=["random"], backend="ray")
    code, out, err = run(capsys, "sweep", REPLAYS, "--strategies", "random", "--backend", "ray")
    assert (code, out, err) == (2, "", f"error: {RAY_MISSING}\n")


# --------------------------------------------------------------------------- bad parameters


@pytest.mark.parametrize(("kw", "message"), [
    ({"strategies": ["nope"]}, "unknown strategy 'nope'; choose from: dynamo_kv, "),
    ({"strategies": []}, "strategies is empty"),
    ({"nodes": [4, 0]}, "nodes: expected a positive integer, not 0"),
    ({"kv_capacity_tokens": [-5]}, "kv_capacity_tokens must be a positive token count"),
    ({"rates": [1.0, 0.0]}, "rates: expected a positive finite number, not 0.0"),
    ({"rates": [float("inf")]}, "rates: expected a positive finite number, not inf"),
    ({"seeds": [-1]}, "seeds: expected an integer in 0..18446744073709551615, not -1"),
    ({"seeds": []}, "seeds is empty"),
    ({"copies": 0}, "copies: expected a positive integer, not 0"),
    ({"time_scale": 0}, "time_scale: expected a positive finite number, not 0"),
    ({"workers": 0}, "workers: expected a positive integer, not 0"),
    ({"backend": "dask"}, "backend must be one of local, ray, not 'dask'"),
    ({"ray_address": "auto"}, "a Ray address needs --backend ray"),
])
def test_bad_parameters_raise_usage_errors(replays_trace: Trace, kw: dict[str, Any], message: str) -> None:
    """Every parameter is checked before any replay runs, and the error names it."""
    args = {"strategies": ["random"], **kw}
    with pytest.raises(UsageError) as info:
        sweep(replays_trace, **args)
    assert message in str(info.value)


def test_a_capacity_the_cluster_cannot_hold_fails_up_front() -> None:
    """70B weights do not fit on one H100: 'auto' fails in grid(), an explicit capacity works."""
    spec = ClusterSpec(model=MODELS["llama-3-70b"])
    with pytest.raises(UsageError, match=r"weights \(\d+ GB\) do not fit"):
        grid(spec, ["random"], kv_capacity_tokens=[100_000, "auto"])
    assert [c.spec.kv_capacity_tokens_per_node() for c in grid(spec, ["random"], kv_capacity_tokens=[100_000])] == [
        100_000]


# --------------------------------------------------------------------------- command line

SMALL = ("--strategies", "round_robin,topology_aware", "--nodes", "2,4", "--kv-capacity-tokens", "auto,20000",
         "--workers", "1")


def test_cli_table(capsys: pytest.CaptureFixture[str], replays_trace: Trace) -> None:
    """A header, a column line and one line per combination, in grid order; timing goes to stderr."""
    code, out, err = run(capsys, "sweep", REPLAYS, *SMALL)
    assert code == 0
    lines = out.splitlines()
    assert lines[0] == "9 session(s), 72 hops on cluster default: 8 combination(s)"
    assert lines[1].split() == ["strategy", "nodes", "kv_capacity", "kv_tokens", "rate", "seed", "hit_rate",
                                "reprefill_tok", "ttft_p99_s", "e2e_p50_s", "e2e_p99_s", "$/session"]
    df = sweep(replays_trace, strategies=["round_robin", "topology_aware"], nodes=[2, 4],
               kv_capacity_tokens=["auto", 20000], workers=1)
    cells = [line.split() for line in lines[2:]]
    assert [c[:6] for c in cells] == [[s, str(n), k, str(t), "trace", "0"] for s, n, k, t, _, _ in
                                      df.select(GRID_COLUMNS).rows()]
    assert [c[6] for c in cells] == [f"{h:.3f}" for h in df["hit_rate"]]
    assert [c[-1] for c in cells] == [f"{v:.4f}" for v in df["cost_per_session_usd"]]
    assert err.startswith("swept 8 combination(s) in ") and err.endswith(" s (1 process(es))\n")


def test_cli_json_and_output_files(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """--json prints {"rows": [...]} with the frame's columns; -o writes the same rows as Parquet or CSV."""
    code, out, _ = run(capsys, "sweep", REPLAYS, *SMALL, "--json", "-o", str(tmp_path / "s.parquet"))
    assert code == 0
    doc = json.loads(out)
    assert list(doc) == ["rows"] and len(doc["rows"]) == 8
    assert all(list(r) == list(SWEEP_SCHEMA) for r in doc["rows"])
    parquet = pl.read_parquet(tmp_path / "s.parquet")
    assert parquet.schema == pl.Schema(SWEEP_SCHEMA)
    assert parquet.to_dicts() == doc["rows"]

    csv_path = tmp_path / "new" / "s.csv"  # -o creates the folder
    code, out, _ = run(capsys, "sweep", REPLAYS, *SMALL, "-o", str(csv_path))
    assert code == 0 and out.splitlines()[-1] == f"8 row(s) -> {csv_path}"
    csv = pl.read_csv(csv_path, schema=SWEEP_SCHEMA)
    assert_same_bytes(csv, parquet)


@pytest.mark.parametrize(("argv", "message"), [
    (["--nodes", "4,x"], "argument --nodes: expected an integer in 1..4096, got 'x' (in '4,x')"),
    (["--rates", "0"], "argument --rates: expected a number in [1e-06, 1e+06], got 0 (in '0')"),
    (["--rates", "0.5,fast"], "argument --rates: expected a number in [1e-06, 1e+06], got 'fast' (in '0.5,fast')"),
    (["--strategies", "random,nope"], "argument --strategies: unknown strategy 'nope'; choose from: dynamo_kv"),
    (["--kv-capacity-tokens", "100000,lots"], "argument --kv-capacity-tokens: a capacity must be a positive "
                                              "token count, 'auto' or 'unlimited', not 'lots' (in '100000,lots')"),
    (["--seeds", "0,-2"], "argument --seeds: expected an integer in 0..18446744073709551615, got -2 (in '0,-2')"),
    (["--nodes", ","], "argument --nodes: expected comma-separated values with none empty, got ','"),
    (["--workers", "0"], "argument --workers: expected a positive integer, got 0"),
    (["--backend", "dask"], "argument --backend: invalid choice: 'dask'"),
    (["-o", "out.json"], "error: -o out.json: the file name must end in .parquet or .csv"),
    (["--ray-address", "auto"], "error: a Ray address needs --backend ray"),
])
def test_cli_bad_values_exit_2_with_the_option_named(capsys: pytest.CaptureFixture[str], argv: list[str],
                                                     message: str) -> None:
    """Bad list values and output names: exit 2, one message naming the option and the value, no traceback."""
    code, out, err = run(capsys, "sweep", REPLAYS, *argv)
    assert (code, out) == (2, "")
    assert message in err and "Traceback" not in err


def test_cli_weights_that_do_not_fit_fail_before_loading(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A cluster file whose 'auto' capacity is impossible fails with exit 2 even for a missing trace."""
    f = tmp_path / "big.toml"
    f.write_text('model = "llama-3-70b"\n')
    code, _, err = run(capsys, "sweep", str(tmp_path / "missing.trace"), "--cluster", str(f))
    assert code == 2 and "do not fit" in err


def test_cli_help_documents_every_option(capsys: pytest.CaptureFixture[str]) -> None:
    """--help exits 0 and lists every option with its text."""
    code, out, _ = run(capsys, "sweep", "--help")
    assert code == 0
    for option in ("--cluster", "--strategies", "--nodes", "--kv-capacity-tokens", "--rates", "--seeds", "--copies",
                   "--time-scale", "--workers", "--backend", "--ray-address", "--output", "--json"):
        assert option in out
    assert "'trace' = the trace's timestamps" in " ".join(out.split())


def test_sweep_output_problems_fail_before_the_sweep(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-o naming a folder, or a place that cannot be written, exits 2 naming the path, without replaying."""
    (tmp_path / "adir.parquet").mkdir()
    (tmp_path / "afile").write_text("x")
    for target, message in ((tmp_path / "adir.parquet", "Is a directory"),
                            (tmp_path / "afile" / "x.csv", "Not a directory")):
        assert main(["sweep", str(ROOT / "replays"), "--strategies", "random", "-o", str(target)]) == 2
        assert capsys.readouterr() == ("", f"error: {target}: {message}\n")


def test_a_failed_sweep_leaves_no_output_file(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    """-o is checked before the sweep, but the check leaves no empty file behind when the sweep then
    fails; an existing file is left as it was."""
    import schedulers.sweep as sweep_module

    def fail(*args: object, **kwargs: object) -> pl.DataFrame:
        raise UsageError("the sweep failed")

    monkeypatch.setattr(sweep_module, "_run", fail)
    new, old, link = tmp_path / "new.parquet", tmp_path / "old.csv", tmp_path / "link.csv"
    old.write_text("kept\n")
    link.symlink_to(old)
    for target in (new, old, link):
        assert main(["sweep", REPLAYS, "--strategies", "random", "-o", str(target)]) == 2
        assert capsys.readouterr().err == "error: the sweep failed\n"
    assert not new.exists() and old.read_text() == "kept\n" and link.is_symlink()


def test_an_unreachable_ray_address_fails_fast(replays_trace: Trace, capsys: pytest.CaptureFixture[str],
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """A host:port nothing listens on is a usage error at once (ray.init would retry for minutes),
    named after where the address came from."""
    pytest.importorskip("ray")
    import socket

    with socket.socket() as s:  # a port that was free a moment ago: connections are refused
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    t0 = time.perf_counter()
    with pytest.raises(UsageError, match=rf"^--ray-address ray://127.0.0.1:{port}: cannot connect \(.*refused"):
        sweep(replays_trace, strategies=["random"], backend="ray", ray_address=f"ray://127.0.0.1:{port}")
    with pytest.raises(UsageError, match=r"^--ray-address 127.0.0.1:99999: port 99999 is out of range"):
        sweep(replays_trace, strategies=["random"], backend="ray", ray_address="127.0.0.1:99999")
    monkeypatch.setenv("RAY_ADDRESS", f"127.0.0.1:{port}")
    code, out, err = run(capsys, "sweep", REPLAYS, "--strategies", "random", "--backend", "ray")
    assert (code, out) == (2, "")
    assert err.startswith(f"error: $RAY_ADDRESS 127.0.0.1:{port}: cannot connect (")
    assert time.perf_counter() - t0 < 5
