"""Cluster presets, TOML files, topology paths and the DESIGN §5 timing numbers."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import pytest

from agentgraph.errors import TraceFormatError, UsageError
from schedulers.cluster import (
    DEFAULT_CLUSTER,
    GPUS,
    LINKS,
    MODELS,
    ClusterSpec,
    Topology,
    load_cluster,
    parse_capacity,
)
from schedulers.timing import FixedTiming, RooflineTiming, prefill_flops

CLUSTERS = Path(__file__).parent.parent / "fixtures" / "clusters"
SEVENTY_B = ClusterSpec(model=MODELS["llama-3-70b"], gpu=GPUS["h100"], tensor_parallel=1,
                        kv_capacity_tokens=1000)


def test_kv_bytes_per_token_of_llama_3_70b() -> None:
    """2 × 80 layers × 8 KV heads × 128 × 2 bytes = 327,680 B per token (seed 002)."""
    assert MODELS["llama-3-70b"].kv_bytes_per_token == 327_680
    assert MODELS["llama-3-8b"].kv_bytes_per_token == 131_072
    assert MODELS["deepseek-v3"].kv_bytes_per_token == 61 * 576 * 2  # MLA latent, 70,272 B


def test_decode_step_of_70b_on_one_h100_is_42_ms() -> None:
    """141 GB of BF16 weights read once per step at 3.35 TB/s ≈ 42 ms (seed 002)."""
    step = RooflineTiming(SEVENTY_B).decode_step_s(batch=1, kv_tokens=0)
    assert step == pytest.approx(0.042, abs=0.0005)
    # the KV of the batch is read too: 10K tokens add 3.28 GB / 3.35 TB/s ≈ 0.98 ms
    assert RooflineTiming(SEVENTY_B).decode_step_s(1, 10_000) - step == pytest.approx(327_680e4 / 3.35e12)


def test_moving_2k_tokens_of_70b_kv_over_400_gbps_takes_13_ms() -> None:
    """2,048 × 327,680 B = 671 MB over 50 GB/s ≈ 13.4 ms plus two link latencies (seed 002: 12-13)."""
    spec = replace(SEVENTY_B, nodes=2, nodes_per_rack=2)
    t = Topology(spec).transfer_s(0, 1, 2048)
    assert t == pytest.approx(2048 * 327_680 / 50e9 + 2 * 5e-6)
    assert 0.012 <= t <= 0.0135


def test_transfers_take_the_cheapest_path() -> None:
    """Across racks the spine adds latency; inside a node nothing moves; the host tier is on PCIe."""
    spec = ClusterSpec(nodes=4, nodes_per_rack=2, intra_rack_link=LINKS["nvlink5"], inter_rack_link=LINKS["ib400"],
                       host_tier=__import__("schedulers.cluster").cluster.HostTier(1000))
    topo = Topology(spec)
    kv = spec.kv_bytes_per_token * 1000
    assert topo.transfer_s(0, 0, 1000) == 0.0
    assert topo.transfer_s(0, 1, 1000) == pytest.approx(kv / 1.8e12 + 2e-6)
    assert topo.transfer_s(0, 2, 1000) == pytest.approx(kv / 50e9 + 2e-6 + 2 * (5e-6 + 5e-6))
    assert topo.transfer_s(("host", 3), 3, 1000) == pytest.approx(kv / 128e9 + 2e-6)
    assert topo.racks == [0, 0, 1, 1]


def test_prefill_flops_formula_and_time() -> None:
    """layers × (4·(n² + 2np)·d + 22·n·d²) over peak × MFU × TP; cached tokens only add attention."""
    assert prefill_flops(80, 8192, 1000, 0) == 80 * (4 * 1000**2 * 8192 + 22 * 1000 * 8192**2)
    t = RooflineTiming(replace(SEVENTY_B, tensor_parallel=4))
    assert t.prefill_s(1000, 0) == pytest.approx(prefill_flops(80, 8192, 1000, 0) / (989e12 * 0.5 * 4))
    assert t.prefill_s(1000, 5000) > t.prefill_s(1000, 0)
    assert t.prefill_s(0, 5000) == 0.0


def test_moe_prefill_and_decode_use_active_parameters() -> None:
    """A mixture-of-experts model computes and streams only its active experts per token."""
    spec = ClusterSpec(model=MODELS["qwen3-30b-a3b"], kv_capacity_tokens=1000)
    t = RooflineTiming(spec)
    assert t.decode_step_s(1, 0) == pytest.approx(3.3e9 * 2 / 3.35e12)
    attention = 48 * 4 * 100 * 100 * 2048
    assert t.prefill_s(100, 0) == pytest.approx((attention + 2 * 3.3e9 * 100) / (989e12 * 0.5))


def test_fixed_timing_double() -> None:
    """FixedTiming: cost per new token, constant step."""
    t = FixedTiming(prefill_per_token_s=0.001, decode_step=0.01)
    assert (t.prefill_s(250, 9999), t.decode_step_s(64, 10**6)) == (0.25, 0.01)


def test_kv_capacity_from_hbm_weights_and_reserve() -> None:
    """KV capacity = (HBM × TP × (1 − reserve) − weights) / KV bytes per token."""
    assert DEFAULT_CLUSTER.kv_capacity_tokens_per_node() == int((80e9 * 0.9 - 8.03e9 * 2) // 131_072)
    spec = ClusterSpec(model=MODELS["llama-3-70b"], tensor_parallel=4)
    assert spec.kv_capacity_tokens_per_node() == int((320e9 * 0.9 - 70.6e9 * 2) // 327_680)
    assert replace(spec, kv_capacity_tokens="unlimited").kv_capacity_tokens_per_node() is None
    with pytest.raises(UsageError, match=r"llama-3-70b weights \(141 GB\) do not fit in 1 × h100"):
        ClusterSpec(model=MODELS["llama-3-70b"]).kv_capacity_tokens_per_node()


def test_every_preset_cites_a_source() -> None:
    """Presets carry where their numbers come from."""
    for preset in [*MODELS.values(), *GPUS.values(), *LINKS.values()]:
        assert preset.source, preset.name


@pytest.mark.parametrize("path", sorted(CLUSTERS.glob("*.toml")), ids=lambda p: p.stem)
def test_bundled_cluster_files_load(path: Path) -> None:
    """Every bundled cluster file loads and has a KV capacity."""
    spec = load_cluster(path)
    assert spec.name == path.stem
    cap = spec.kv_capacity_tokens_per_node()
    assert cap is None or cap > 100_000


def test_default_file_is_the_default_cluster() -> None:
    """fixtures/clusters/default.toml describes DEFAULT_CLUSTER exactly."""
    assert load_cluster(CLUSTERS / "default.toml") == DEFAULT_CLUSTER


def test_toml_tables_build_custom_parts(tmp_path: Path) -> None:
    """A model, GPU or link can be a table: a preset with fields overridden, or all fields."""
    f = tmp_path / "c.toml"
    f.write_text('nodes = 3\nracks = 2\nmodel = { preset = "llama-3-70b", kv_dtype_bytes = 1 }\n'
                 'gpu = { preset = "h200" }\ntensor_parallel = 2\n'
                 'intra_rack_link = { bytes_per_s = 1e11, latency_s = 1e-6 }\n'
                 '[cache]\nttl_s = 60\npin_during_tools = true\n[price]\ninput_per_mtok = 1.0\n')
    spec = load_cluster(f)
    assert spec.model.kv_bytes_per_token == 163_840
    assert (spec.gpu.name, spec.nodes_per_rack, spec.ttl_s, spec.pin_during_tools) == ("h200", 2, 60.0, True)
    assert spec.intra_rack_link.bytes_per_s == 1e11
    assert spec.price_input_per_mtok == 1.0


@pytest.mark.parametrize(("text", "message"), [
    ("nodes = 0\n", "nodes must be a positive integer, not 0"),
    ('gpu = "a100"\n', "unknown gpu 'a100'; presets: b200, h100, h200"),
    ("nodez = 4\n", "unknown key(s) nodez"),
    ('kv_capacity_tokens = "lots"\n', "kv_capacity_tokens must be a positive token count, 'auto' or 'unlimited'"),
    ("mfu = 1.5\n", "mfu must be at most 1, not 1.5"),
    ('model = "llama-3-70b"\n', "do not fit"),
    ("cache = 3\n", "cache must be a table"),
])
def test_bad_cluster_files_name_the_file_and_the_key(tmp_path: Path, text: str, message: str) -> None:
    """Errors say which file and which key, with the valid choices."""
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(TraceFormatError) as err:
        load_cluster(f)
    assert str(err.value).startswith(f"{f}: ")
    assert message in str(err.value)


def test_toml_syntax_error_names_the_line(tmp_path: Path) -> None:
    """A TOML syntax error carries its line number."""
    f = tmp_path / "broken.toml"
    f.write_text('nodes = 2\nmodel = "llama\n')
    with pytest.raises(TraceFormatError, match=rf"^{f}:2: not valid TOML"):
        load_cluster(f)


def test_command_line_overrides() -> None:
    """--nodes and --kv-capacity-tokens replace the file's values."""
    spec = DEFAULT_CLUSTER.with_overrides(nodes=3, kv_capacity_tokens=parse_capacity("5000"))
    assert (spec.nodes, spec.kv_capacity_tokens_per_node()) == (3, 5000)
    assert DEFAULT_CLUSTER.with_overrides(kv_capacity_tokens="unlimited").kv_capacity_tokens_per_node() is None
    with pytest.raises(UsageError):
        parse_capacity("-4")


@pytest.mark.parametrize(("text", "message"), [
    ("model = { kv_heads = 8 }\n", "model: kv_heads and head_dim go together"),
    ('model = { preset = "llama-3-8b", layers = "many" }\n', "model.layers must be a positive integer, not 'many'"),
    ("model = { layers = 2 }\n", "model: missing field(s) name, hidden, kv_dim, params"),
    ('gpu = { preset = "h100", hbm = 1 }\n', "gpu: unknown field(s) hbm"),
    ("[cache]\nttl = 5\n", "[cache]: unknown key(s) ttl; known: pin_during_tools, ttl_s"),
    ('[cache]\npin_during_tools = "yes"\n', "cache.pin_during_tools must be true or false"),
    ("[host_tier]\nsize = 5\n", "[host_tier]: unknown key(s) size"),
    ('intra_rack_link = { preset = "ib800", latency_s = 2e-6 }\ninter_rack_link = { preset = "x" }\n',
     "unknown inter_rack_link.preset 'x'"),
])
def test_bad_tables_are_usage_errors_not_crashes(tmp_path: Path, text: str, message: str) -> None:
    """Mistakes inside model/GPU/link tables and sub-tables are reported, never a traceback."""
    f = tmp_path / "bad.toml"
    f.write_text(text)
    with pytest.raises(TraceFormatError) as err:
        load_cluster(f)
    assert message in str(err.value)


def test_link_table_can_start_from_a_preset(tmp_path: Path) -> None:
    """A link table may name a preset and change one number."""
    f = tmp_path / "c.toml"
    f.write_text('intra_rack_link = { preset = "ib800", latency_s = 2e-6 }\n')
    link = load_cluster(f).intra_rack_link
    assert (link.name, link.bytes_per_s, link.latency_s) == ("ib800", 100e9, 2e-6)
