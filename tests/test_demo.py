"""``agentgraph demo``: the table, the report folder, determinism, and the progress bar rule."""

from __future__ import annotations

import contextlib
import dataclasses
import io
import json
import os
import shutil
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from agentgraph.model import Trace
from schedulers.cli import main
from schedulers.cluster import DEFAULT_CLUSTER
from schedulers.demo import BUNDLED_TRACE, bundled_replays, demo_sessions
from schedulers.strategies import STRATEGIES
from tests.terminal import on_a_terminal

ROOT = Path(__file__).resolve().parents[1]
REPORT_FILES = {"summary.json", "run.json", "sessions.csv", "hops.csv", "index.html", "latency_cdf.png",
                "hit_rate.png", "context_growth.png", "call_graph.png"}


def png_size(path: Path) -> tuple[int, int]:
    data = path.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n" and data[12:16] == b"IHDR", path
    width, height = struct.unpack(">II", data[16:24])
    return width, height


@pytest.fixture(scope="module")
def full_demo(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str, str]:
    """The README's command: every strategy, the default workload (40 copies at 1 session/s)."""
    out = tmp_path_factory.mktemp("demo") / "report"
    stdout, stderr = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(stdout), contextlib.redirect_stderr(stderr):
        code = main(["demo", "-o", str(out)])
    assert code == 0
    return out, stdout.getvalue(), stderr.getvalue()


def test_demo_prints_the_compare_table_for_every_strategy(full_demo: tuple[Path, str, str],
                                                          capsys: pytest.CaptureFixture[str]) -> None:
    """Its table is exactly ``compare replays --copies 40 --rate 1``'s, then where the report is."""
    out, stdout, _ = full_demo
    assert main(["compare", str(ROOT / "replays"), "--copies", "40", "--rate", "1"]) == 0
    table = capsys.readouterr().out
    assert stdout == table + f"report -> {out / 'index.html'}\n"
    rows = [line.split()[0] for line in stdout.splitlines()[2:-1]]
    assert rows == list(STRATEGIES)
    assert stdout.splitlines()[1].split() == ["strategy", "hit_rate", "reprefill_tok", "transfer_tok", "ttft_p99_s",
                                              "e2e_p50_s", "e2e_p99_s", "max/mean", "$/session"]


def test_demo_writes_the_report_folder(full_demo: tuple[Path, str, str], capsys: pytest.CaptureFixture[str]) -> None:
    """Eight files; four real PNGs; summary.json is compare --json without wall_s; index.html shows
    every plot and every strategy."""
    out, _, stderr = full_demo
    assert {p.name for p in out.iterdir()} == REPORT_FILES
    for name in ("latency_cdf.png", "hit_rate.png", "context_growth.png", "call_graph.png"):
        width, height = png_size(out / name)
        assert width >= 600 and height >= 300, name
    summary = json.loads((out / "summary.json").read_text())
    assert main(["compare", str(ROOT / "replays"), "--copies", "40", "--rate", "1", "--json"]) == 0
    compared = json.loads(capsys.readouterr().out)
    for s in compared["strategies"].values():
        del s["wall_s"]
    assert summary == compared
    page = (out / "index.html").read_text()
    for name in ("latency_cdf.png", "hit_rate.png", "context_growth.png", "call_graph.png"):
        assert f'<img src="{name}"' in page
    assert all(f"<tr><th>{n}</th>" in page for n in STRATEGIES)
    assert page.count('class="best"') >= 8  # at least one best value per column
    sessions = (out / "sessions.csv").read_text().splitlines()
    assert sessions[0].startswith("strategy,session_id,") and len(sessions) == 1 + 360 * len(STRATEGIES)
    run = json.loads((out / "run.json").read_text())
    assert set(run["strategies"]) == set(STRATEGIES) and run["wall_s"] > 0
    assert stderr.startswith("demo: 10 strategies in ") and "%|" not in stderr  # not a terminal: no bar


def test_demo_is_byte_identical_for_the_same_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two runs: every file but run.json (wall seconds) is the same bytes; another seed is not."""
    args = ["demo", "--strategies", "round_robin,topology_aware", "--copies", "4"]
    for name, seed in (("a", "0"), ("b", "0"), ("c", "1")):
        assert main([*args, "-o", str(tmp_path / name), "--seed", seed]) == 0
    capsys.readouterr()
    for f in REPORT_FILES - {"run.json"}:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    assert (tmp_path / "a" / "summary.json").read_bytes() != (tmp_path / "c" / "summary.json").read_bytes()


def test_demo_sessions_are_the_longest_and_the_widest(replays_trace: Trace) -> None:
    """Context growth shows the 22-hop session; the call graph the one with 4 agents."""
    longest, widest = demo_sessions(replays_trace)
    assert longest.startswith("5e6e3a05") and widest.startswith("28b7fd19")
    assert bundled_replays() == ROOT / "replays"


def _demo_cmd(out: Path) -> list[str]:
    return [sys.executable, "-m", "schedulers.cli", "demo", "--strategies", "round_robin", "--copies", "2",
            "-o", str(out)]


def test_progress_bar_on_a_terminal_only(tmp_path: Path) -> None:
    """Under a pseudo-terminal the bar is drawn on stderr; with pipes (CI logs) it is not."""
    env = dict(os.environ)
    piped = subprocess.run(_demo_cmd(tmp_path / "piped"), capture_output=True, text=True, env=env, cwd=ROOT,
                           timeout=120, check=True)
    assert "%|" not in piped.stderr and "demo:" in piped.stderr

    seen = on_a_terminal(_demo_cmd(tmp_path / "tty"), env)
    assert b"demo:" in seen and b"%|" in seen, seen[-400:]


@pytest.mark.parametrize(("argv", "message"), [
    (["--strategies", "nope"], "unknown strategy 'nope'"),
    (["--strategies", ","], "--strategies is empty"),
    (["--rate", "-1"], "argument --rate: expected a number in [1e-06, 1e+06], got -1"),
    (["/nonexistent/trace.jsonl"], "/nonexistent/trace.jsonl"),
    (["--seed", "-1"], "argument --seed: expected an integer in 0..18446744073709551615, got -1"),
    (["--rate", "nan"], "argument --rate: expected a number in [1e-06, 1e+06], got nan"),
    (["--rate", "inf"], "argument --rate: expected a number in [1e-06, 1e+06], got inf"),
    (["-o", "FILE"], "error: FILE: Not a directory"),
])
def test_demo_bad_input_exits_2_with_a_message(argv: list[str], message: str, tmp_path: Path,
                                               capsys: pytest.CaptureFixture[str]) -> None:
    (tmp_path / "file").write_text("not a folder")
    argv = [str(tmp_path / "file") if a == "FILE" else a for a in argv]
    message = message.replace("FILE", str(tmp_path / "file"))
    assert main(["demo", "-o", str(tmp_path / "r"), *argv]) == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err


def test_run_demo_checks_its_arguments(replays_trace: Trace, tmp_path: Path) -> None:
    """The Python API refuses what the CLI refuses, before replaying anything."""
    from agentgraph.errors import UsageError
    from schedulers.demo import run_demo

    for kwargs in ({"strategies": []}, {"strategies": ["nope"]}, {"copies": 0}, {"seed": -1}, {"rate": 0.0}):
        with pytest.raises(UsageError):
            run_demo(replays_trace, out_dir=tmp_path / "r", progress=False, **kwargs)  # type: ignore[arg-type]
    assert not (tmp_path / "r").exists()


def test_the_packaged_trace_is_a_fresh_import_of_the_replays(tmp_path: Path,
                                                             capsys: pytest.CaptureFixture[str]) -> None:
    """schedulers/data/replays.trace (the demo's input without a checkout) is byte for byte what
    importing replays/ gives now: change the sessions or the importer and this says to refresh it."""
    fresh = tmp_path / "replays.trace"
    assert main(["import", str(ROOT / "replays"), "-o", str(fresh)]) == 0
    capsys.readouterr()
    assert fresh.read_bytes() == BUNDLED_TRACE.read_bytes(), (
        "schedulers/data/replays.trace is stale: run `agentgraph import replays -o schedulers/data/replays.trace`")


def test_demo_from_a_wheel_without_a_checkout(tmp_path: Path) -> None:
    """Build the wheel (offline, from a copy of the sources), install it into a bare folder and run
    the demo from elsewhere: it reads the packaged trace and writes the checkout demo's summary.json."""
    src, wheels, site, work = (tmp_path / d for d in ("src", "wheels", "site", "work"))
    for name in ("agentgraph", "schedulers"):
        shutil.copytree(ROOT / name, src / name, ignore=shutil.ignore_patterns("__pycache__"))
    for name in ("pyproject.toml", "README.md"):
        shutil.copy(ROOT / name, src / name)
    pytest.importorskip("pip", reason="builds the wheel with pip")

    def run(*argv: str, cwd: Path = tmp_path, env: dict[str, str] | None = None) -> str:
        proc = subprocess.run(argv, cwd=cwd, env=env, capture_output=True, text=True, check=False)
        assert proc.returncode == 0, f"{' '.join(argv)} exited {proc.returncode}:\n{proc.stderr}"
        return proc.stdout

    pip = [sys.executable, "-m", "pip", "-q", "--disable-pip-version-check"]
    run(*pip, "wheel", "--no-deps", "--no-index", "--no-build-isolation", "-w", str(wheels), str(src))
    (wheel,) = wheels.glob("agentgraph-*.whl")
    run(*pip, "install", "--no-deps", "--no-index", "--target", str(site), str(wheel))
    work.mkdir()
    env = {**os.environ, "PYTHONPATH": str(site)}
    where = run(sys.executable, "-c", "import schedulers.demo as d; print(d.bundled_replays())", cwd=work, env=env)
    assert where.strip() == str(site / "schedulers" / "data" / "replays.trace")
    args = ["demo", "--strategies", "round_robin,topology_aware", "--copies", "2"]
    run(sys.executable, "-m", "schedulers.cli", *args, "-o", "report", cwd=work, env=env)
    with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
        assert main([*args, "-o", str(tmp_path / "checkout")]) == 0
    assert (work / "report" / "summary.json").read_bytes() == (tmp_path / "checkout" / "summary.json").read_bytes()
    # the report template ships in the wheel: the page is the checkout's
    assert (site / "schedulers" / "templates" / "index.html.j2").is_file()
    assert (work / "report" / "index.html").read_bytes() == (tmp_path / "checkout" / "index.html").read_bytes()


def test_report_page_escapes_every_value() -> None:
    """index.html comes from the autoescaped template: a strategy or model name with markup in it
    is shown as text, with html.escape's entities."""
    from schedulers.cli import TABLE
    from schedulers.demo import _html

    summary = {k: 1 for k, _, _ in TABLE} | {"hit_rate": 0.5, "ttft_p99_s": None, "sessions": 2, "hops": 9}
    spec = dataclasses.replace(DEFAULT_CLUSTER, model=dataclasses.replace(DEFAULT_CLUSTER.model, name="m<&>"))
    page = _html({"""a<b>"'""": summary}, spec, 1, None, 0)
    assert "<tr><th>a&lt;b&gt;&quot;&#x27;</th>" in page and "× m&lt;&amp;&gt; (" in page
    assert "2 session(s) (1 copy of the input sessions), 9 hops,\ntrace timestamps" in page
    assert page.endswith("</figcaption></figure>\n</body></html>\n") and "<td>-</td>" in page
