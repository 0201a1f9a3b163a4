"""The modeled cluster: model, GPU and link presets with their sources, and the cluster spec.

A cluster is ``nodes`` replicas of one model, each on ``tensor_parallel`` GPUs, grouped in racks.
Nodes in a rack reach each other over ``intra_rack_link``, racks reach each other over
``inter_rack_link`` through a spine; each node reaches its own host memory (the optional second
KV tier) over ``host_link``. A KV transfer takes the cheapest path of that graph
(:meth:`Topology.transfer_s`).

Numbers carry their sources in :data:`MODELS`, :data:`GPUS` and :data:`LINKS` (see
``docs/cluster.md``). Files are TOML (:func:`load_cluster`); :data:`DEFAULT_CLUSTER` is used when
no file is given.

>>> spec = ClusterSpec(model=MODELS["llama-3-70b"], gpu=GPUS["h100"], nodes=2, tensor_parallel=4)
>>> spec.kv_bytes_per_token
327680
>>> spec.kv_capacity_tokens_per_node()
447998
"""

from __future__ import annotations

import re
import tomllib
from dataclasses import MISSING, dataclass, field, replace
from itertools import pairwise
from pathlib import Path
from typing import Any, Literal

import networkx as nx

from agentgraph.errors import TraceFormatError, UsageError

__all__ = [
    "DEFAULT_CLUSTER",
    "GPUS",
    "LINKS",
    "MODELS",
    "ClusterSpec",
    "GpuSpec",
    "HostTier",
    "LinkSpec",
    "ModelSpec",
    "Topology",
    "load_cluster",
    "parse_capacity",
]

GB = 1e9


@dataclass(frozen=True, slots=True)
class ModelSpec:
    """A served model: shapes for the KV and FLOP formulas, weights for memory and decode.

    ``kv_dim`` is the number of KV elements one token stores per layer: ``2 × kv_heads ×
    head_dim`` for (grouped-query) attention, ``kv_lora_rank + qk_rope_head_dim`` for MLA.
    ``active_params`` differs from ``params`` for mixture-of-experts models only.
    """

    name: str
    layers: int
    hidden: int
    kv_dim: int
    params: float
    active_params: float
    dtype_bytes: int = 2
    kv_dtype_bytes: int = 2
    moe: bool = False
    source: str = ""

    @property
    def kv_bytes_per_token(self) -> int:
        """2 × layers × kv_heads × head_dim × dtype bytes (or the MLA latent size)."""
        return self.layers * self.kv_dim * self.kv_dtype_bytes

    @property
    def weight_bytes(self) -> float:
        return self.params * self.dtype_bytes


@dataclass(frozen=True, slots=True)
class GpuSpec:
    """One accelerator: HBM capacity and bandwidth, dense peak for BF16 and FP8."""

    name: str
    hbm_bytes: float
    hbm_bytes_per_s: float
    peak_bf16_flops: float
    peak_fp8_flops: float
    source: str = ""

    def peak_flops(self, dtype_bytes: int) -> float:
        return self.peak_fp8_flops if dtype_bytes == 1 else self.peak_bf16_flops


@dataclass(frozen=True, slots=True)
class LinkSpec:
    """A link class: bandwidth in bytes/s and a one-way latency."""

    name: str
    bytes_per_s: float
    latency_s: float
    source: str = ""


_HF = "https://huggingface.co/{}/blob/main/config.json"

MODELS: dict[str, ModelSpec] = {
    "llama-3-8b": ModelSpec("llama-3-8b", layers=32, hidden=4096, kv_dim=2 * 8 * 128, params=8.03e9,
                            active_params=8.03e9, source=_HF.format("meta-llama/Meta-Llama-3-8B")),
    "llama-3-70b": ModelSpec("llama-3-70b", layers=80, hidden=8192, kv_dim=2 * 8 * 128, params=70.6e9,
                             active_params=70.6e9, source=_HF.format("meta-llama/Meta-Llama-3-70B")),
    "qwen3-30b-a3b": ModelSpec("qwen3-30b-a3b", layers=48, hidden=2048, kv_dim=2 * 4 * 128, params=30.5e9,
                               active_params=3.3e9, moe=True, source=_HF.format("Qwen/Qwen3-30B-A3B")),
    "deepseek-v3": ModelSpec("deepseek-v3", layers=61, hidden=7168, kv_dim=512 + 64, params=671e9,
                             active_params=37e9, dtype_bytes=1, moe=True,
                             source=_HF.format("deepseek-ai/DeepSeek-V3") + " (MLA: kv_lora_rank 512 + "
                             "qk_rope_head_dim 64; FP8 weights; 671B total, 37B active)"),
}
"""Model presets; shapes from each model's published ``config.json``."""

GPUS: dict[str, GpuSpec] = {
    "h100": GpuSpec("h100", 80 * GB, 3.35e12, 989e12, 1979e12,
                    "NVIDIA H100 SXM datasheet: 80 GB HBM3, 3.35 TB/s, 989 TFLOPS BF16 dense"),
    "h200": GpuSpec("h200", 141 * GB, 4.8e12, 989e12, 1979e12,
                    "NVIDIA H200 SXM datasheet: 141 GB HBM3e, 4.8 TB/s, same Hopper tensor cores as H100"),
    "b200": GpuSpec("b200", 192 * GB, 8e12, 2250e12, 4500e12,
                    "NVIDIA B200 (DGX B200 / HGX B200 datasheets): 192 GB HBM3e (180 GB usable on "
                    "some SKUs), 8 TB/s, 2.25 PFLOPS BF16 dense"),
}
"""GPU presets (dense peaks: the sparsity-doubled datasheet figures halved)."""

LINKS: dict[str, LinkSpec] = {
    "nvlink4": LinkSpec("nvlink4", 900 * GB, 1e-6, "NVIDIA Hopper NVLink 4: 900 GB/s per GPU"),
    "nvlink5": LinkSpec("nvlink5", 1800 * GB, 1e-6, "NVIDIA Blackwell NVLink 5: 1.8 TB/s per GPU"),
    "pcie5": LinkSpec("pcie5", 128 * GB, 2e-6, "PCIe 5.0 x16: 128 GB/s (both directions, 64 GB/s each)"),
    "ib400": LinkSpec("ib400", 400e9 / 8, 5e-6, "InfiniBand NDR 400 Gb/s (ConnectX-7)"),
    "ib800": LinkSpec("ib800", 800e9 / 8, 5e-6, "InfiniBand XDR 800 Gb/s (ConnectX-8)"),
}
"""Link presets; bandwidths as in DESIGN §5 (seed 002), latencies are typical one-way figures."""


@dataclass(frozen=True, slots=True)
class HostTier:
    """A second KV tier in each node's host memory, reached over ``link``."""

    capacity_tokens: int
    link: LinkSpec = LINKS["pcie5"]


Capacity = int | Literal["auto", "unlimited"]


@dataclass(frozen=True, slots=True)
class ClusterSpec:
    """Everything the simulator needs to know about the hardware and the serving setup.

    ``kv_capacity_tokens``: ``"auto"`` derives it from HBM − weights − reserve,
    ``"unlimited"`` turns eviction off (cache-only studies), an int sets it directly.
    """

    model: ModelSpec = MODELS["llama-3-8b"]
    gpu: GpuSpec = GPUS["h100"]
    nodes: int = 8
    tensor_parallel: int = 1
    nodes_per_rack: int = 4
    intra_rack_link: LinkSpec = LINKS["ib400"]
    inter_rack_link: LinkSpec = LINKS["ib400"]
    inter_rack_latency_s: float = 5e-6  # switching latency of each rack-to-spine link (two per cross-rack path)
    kv_capacity_tokens: Capacity = "auto"
    reserve_fraction: float = 0.1  # of HBM: activations, CUDA graphs, fragmentation
    mfu: float = 0.5  # prefill model-FLOPs utilization (seed 002: 50-70 %)
    max_batch: int = 256
    cpu_cores: int = 8
    ttl_s: float | None = None
    pin_during_tools: bool = False
    host_tier: HostTier | None = None
    price_input_per_mtok: float = 3.0  # seed 002: $3/M input, $15/M output, reads 0.1x, writes 1.25x
    price_output_per_mtok: float = 15.0
    name: str = "default"
    extra: dict[str, Any] = field(default_factory=dict, compare=False)

    @property
    def kv_bytes_per_token(self) -> int:
        return self.model.kv_bytes_per_token

    def kv_capacity_tokens_per_node(self) -> int | None:
        """KV tokens one node holds; None means unlimited."""
        if self.kv_capacity_tokens == "unlimited":
            return None
        if isinstance(self.kv_capacity_tokens, int):
            return self.kv_capacity_tokens
        hbm = self.gpu.hbm_bytes * self.tensor_parallel
        free = hbm * (1 - self.reserve_fraction) - self.model.weight_bytes
        if free <= 0:
            raise UsageError(f"cluster {self.name!r}: {self.model.name} weights "
                             f"({self.model.weight_bytes / GB:.0f} GB) do not fit in {self.tensor_parallel} × "
                             f"{self.gpu.name} ({hbm / GB:.0f} GB with {self.reserve_fraction:.0%} reserve); "
                             "raise tensor_parallel or set kv_capacity_tokens")
        return int(free // self.kv_bytes_per_token)

    def with_overrides(self, nodes: int | None = None, kv_capacity_tokens: Capacity | None = None) -> ClusterSpec:
        """The command line's ``--nodes`` / ``--kv-capacity-tokens`` on top of the file."""
        spec = self if nodes is None else replace(self, nodes=_positive(nodes, "nodes"))
        return spec if kv_capacity_tokens is None else replace(spec, kv_capacity_tokens=kv_capacity_tokens)

    def describe(self) -> dict[str, Any]:
        """The spec as plain JSON values (for result metadata)."""
        cap = self.kv_capacity_tokens_per_node()
        return {
            "name": self.name, "model": self.model.name, "gpu": self.gpu.name, "nodes": self.nodes,
            "tensor_parallel": self.tensor_parallel, "nodes_per_rack": self.nodes_per_rack,
            "intra_rack_link": self.intra_rack_link.name, "inter_rack_link": self.inter_rack_link.name,
            "kv_capacity_tokens": "unlimited" if cap is None else cap, "mfu": self.mfu,
            "max_batch": self.max_batch, "cpu_cores": self.cpu_cores, "ttl_s": self.ttl_s,
            "pin_during_tools": self.pin_during_tools,
            "host_tier_tokens": None if self.host_tier is None else self.host_tier.capacity_tokens,
        }


DEFAULT_CLUSTER = ClusterSpec()
"""8 × Llama-3-8B on one H100 each, two racks of 4 on 400 Gb/s InfiniBand, KV from HBM."""


class Topology:
    """The link graph of a cluster and the cheapest transfer path between any two places.

    Places are node indices and ``("host", i)`` for node ``i``'s host memory. A path's time for
    ``b`` bytes is ``b / (narrowest bandwidth) + Σ latencies``; the path minimizing it for a
    2K-token transfer is fixed per pair.
    """

    def __init__(self, spec: ClusterSpec) -> None:
        g: nx.Graph[Any] = nx.Graph()
        for i in range(spec.nodes):
            rack = i // spec.nodes_per_rack
            g.add_edge(i, ("rack", rack), bw=spec.intra_rack_link.bytes_per_s, lat=spec.intra_rack_link.latency_s)
            g.add_edge(("rack", rack), "spine", bw=spec.inter_rack_link.bytes_per_s,
                       lat=spec.inter_rack_link.latency_s + spec.inter_rack_latency_s)
            if spec.host_tier is not None:
                link = spec.host_tier.link
                g.add_edge(i, ("host", i), bw=link.bytes_per_s, lat=link.latency_s)
        self.graph = g
        self.kv_bytes_per_token = spec.kv_bytes_per_token
        self.racks = [i // spec.nodes_per_rack for i in range(spec.nodes)]
        probe = 2048 * spec.kv_bytes_per_token
        self._paths: dict[tuple[Any, Any], tuple[float, float]] = {}
        for src, paths in nx.all_pairs_dijkstra_path(g, weight=lambda a, b, d: probe / d["bw"] + d["lat"]):
            for dst, path in paths.items():
                hops = [g.edges[a, b] for a, b in pairwise(path)]
                self._paths[src, dst] = (min((h["bw"] for h in hops), default=float("inf")),
                                         sum(h["lat"] for h in hops))

    def transfer_s(self, src: Any, dst: Any, tokens: int) -> float:
        """Seconds to move ``tokens`` tokens of KV from ``src`` to ``dst`` (0 when equal)."""
        if src == dst or tokens <= 0:
            return 0.0
        bw, lat = self._paths[src, dst]
        return tokens * self.kv_bytes_per_token / bw + lat


# --------------------------------------------------------------------------- TOML

_KEYS = {
    "name", "model", "gpu", "nodes", "tensor_parallel", "nodes_per_rack", "intra_rack_link",
    "inter_rack_link", "inter_rack_latency_s", "kv_capacity_tokens", "reserve_fraction", "mfu",
    "max_batch", "cpu_cores", "cache", "host_tier", "price", "racks",
}


def parse_capacity(value: object, where: str = "kv_capacity_tokens") -> Capacity:
    """``"unlimited"``, ``"auto"`` or a positive token count (int or its decimal string)."""
    if value in ("unlimited", "auto"):
        return value
    if isinstance(value, str) and value.isdigit():
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        return value
    raise UsageError(f"{where} must be a positive token count, 'auto' or 'unlimited', not {value!r}")


def load_cluster(path: str | Path) -> ClusterSpec:
    """Read a cluster TOML file (see ``docs/cluster.md``); errors name the file and the key."""
    p = Path(path)
    try:
        data = tomllib.loads(p.read_text(encoding="utf-8"))
    except tomllib.TOMLDecodeError as exc:  # Python 3.11 puts the position in the message only
        where = re.search(r" \(at line (\d+), column \d+\)", str(exc))
        message = str(exc) if where is None else str(exc)[: where.start()] + str(exc)[where.end():]
        raise TraceFormatError(f"not valid TOML: {message}", path=str(p),
                               line=None if where is None else int(where.group(1))) from None
    try:
        return cluster_from_dict(data, default_name=p.stem)
    except UsageError as exc:
        raise TraceFormatError(str(exc), path=str(p)) from None


def cluster_from_dict(data: dict[str, Any], default_name: str = "cluster") -> ClusterSpec:
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise UsageError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    cache = _table(data, "cache", {"ttl_s", "pin_during_tools"})
    price = _table(data, "price", {"input_per_mtok", "output_per_mtok"})
    host = _table(data, "host_tier", {"capacity_tokens", "link"})
    spec = ClusterSpec(
        name=str(data.get("name", default_name)),
        model=_preset(data.get("model", "llama-3-8b"), MODELS, "model", _model_table),
        gpu=_preset(data.get("gpu", "h100"), GPUS, "gpu", _gpu_table),
        nodes=_positive(data.get("nodes", 8), "nodes"),
        tensor_parallel=_positive(data.get("tensor_parallel", 1), "tensor_parallel"),
        nodes_per_rack=_positive(data.get("nodes_per_rack", 4), "nodes_per_rack"),
        intra_rack_link=_preset(data.get("intra_rack_link", "ib400"), LINKS, "intra_rack_link", _link_table),
        inter_rack_link=_preset(data.get("inter_rack_link", "ib400"), LINKS, "inter_rack_link", _link_table),
        inter_rack_latency_s=_number(data.get("inter_rack_latency_s", 5e-6), "inter_rack_latency_s"),
        kv_capacity_tokens=parse_capacity(data.get("kv_capacity_tokens", "auto")),
        reserve_fraction=_fraction(data.get("reserve_fraction", 0.1), "reserve_fraction"),
        mfu=_fraction(data.get("mfu", 0.5), "mfu"),
        max_batch=_positive(data.get("max_batch", 256), "max_batch"),
        cpu_cores=_positive(data.get("cpu_cores", 8), "cpu_cores"),
        ttl_s=None if cache.get("ttl_s") is None else _number(cache["ttl_s"], "cache.ttl_s"),
        pin_during_tools=_flag(cache.get("pin_during_tools", False), "cache.pin_during_tools"),
        host_tier=None if not host else HostTier(
            _positive(host.get("capacity_tokens"), "host_tier.capacity_tokens"),
            _preset(host.get("link", "pcie5"), LINKS, "host_tier.link", _link_table)),
        price_input_per_mtok=_number(price.get("input_per_mtok", 3.0), "price.input_per_mtok"),
        price_output_per_mtok=_number(price.get("output_per_mtok", 15.0), "price.output_per_mtok"),
    )
    if "racks" in data:
        racks = _positive(data["racks"], "racks")
        spec = replace(spec, nodes_per_rack=-(-spec.nodes // racks))
    spec.kv_capacity_tokens_per_node()  # fail now if the weights do not fit
    return spec


def _table(data: dict[str, Any], key: str, known: set[str]) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{key} must be a table, not {value!r}")
    unknown = sorted(set(value) - known)
    if unknown:
        raise UsageError(f"[{key}]: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return value


def _preset(value: object, presets: dict[str, Any], key: str, build: Any) -> Any:
    if isinstance(value, str):
        if value not in presets:
            raise UsageError(f"unknown {key} {value!r}; presets: {', '.join(sorted(presets))}")
        return presets[value]
    if isinstance(value, dict) and build is not None:
        return build(value, key)
    raise UsageError(f"{key} must be a preset name or a table, not {value!r}")


def _spec_table(t: dict[str, Any], key: str, presets: dict[str, Any], cls: type[Any]) -> Any:
    """A preset with some fields replaced, or a whole spec; numbers checked, names listed."""
    base = _preset(t["preset"], presets, f"{key}.preset", None) if "preset" in t else None
    fields = {k: v for k, v in t.items() if k != "preset"}
    known = list(cls.__dataclass_fields__)
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise UsageError(f"{key}: unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}")
    for name, value in fields.items():
        if name == "moe":
            fields[name] = _flag(value, f"{key}.moe")
        elif name in ("name", "source"):
            fields[name] = str(value)
        else:
            fields[name] = _number(value, f"{key}.{name}")
    if base is not None:
        return replace(base, **fields)
    missing = [f for f in known if f not in fields and cls.__dataclass_fields__[f].default is MISSING]
    if missing:
        raise UsageError(f"{key}: missing field(s) {', '.join(missing)} (or give a preset)")
    return cls(**fields)


def _model_table(t: dict[str, Any], key: str) -> ModelSpec:
    t = dict(t)
    if "kv_heads" in t or "head_dim" in t:
        if not ("kv_heads" in t and "head_dim" in t):
            raise UsageError(f"{key}: kv_heads and head_dim go together (or give kv_dim)")
        t["kv_dim"] = 2 * _number(t.pop("kv_heads"), f"{key}.kv_heads") * _number(t.pop("head_dim"), f"{key}.head_dim")
    if "preset" not in t and "params" in t:
        t.setdefault("active_params", t["params"])
    spec: ModelSpec = _spec_table(t, key, MODELS, ModelSpec)
    return replace(spec, layers=int(spec.layers), hidden=int(spec.hidden), kv_dim=int(spec.kv_dim),
                   dtype_bytes=int(spec.dtype_bytes), kv_dtype_bytes=int(spec.kv_dtype_bytes))


def _gpu_table(t: dict[str, Any], key: str) -> GpuSpec:
    spec: GpuSpec = _spec_table(t, key, GPUS, GpuSpec)
    return spec


def _link_table(t: dict[str, Any], key: str) -> LinkSpec:
    spec: LinkSpec = _spec_table({"name": key, **t} if "preset" not in t else t, key, LINKS, LinkSpec)
    return spec


def _flag(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{key} must be true or false, not {value!r}")
    return value


def _number(value: object, key: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or value < 0:
        raise UsageError(f"{key} must be a non-negative number, not {value!r}")
    return float(value)


def _positive(value: object, key: str) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"{key} must be a positive integer, not {value!r}")
    return value


def _fraction(value: object, key: str) -> float:
    f = _number(value, key)
    low_ok = f >= 0 if key == "reserve_fraction" else f > 0
    high_ok = f < 1 if key == "reserve_fraction" else f <= 1
    if not (low_ok and high_ok):
        span = "[0, 1)" if key == "reserve_fraction" else "(0, 1]"
        raise UsageError(f"{key} must be within {span}, not {value!r}")
    return f
