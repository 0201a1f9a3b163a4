"""``agentgraph replay`` and ``agentgraph compare``: the CLI contract of DESIGN §7."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from schedulers.cli import main
from schedulers.metrics import SUMMARY_KEYS
from schedulers.strategies import STRATEGIES

ROOT = Path(__file__).resolve().parents[1]
REPLAYS = str(ROOT / "replays")
DESIGN_METRICS = ("hit_rate", "cached_tokens", "reprefill_tokens", "transferred_tokens", "cold_tokens",
                  "ttft_p50_s", "ttft_p99_s", "session_e2e_p50_s", "session_e2e_p99_s", "max_mean_load", "wall_s")


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_json_carries_the_design_metric_names(capsys: pytest.CaptureFixture[str]) -> None:
    """--json prints one object whose keys are the summary keys, DESIGN §7 names included."""
    code, out, _ = run(capsys, "replay", REPLAYS, "--strategy", "session_affinity", "--json")
    assert code == 0
    summary = json.loads(out)
    assert tuple(summary) == SUMMARY_KEYS
    assert set(DESIGN_METRICS) <= set(summary)
    assert (summary["strategy"], summary["hops"], summary["sessions"], summary["nodes"]) == (
        "session_affinity", 72, 9, 8)


def test_compare_json_has_one_summary_per_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    """compare --json: {"cluster": ..., "strategies": {name: summary}} in the order asked."""
    code, out, _ = run(capsys, "compare", REPLAYS, "--strategies", "random,topology_aware", "--json", "--nodes", "2")
    assert code == 0
    doc = json.loads(out)
    assert list(doc["strategies"]) == ["random", "topology_aware"]
    assert doc["cluster"]["nodes"] == 2
    assert all(tuple(s) == SUMMARY_KEYS for s in doc["strategies"].values())


def test_compare_table_lists_every_strategy(capsys: pytest.CaptureFixture[str]) -> None:
    """Without --json: a header line, a column line, one row per strategy."""
    code, out, _ = run(capsys, "compare", REPLAYS)
    lines = out.splitlines()
    assert code == 0
    assert lines[0] == "9 session(s), 72 hops on 8 × llama-3-8b (h100 ×1, KV 426788 tok/node)"
    assert lines[1].split() == ["strategy", "hit_rate", "reprefill_tok", "transfer_tok", "ttft_p99_s", "e2e_p50_s",
                                "e2e_p99_s", "max/mean", "$/session"]
    assert [line.split()[0] for line in lines[2:]] == list(STRATEGIES)


def test_output_folder_is_byte_identical_for_the_same_seed(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """-o DIR: frames as CSV and the summary; two runs with one seed give the same bytes."""
    for d in ("a", "b"):
        assert run(capsys, "replay", REPLAYS, "--strategy", "random", "--seed", "4", "--rate", "0.5",
                   "-o", str(tmp_path / d))[0] == 0
    names = sorted(p.name for p in (tmp_path / "a").iterdir())
    assert names == ["hops.csv", "nodes.csv", "run.json", "sessions.csv", "summary.json"]
    for name in ("hops.csv", "nodes.csv", "sessions.csv", "summary.json"):
        assert (tmp_path / "a" / name).read_bytes() == (tmp_path / "b" / name).read_bytes(), name
    hops = (tmp_path / "a" / "hops.csv").read_text().splitlines()
    assert len(hops) == 73 and hops[0].startswith("hop_id,session_id,agent_id,node,rack,prompt_tokens,")
    assert "wall_s" in json.loads((tmp_path / "a" / "run.json").read_text())


def test_cluster_file_and_overrides(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """--cluster reads the TOML; --nodes and --kv-capacity-tokens override it."""
    f = tmp_path / "c.toml"
    f.write_text('name = "tiny"\nnodes = 3\nkv_capacity_tokens = 9000\n')
    code, out, _ = run(capsys, "replay", REPLAYS, "--cluster", str(f), "--json")
    assert code == 0 and json.loads(out)["nodes"] == 3 and json.loads(out)["cluster"] == "tiny"
    tight = json.loads(out)["evicted_blocks"]
    code, out, _ = run(capsys, "replay", REPLAYS, "--cluster", str(f), "--nodes", "2",
                       "--kv-capacity-tokens", "unlimited", "--json")
    assert json.loads(out)["nodes"] == 2 and json.loads(out)["evicted_blocks"] == 0 < tight


def test_copies_and_rate_add_load(capsys: pytest.CaptureFixture[str]) -> None:
    """--copies K replays K copies of every session; --rate draws their arrivals."""
    code, out, _ = run(capsys, "replay", REPLAYS, "--copies", "3", "--rate", "2", "--json")
    assert code == 0 and (json.loads(out)["sessions"], json.loads(out)["hops"]) == (27, 216)


@pytest.mark.parametrize(("argv", "message"), [
    (["replay", REPLAYS, "--strategy", "fastest"], "unknown strategy 'fastest'; choose from: dynamo_kv,"),
    (["compare", REPLAYS, "--strategies", "random,nope"], "unknown strategy 'nope'"),
    (["replay", "missing.trace"], "missing.trace"),
    (["replay", REPLAYS, "--kv-capacity-tokens", "lots"], "--kv-capacity-tokens must be a positive token count"),
    (["replay", REPLAYS, "--rate", "0"], "expected a number in [1e-06, 1e+06], got 0"),
])
def test_bad_input_exits_2_with_a_message(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    """Usage mistakes: exit 2, one clear line on stderr, no traceback."""
    code, out, err = run(capsys, *argv)
    assert code == 2 and message in err and "Traceback" not in err and out == ""


def test_bad_cluster_file_names_file_and_line(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A broken cluster file: exit 2, the file and line in the message."""
    f = tmp_path / "bad.toml"
    f.write_text('nodes = 2\ngpu = "tpu"\n')
    code, _, err = run(capsys, "replay", REPLAYS, "--cluster", str(f))
    assert code == 2 and f"{f}: unknown gpu 'tpu'; presets: b200, h100, h200" in err


def test_help_lists_the_replay_commands(capsys: pytest.CaptureFixture[str]) -> None:
    """The console script (schedulers.cli:main) has every command, old and new."""
    code, out, _ = run(capsys, "--help")
    assert code == 0
    for command in ("import", "inspect", "graph", "validate", "record", "emulate", "replay", "compare"):
        assert command in out


def test_readme_compare_example_is_what_the_command_prints(capsys: pytest.CaptureFixture[str]) -> None:
    """The README's compare example is real output (same inputs and seed, same table)."""
    readme = (ROOT / "README.md").read_text().splitlines()
    start = next(i for i, line in enumerate(readme) if line.startswith("$ agentgraph compare replays.trace"))
    shown = []
    for line in readme[start + 1:]:
        if line.startswith("$ ") or line.startswith("```"):
            break
        shown.append(line)
    argv = readme[start].removeprefix("$ agentgraph ").split()
    argv[1] = REPLAYS
    code, out, _ = run(capsys, *argv)
    assert code == 0 and out.splitlines() == shown


def test_negative_seed_is_a_usage_error(capsys: pytest.CaptureFixture[str]) -> None:
    """Not numpy's ValueError (exit 3): argparse's message, exit 2."""
    code, _, err = run(capsys, "replay", REPLAYS, "--seed", "-1")
    assert code == 2 and "argument --seed: expected an integer in 0..18446744073709551615, got -1" in err
