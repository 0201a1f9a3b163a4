"""Bad cluster input (issue 13, point 4): one ``error:`` line and exit 2 within seconds, never a
traceback or a hang; and the lazy topology gives the eager all-pairs table's floats exactly."""

from __future__ import annotations

import re
import time
from itertools import pairwise
from pathlib import Path
from typing import Any

import networkx as nx
import pytest

from agentgraph.errors import TraceFormatError
from schedulers.cli import main
from schedulers.cluster import (
    LIMITS,
    LINKS,
    MAX_CLUSTER_FILE_BYTES,
    MAX_NODES,
    RANGES,
    ClusterSpec,
    HostTier,
    LinkSpec,
    Topology,
    load_cluster,
)

ROOT = Path(__file__).resolve().parents[1]
REPLAYS = str(ROOT / "replays")
DEEP = 5000
CAP = "kv_capacity_tokens = 1000\n"  # so that odd models and GPUs need no HBM arithmetic


def _write(tmp_path: Path, content: str | bytes) -> Path:
    f = tmp_path / "bad.toml"
    if isinstance(content, bytes):
        f.write_bytes(content)
    else:
        f.write_text(content, encoding="utf-8")
    return f


# (id, file content, the message after "PATH: " or "PATH:LINE: ")
BAD_FILES: list[tuple[str, str | bytes, str]] = [
    ("nodes-1e9", "nodes = 1000000000\n", "nodes must be at most 4,096, not 1000000000"),
    ("nodes-0x-huge", "nodes = 0x" + "f" * 5000 + "\n", "nodes must be at most 4,096, not <a 20000-bit integer>"),
    ("int-5000-digits", "nodes = " + "9" * 5000 + "\n",
     "not valid TOML: Exceeds the limit (4300 digits) for integer string conversion: value has 5000 digits"),
    ("not-utf8", b'nodes = 2\nname = "caf\xe9"\n', "2: not valid UTF-8: byte 0xe9 at offset 21"),
    ("deep-array", "a = " + "[" * DEEP + "]" * DEEP + "\n",
     "not valid TOML: arrays or inline tables nested too deeply"),
    ("deep-inline-table", "a = " + "{ b = " * DEEP + "1" + " }" * DEEP + "\n",
     "not valid TOML: arrays or inline tables nested too deeply"),
    ("deep-table-header", "nodes = 2\n[[" + ".".join(["a"] * DEEP) + "]]\n",
     "2: nested too deeply: more than 64 dots outside strings on one line"),
    ("deep-dotted-key", "model." + ".".join(["a"] * DEEP) + " = 1\n",
     "1: nested too deeply: more than 64 dots outside strings on one line"),
    ("price-nan", "[price]\ninput_per_mtok = nan\n", "price.input_per_mtok must be a finite number >= 0, not nan"),
    ("price-inf", "[price]\noutput_per_mtok = +inf\n", "price.output_per_mtok must be a finite number >= 0, not inf"),
    ("latency-inf", 'intra_rack_link = { preset = "ib400", latency_s = inf }\n',
     "intra_rack_link.latency_s must be a finite number >= 0, not inf"),
    ("bandwidth-minus-inf", "inter_rack_link = { bytes_per_s = -inf }\n",
     "inter_rack_link.bytes_per_s must be a finite number >= 1, not -inf"),
    ("bandwidth-zero", "[host_tier]\ncapacity_tokens = 10\nlink = { bytes_per_s = 0 }\n",
     "host_tier.link.bytes_per_s must be a finite number >= 1, not 0"),
    ("spine-latency-nan", "inter_rack_latency_s = -nan\n",
     "inter_rack_latency_s must be a finite number >= 0, not nan"),
    ("ttl-nan", "[cache]\nttl_s = nan\n", "cache.ttl_s must be a finite number >= 0, not nan"),
    ("name-int", "name = 5\n", "name must be a string, not 5"),
    ("model-name-int", 'model = { preset = "llama-3-8b", name = 5 }\n', "model.name must be a string, not 5"),
    ("gpu-source-float", 'gpu = { preset = "h100", source = 1.5 }\n', "gpu.source must be a string, not 1.5"),
    ("link-name-table", "intra_rack_link = { bytes_per_s = 1e9, name = { a = 1 } }\n",
     "intra_rack_link.name must be a string, not {'a': 1}"),
    ("layers-inf", 'model = { preset = "llama-3-8b", layers = inf }\n',
     "model.layers must be a positive integer, not inf"),
    ("layers-fraction", 'model = { preset = "llama-3-8b", layers = 32.5 }\n',
     "model.layers must be a positive integer, not 32.5"),
    ("kv-dtype-zero", 'model = { preset = "llama-3-8b", kv_dtype_bytes = 0 }\n',
     "model.kv_dtype_bytes must be a positive integer, not 0"),
    ("hbm-1e300", 'gpu = { preset = "h100", hbm_bytes = 1e300 }\n', "gpu.hbm_bytes must be at most 1e+18, not 1e+300"),
    ("flops-tiny", CAP + 'gpu = { preset = "h100", peak_bf16_flops = 1e-300 }\n',
     "gpu.peak_bf16_flops must be a finite number >= 1, not 1e-300"),
    ("mfu-tiny", "mfu = 1e-300\n", "mfu must be a finite number >= 0.001, not 1e-300"),
    ("tensor-parallel-1e6", "tensor_parallel = 1000000\n", "tensor_parallel must be at most 1,024, not 1000000"),
    ("max-batch-2e64", f"max_batch = {2**64}\n", f"max_batch must be at most 1,000,000, not {2**64}"),
    ("kv-capacity-1e13", "kv_capacity_tokens = 10000000000000\n",
     "kv_capacity_tokens must be at most 1,000,000,000,000 tokens, not 10000000000000"),
    ("host-tier-1e13", "[host_tier]\ncapacity_tokens = 10000000000000\n",
     "host_tier.capacity_tokens must be at most 1,000,000,000,000, not 10000000000000"),
    ("derived-capacity", 'tensor_parallel = 1024\ngpu = { preset = "b200", hbm_bytes = 1e18 }\n',
     "cluster 'bad': 1024 × b200 (1.02e+21 bytes of HBM) would hold more than 1,000,000,000,000 KV tokens per "
     "node; set kv_capacity_tokens"),
    ("too-large", "#" * (MAX_CLUSTER_FILE_BYTES + 1), "larger than 1,048,576 bytes: not a cluster file"),
]


@pytest.mark.parametrize(("content", "message"), [c[1:] for c in BAD_FILES], ids=[c[0] for c in BAD_FILES])
def test_bad_cluster_file_is_one_error_line_and_exit_2(tmp_path: Path, capsys: pytest.CaptureFixture[str],
                                                       content: str | bytes, message: str) -> None:
    """`replay --cluster BAD` prints exactly `error: PATH[:LINE]: message` and exits 2 within seconds."""
    f = _write(tmp_path, content)
    start = time.perf_counter()
    code = main(["replay", REPLAYS, "--cluster", str(f)])
    elapsed = time.perf_counter() - start
    out, err = capsys.readouterr()
    sep = "" if re.match(r"\d+: ", message) else " "
    assert (code, out, err) == (2, "", f"error: {f}:{sep}{message}\n")
    assert elapsed < 10


def test_dev_zero_as_cluster_file_does_not_hang(capsys: pytest.CaptureFixture[str]) -> None:
    """An endless file is refused after reading one byte more than the limit."""
    if not Path("/dev/zero").exists():
        pytest.skip("no /dev/zero")
    start = time.perf_counter()
    assert main(["replay", REPLAYS, "--cluster", "/dev/zero"]) == 2
    assert capsys.readouterr().err == "error: /dev/zero: larger than 1,048,576 bytes: not a cluster file\n"
    assert time.perf_counter() - start < 10


@pytest.mark.parametrize(("argv", "message"), [
    (["--nodes", "10000000"], "argument --nodes: expected an integer in 1..4096, got 10000000"),
    (["--kv-capacity-tokens", "10000000000000"], "argument --kv-capacity-tokens: --kv-capacity-tokens must be at "
     "most 1,000,000,000,000 tokens, not 10000000000000"),
    (["--kv-capacity-tokens", "9" * 5000], "argument --kv-capacity-tokens: --kv-capacity-tokens must be a positive "
     "token count, 'auto' or 'unlimited', not '" + "9" * 27 + "..." + "9" * 28 + "'"),  # cut to 60 characters
    (["--kv-capacity-tokens", "²"], "argument --kv-capacity-tokens: --kv-capacity-tokens must be a positive token "
     "count, 'auto' or 'unlimited', not '²'"),
])
def test_bad_cluster_options_exit_2_fast(capsys: pytest.CaptureFixture[str], argv: list[str], message: str) -> None:
    """--nodes and --kv-capacity-tokens beyond their bounds are usage errors, not hangs or tracebacks.

    argparse prints its usage block before the error line (agentgraph/cli.py's parser)."""
    start = time.perf_counter()
    assert main(["replay", REPLAYS, *argv]) == 2
    err = capsys.readouterr().err
    assert err.splitlines()[-1] == f"agentgraph replay: error: {message}"
    assert "Traceback" not in err
    assert time.perf_counter() - start < 10


# --------------------------------------------------------------------------- every number, every bound

NUMBER_KEYS = [  # (key as named in the error, TOML that sets it to {v})
    ("inter_rack_latency_s", "inter_rack_latency_s = {v}\n"),
    ("reserve_fraction", "reserve_fraction = {v}\n"),
    ("mfu", "mfu = {v}\n"),
    ("cache.ttl_s", "[cache]\nttl_s = {v}\n"),
    ("price.input_per_mtok", "[price]\ninput_per_mtok = {v}\n"),
    ("price.output_per_mtok", "[price]\noutput_per_mtok = {v}\n"),
    *[(f"model.{k}", CAP + f'model = {{ preset = "llama-3-8b", {k} = {{v}} }}\n')
      for k in ("layers", "hidden", "kv_dim", "params", "active_params", "dtype_bytes", "kv_dtype_bytes")],
    ("model.kv_heads", CAP + 'model = { preset = "llama-3-8b", kv_heads = {v}, head_dim = 128 }\n'),
    ("model.head_dim", CAP + 'model = { preset = "llama-3-8b", kv_heads = 8, head_dim = {v} }\n'),
    *[(f"gpu.{k}", CAP + f'gpu = {{ preset = "h100", {k} = {{v}} }}\n')
      for k in ("hbm_bytes", "hbm_bytes_per_s", "peak_bf16_flops", "peak_fp8_flops")],
    *[(f"{link}.{k}", f'{link} = {{ preset = "ib400", {k} = {{v}} }}\n')
      for link in ("intra_rack_link", "inter_rack_link") for k in ("bytes_per_s", "latency_s")],
    *[(f"host_tier.link.{k}", f'[host_tier]\ncapacity_tokens = 10\nlink = {{ preset = "pcie5", {k} = {{v}} }}\n')
      for k in ("bytes_per_s", "latency_s")],
]


@pytest.mark.parametrize("v", ["nan", "inf", "+inf", "-inf", "-nan"])
@pytest.mark.parametrize(("key", "toml"), NUMBER_KEYS, ids=[k for k, _ in NUMBER_KEYS])
def test_every_number_in_a_cluster_file_must_be_finite(tmp_path: Path, key: str, toml: str, v: str) -> None:
    """TOML's nan and inf are refused in every numeric field, with the key named."""
    f = _write(tmp_path, toml.replace("{v}", v))
    shown = {"+inf": "inf", "-nan": "nan"}.get(v, v)
    kind = "positive integer" if key.startswith("model.") and "params" not in key else "finite number >= [0-9.e-]+"
    assert re.fullmatch(rf"{re.escape(str(f))}: {re.escape(key)} must be a {kind}, not {shown}",
                        str(load_cluster_error(f)))


def load_cluster_error(f: Path) -> TraceFormatError:
    with pytest.raises(TraceFormatError) as err:
        load_cluster(f)
    return err.value


def test_number_keys_cover_every_numeric_field() -> None:
    """The finiteness test above reaches every number a cluster file can hold."""
    named = {k.rpartition(".")[2] for k, _ in NUMBER_KEYS}
    assert set(RANGES) <= named
    assert {k.rpartition(".")[2] for k in LIMITS} - {"nodes", "nodes_per_rack", "racks", "tensor_parallel",
                                                       "max_batch", "cpu_cores", "capacity_tokens",
                                                       "kv_capacity_tokens"} <= named


def _int_toml(key: str, v: int) -> str:
    if key == "racks":
        return f"nodes = {MAX_NODES}\nracks = {v}\n"
    if key == "host_tier.capacity_tokens":
        return f"[host_tier]\ncapacity_tokens = {v}\n"
    if key.startswith("model."):
        field = key.removeprefix("model.")
        other = {"model.kv_heads": ", head_dim = 1", "model.head_dim": ", kv_heads = 1"}.get(key, "")
        return CAP + f'model = {{ preset = "llama-3-8b", {field} = {v}{other} }}\n'
    return ("" if key == "kv_capacity_tokens" else CAP) + f"{key} = {v}\n"


@pytest.mark.parametrize("key", sorted(LIMITS))
def test_each_integer_bound_is_enforced(tmp_path: Path, key: str) -> None:
    """One above a bound is refused naming the key and the bound."""
    most = LIMITS[key]
    error = load_cluster_error(_write(tmp_path, _int_toml(key, most + 1)))
    assert f"{key} must be" in str(error) and f"{most:,}" in str(error)


@pytest.mark.parametrize("key", sorted(set(LIMITS) - {"model.kv_heads", "model.head_dim"}))
def test_each_integer_bound_itself_is_accepted(tmp_path: Path, key: str) -> None:
    """The bound itself loads (kv_heads and head_dim at their bound exceed kv_dim's, so not those)."""
    load_cluster(_write(tmp_path, _int_toml(key, LIMITS[key])))


def test_limits_section_of_the_docs_lists_every_bound() -> None:
    """docs/cluster.md's Limits table gives each LIMITS and RANGES entry with its value."""
    text = (ROOT / "docs" / "cluster.md").read_text(encoding="utf-8")
    limits = text[text.index("## Limits"):]
    rows = dict(re.findall(r"^\| `([\w.]+)` \| ([^|]+) \|", limits, flags=re.M))
    for key, most in LIMITS.items():
        assert rows[key].strip() == f"1 .. {most:,}", key
    for key, (low, high) in RANGES.items():
        assert rows[key].strip() == f"{low:g} .. {high:g}", key


def test_load_cluster_accepts_a_file_at_the_size_limit(tmp_path: Path) -> None:
    """A file of exactly MAX_CLUSTER_FILE_BYTES loads (comments pad it)."""
    f = _write(tmp_path, "nodes = 2\n" + "#" * (MAX_CLUSTER_FILE_BYTES - 11) + "\n")
    assert f.stat().st_size == MAX_CLUSTER_FILE_BYTES
    assert load_cluster(f).nodes == 2


def test_dots_inside_strings_and_comments_do_not_count(tmp_path: Path) -> None:
    """The nesting guard skips strings and comments: a long dotted `source` still loads."""
    f = _write(tmp_path, f'gpu = {{ preset = "h100", source = "{"." * 200}" }}  # {"." * 200}\n')
    assert load_cluster(f).gpu.source == "." * 200


# --------------------------------------------------------------------------- lazy topology


def _eager_paths(topo: Topology, probe: float) -> dict[tuple[Any, Any], tuple[float, float]]:
    """The all-pairs table Topology.__init__ built before issue 13 (networkx Dijkstra), verbatim."""
    g = topo.graph
    paths: dict[tuple[Any, Any], tuple[float, float]] = {}
    for src, by_dst in nx.all_pairs_dijkstra_path(g, weight=lambda a, b, d: probe / d["bw"] + d["lat"]):
        for dst, path in by_dst.items():
            hops = [g.edges[a, b] for a, b in pairwise(path)]
            paths[src, dst] = (min((h["bw"] for h in hops), default=float("inf")), sum(h["lat"] for h in hops))
    return paths


ODD = LinkSpec("odd", 3.3e10, 1e-7)  # latencies whose float sums depend on the order of addition
SHAPES = {
    "one-node": ClusterSpec(nodes=1),
    "one-rack-host": ClusterSpec(nodes=3, nodes_per_rack=4, host_tier=HostTier(10)),
    "uneven-racks": ClusterSpec(nodes=7, nodes_per_rack=3, intra_rack_link=LINKS["nvlink5"],
                                inter_rack_link=LINKS["ib800"]),
    "host-odd-latencies": ClusterSpec(nodes=9, nodes_per_rack=2, intra_rack_link=LinkSpec("a", 1e11, 0.1),
                                      inter_rack_link=ODD, inter_rack_latency_s=0.7,
                                      host_tier=HostTier(10, LinkSpec("h", 7e10, 0.2))),
    "b200-nvl72": ClusterSpec(nodes=72, nodes_per_rack=36, intra_rack_link=LINKS["nvlink5"],
                              inter_rack_link=LINKS["ib800"], host_tier=HostTier(10)),
}


@pytest.mark.parametrize("spec", SHAPES.values(), ids=list(SHAPES))
def test_lazy_topology_is_bit_identical_to_the_eager_table(spec: ClusterSpec) -> None:
    """transfer_s equals (==, not approx) the eager all-pairs Dijkstra table for every pair of places."""
    topo = Topology(spec)
    eager = _eager_paths(topo, 2048 * spec.kv_bytes_per_token)
    assert len(eager) == topo.graph.number_of_nodes() ** 2
    for (src, dst), (bw, lat) in eager.items():
        for tokens in (1, 64, 2048, 123_457):
            expected = 0.0 if src == dst else tokens * spec.kv_bytes_per_token / bw + lat
            assert topo.transfer_s(src, dst, tokens) == expected, (src, dst, tokens)


def test_the_bit_identity_shapes_can_tell_summation_orders_apart() -> None:
    """Guard for the test above: in 'host-odd-latencies' a host-to-far-node path's latency differs by
    summation order, so a closed form adding in another order would fail it."""
    h, intra, inter = 0.2, 0.1, 1e-7 + 0.7
    assert sum([h, intra, inter, inter, intra]) != sum([intra, inter, inter, intra, h])


def test_unknown_places_raise_key_error() -> None:
    """A place outside the cluster is a KeyError, as with the eager table."""
    topo = Topology(ClusterSpec(nodes=2))
    with pytest.raises(KeyError):
        topo.transfer_s(0, 5, 10)
    with pytest.raises(KeyError):
        topo.transfer_s(("host", 0), 1, 10)  # no host tier


def test_a_max_size_topology_builds_in_well_under_a_second() -> None:
    """4,096 nodes with a host tier: O(nodes) to build (the eager table took minutes)."""
    start = time.perf_counter()
    topo = Topology(ClusterSpec(nodes=MAX_NODES, nodes_per_rack=8, host_tier=HostTier(10)))
    assert topo.transfer_s(("host", 0), MAX_NODES - 1, 100) > topo.transfer_s(0, 1, 100) > 0
    assert time.perf_counter() - start < 1
