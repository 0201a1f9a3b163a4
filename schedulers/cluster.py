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

import math
import re
import reprlib
import tomllib
from collections.abc import Callable
from dataclasses import MISSING, dataclass, field, replace
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

import networkx as nx

from agentgraph.errors import TraceFormatError, UsageError

__all__ = [
    "DEFAULT_CLUSTER",
    "GPUS",
    "LIMITS",
    "LINKS",
    "MAX_CLUSTER_FILE_BYTES",
    "MAX_LINE_DOTS",
    "MAX_NODES",
    "MODELS",
    "RANGES",
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
MAX_NODES = 4096
"""The most nodes (replicas) a cluster may have: from a file, ``--nodes`` or a sweep (docs/cli.md)."""
LIMITS: dict[str, int] = {
    "nodes": MAX_NODES, "nodes_per_rack": MAX_NODES, "racks": MAX_NODES,
    "tensor_parallel": 1024, "max_batch": 1_000_000, "cpu_cores": 1_000_000,
    "kv_capacity_tokens": 10**12, "host_tier.capacity_tokens": 10**12,
    "model.layers": 10_000, "model.hidden": 1_000_000, "model.kv_dim": 1_000_000,
    "model.kv_heads": 1_000_000, "model.head_dim": 1_000_000, "model.dtype_bytes": 8, "model.kv_dtype_bytes": 8,
}
"""The largest value of each integer key of a cluster file (``docs/cluster.md``, Limits). Every one
reaches the outputs as a 64-bit integer; ``nodes`` sizes per-node state; the rest are far above any
real machine, so that products of them (HBM × ``tensor_parallel``, the FLOP formula) stay finite."""
RANGES: dict[str, tuple[float, float]] = {
    "bytes_per_s": (1, 1e18), "hbm_bytes_per_s": (1, 1e18), "peak_bf16_flops": (1, 1e21), "peak_fp8_flops": (1, 1e21),
    "hbm_bytes": (0, 1e18), "params": (0, 1e16), "active_params": (0, 1e16),
    "latency_s": (0, 1e3), "inter_rack_latency_s": (0, 1e3), "ttl_s": (0, 1e9),
    "input_per_mtok": (0, 1e6), "output_per_mtok": (0, 1e6), "mfu": (1e-3, 1),
}
"""The range of each number of a cluster file, by its last key part (``intra_rack_link.bytes_per_s``
→ ``bytes_per_s``); ``reserve_fraction`` is in [0, 1). Finite values far outside them (a bandwidth
of 1e-300, HBM of 1e300) make times overflow to inf and the simulator's arithmetic to nan; inside
them every time the formulas give stays finite (the largest prefill is ~1e28 s)."""
MAX_CLUSTER_FILE_BYTES = 1 << 20
"""A cluster file is a few hundred bytes; a larger one is refused before parsing."""
MAX_LINE_DOTS = 64
"""Dots outside strings on one line of a cluster file (``tomllib`` is quadratic in a key's depth)."""


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
        if not free > 0:  # nan when HBM and weights both overflow to inf
            raise UsageError(f"cluster {self.name!r}: {self.model.name} weights "
                             f"({self.model.weight_bytes / GB:.0f} GB) do not fit in {self.tensor_parallel} × "
                             f"{self.gpu.name} ({hbm / GB:.0f} GB with {self.reserve_fraction:.0%} reserve); "
                             "raise tensor_parallel or set kv_capacity_tokens")
        tokens, most = free // self.kv_bytes_per_token, LIMITS["kv_capacity_tokens"]
        if not tokens <= most:  # also inf
            raise UsageError(f"cluster {self.name!r}: {self.tensor_parallel} × {self.gpu.name} ({hbm:.3g} bytes "
                             f"of HBM) would hold more than {most:,} KV tokens per node; set kv_capacity_tokens")
        return int(tokens)

    def with_overrides(self, nodes: int | None = None, kv_capacity_tokens: Capacity | None = None) -> ClusterSpec:
        """The command line's ``--nodes`` / ``--kv-capacity-tokens`` on top of the file."""
        spec = self if nodes is None else replace(self, nodes=_positive(nodes, "nodes", most=MAX_NODES))
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

    Places are node indices, ``("host", i)`` for node ``i``'s host memory, ``("rack", r)`` for a
    rack switch and ``"spine"``. A path's time for ``b`` bytes is ``b / (narrowest bandwidth) +
    Σ latencies`` (summed in path order). The graph is a tree, so each pair has exactly one path,
    the one networkx's Dijkstra finds on :attr:`graph`: it is read off the parent links instead,
    and its two numbers depend only on the sequence of link kinds along it, so they are kept per
    sequence (a handful, however many nodes). Building a topology is O(nodes).

    >>> topo = Topology(ClusterSpec(nodes=4, nodes_per_rack=2))
    >>> topo.racks, round(topo.transfer_s(0, 2, 2048) * 1e3, 3)
    ([0, 0, 1, 1], 5.399)
    """

    def __init__(self, spec: ClusterSpec) -> None:
        self.kv_bytes_per_token = spec.kv_bytes_per_token
        self.racks = [i // spec.nodes_per_rack for i in range(spec.nodes)]
        inter = spec.inter_rack_link
        self._links = {"intra": (spec.intra_rack_link.bytes_per_s, spec.intra_rack_link.latency_s),
                       "inter": (inter.bytes_per_s, inter.latency_s + spec.inter_rack_latency_s)}
        self._up: dict[Any, tuple[Any, str] | None] = {"spine": None}  # place → (parent, link kind)
        for i, rack in enumerate(self.racks):
            self._up[i], self._up["rack", rack] = (("rack", rack), "intra"), ("spine", "inter")
        if spec.host_tier is not None:
            self._links["host"] = (spec.host_tier.link.bytes_per_s, spec.host_tier.link.latency_s)
            self._up.update({("host", i): (i, "host") for i in range(spec.nodes)})
        self._by_kinds: dict[tuple[str, ...], tuple[float, float]] = {}
        self._rack_of = dict(enumerate(self.racks))  # the node-to-node fast path of transfer_s
        self._same_rack = self._link(("intra", "intra"))
        self._cross_rack = self._link(("intra", "inter", "inter", "intra"))

    @cached_property
    def graph(self) -> nx.Graph[Any]:
        """The places joined by their links (``bw``, ``lat`` on each edge), for inspection."""
        g: nx.Graph[Any] = nx.Graph()
        for place, up in self._up.items():
            if up is not None:
                bw, lat = self._links[up[1]]
                g.add_edge(place, up[0], bw=bw, lat=lat)
        return g

    def transfer_s(self, src: Any, dst: Any, tokens: int) -> float:
        """Seconds to move ``tokens`` tokens of KV from ``src`` to ``dst`` (0 when equal)."""
        if src == dst or tokens <= 0:
            return 0.0
        rack_of = self._rack_of
        if src in rack_of and dst in rack_of:
            bw, lat = self._same_rack if rack_of[src] == rack_of[dst] else self._cross_rack
        else:
            bw, lat = self._link(self._path_kinds(src, dst))
        return tokens * self.kv_bytes_per_token / bw + lat

    def _link(self, kinds: tuple[str, ...]) -> tuple[float, float]:
        """Narrowest bandwidth and summed latency (in path order, as the eager table summed them)."""
        if (link := self._by_kinds.get(kinds)) is None:
            link = self._by_kinds[kinds] = (min(self._links[k][0] for k in kinds),
                                            sum(self._links[k][1] for k in kinds))
        return link

    def _path_kinds(self, src: Any, dst: Any) -> tuple[str, ...]:
        """The link kinds from ``src`` up to the lowest common ancestor, then down to ``dst``."""
        (up_places, up_kinds), (down_places, down_kinds) = self._ascent(src), self._ascent(dst)
        common = 0  # both ascents end at the spine; drop their shared tail
        while common < min(len(up_places), len(down_places)) and up_places[-1 - common] == down_places[-1 - common]:
            common += 1
        return (*up_kinds[: len(up_places) - common], *reversed(down_kinds[: len(down_places) - common]))

    def _ascent(self, place: Any) -> tuple[list[Any], list[str]]:
        places, kinds = [place], []
        while (up := self._up[place]) is not None:  # KeyError for a place not in the cluster
            place = up[0]
            places.append(place)
            kinds.append(up[1])
        return places, kinds


# --------------------------------------------------------------------------- TOML

_KEYS = {
    "name", "model", "gpu", "nodes", "tensor_parallel", "nodes_per_rack", "intra_rack_link",
    "inter_rack_link", "inter_rack_latency_s", "kv_capacity_tokens", "reserve_fraction", "mfu",
    "max_batch", "cpu_cores", "cache", "host_tier", "price", "racks",
}


def parse_capacity(value: object, where: str = "kv_capacity_tokens") -> Capacity:
    """``"unlimited"``, ``"auto"`` or a token count in 1 .. ``LIMITS["kv_capacity_tokens"]``
    (int or its decimal string). Nothing is allocated by capacity, but it reaches the outputs as a
    64-bit integer, and no host holds 10¹² tokens of KV."""
    if value in ("unlimited", "auto"):
        return value
    if isinstance(value, str) and value.isascii() and value.isdigit() and len(value) <= 20:
        value = int(value)
    if isinstance(value, int) and not isinstance(value, bool) and value > 0:
        if value > (most := LIMITS["kv_capacity_tokens"]):
            raise UsageError(f"{where} must be at most {most:,} tokens, not {_shown(value)}")
        return value
    raise UsageError(f"{where} must be a positive token count, 'auto' or 'unlimited', not {_shown(value)}")


def load_cluster(path: str | Path) -> ClusterSpec:
    """Read a cluster TOML file (see ``docs/cluster.md``); errors name the file and the key.

    Every failure is a :class:`TraceFormatError` naming the file (and the line where known),
    within a second for any file: the file is at most :data:`MAX_CLUSTER_FILE_BYTES`, a line at
    most :data:`MAX_LINE_DOTS` dots deep (``tomllib`` is quadratic in a key's depth), and nesting
    too deep for ``tomllib``'s recursion is reported, not raised.
    """
    p = Path(path)
    with p.open("rb") as f:
        raw = f.read(MAX_CLUSTER_FILE_BYTES + 1)  # /dev/zero is not a cluster file
    if len(raw) > MAX_CLUSTER_FILE_BYTES:
        raise TraceFormatError(f"larger than {MAX_CLUSTER_FILE_BYTES:,} bytes: not a cluster file", path=str(p))
    data = _parse_toml(_decode(raw, str(p)), str(p))
    try:
        return cluster_from_dict(data, default_name=p.stem)
    except UsageError as exc:
        raise TraceFormatError(str(exc), path=str(p)) from None


def _decode(raw: bytes, path: str) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise TraceFormatError(f"not valid UTF-8: byte 0x{raw[exc.start]:02x} at offset {exc.start}", path=path,
                               line=raw.count(b"\n", 0, exc.start) + 1) from None


_STRINGS_AND_COMMENTS = re.compile(r'"(?:[^"\\\n]|\\.)*"|\'[^\'\n]*\'|#[^\n]*')


def _parse_toml(text: str, path: str) -> dict[str, Any]:
    for n, line in enumerate(text.split("\n"), 1):
        if line.count(".") > MAX_LINE_DOTS and _STRINGS_AND_COMMENTS.sub("", line).count(".") > MAX_LINE_DOTS:
            raise TraceFormatError(f"nested too deeply: more than {MAX_LINE_DOTS} dots outside strings on one line",
                                   path=path, line=n)
    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:  # Python 3.11 puts the position in the message only
        where = re.search(r" \(at line (\d+), column \d+\)", str(exc))
        message = str(exc) if where is None else str(exc)[: where.start()] + str(exc)[where.end():]
        raise TraceFormatError(f"not valid TOML: {message}", path=path,
                               line=None if where is None else int(where.group(1))) from None
    except RecursionError:  # arrays or inline tables nested ~1,000 deep
        raise TraceFormatError("not valid TOML: arrays or inline tables nested too deeply", path=path) from None
    except ValueError as exc:  # an integer of more than 4,300 digits (int() refuses it)
        raise TraceFormatError(f"not valid TOML: {str(exc).split(';')[0]}", path=path) from None


def cluster_from_dict(data: dict[str, Any], default_name: str = "cluster") -> ClusterSpec:
    unknown = sorted(set(data) - _KEYS)
    if unknown:
        raise UsageError(f"unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(_KEYS))}")
    cache = _table(data, "cache", {"ttl_s", "pin_during_tools"})
    price = _table(data, "price", {"input_per_mtok", "output_per_mtok"})
    host = _table(data, "host_tier", {"capacity_tokens", "link"})
    spec = ClusterSpec(
        name=_string(data.get("name", default_name), "name"),
        model=_preset(data.get("model", "llama-3-8b"), MODELS, "model", _model_table),
        gpu=_preset(data.get("gpu", "h100"), GPUS, "gpu", _gpu_table),
        nodes=_bounded(data.get("nodes", 8), "nodes"),
        tensor_parallel=_bounded(data.get("tensor_parallel", 1), "tensor_parallel"),
        nodes_per_rack=_bounded(data.get("nodes_per_rack", 4), "nodes_per_rack"),
        intra_rack_link=_preset(data.get("intra_rack_link", "ib400"), LINKS, "intra_rack_link", _link_table),
        inter_rack_link=_preset(data.get("inter_rack_link", "ib400"), LINKS, "inter_rack_link", _link_table),
        inter_rack_latency_s=_number(data.get("inter_rack_latency_s", 5e-6), "inter_rack_latency_s"),
        kv_capacity_tokens=parse_capacity(data.get("kv_capacity_tokens", "auto")),
        reserve_fraction=_fraction(data.get("reserve_fraction", 0.1), "reserve_fraction"),
        mfu=_fraction(data.get("mfu", 0.5), "mfu"),
        max_batch=_bounded(data.get("max_batch", 256), "max_batch"),
        cpu_cores=_bounded(data.get("cpu_cores", 8), "cpu_cores"),
        ttl_s=None if cache.get("ttl_s") is None else _number(cache["ttl_s"], "cache.ttl_s"),
        pin_during_tools=_flag(cache.get("pin_during_tools", False), "cache.pin_during_tools"),
        host_tier=None if not host else HostTier(
            _bounded(host.get("capacity_tokens"), "host_tier.capacity_tokens"),
            _preset(host.get("link", "pcie5"), LINKS, "host_tier.link", _link_table)),
        price_input_per_mtok=_number(price.get("input_per_mtok", 3.0), "price.input_per_mtok"),
        price_output_per_mtok=_number(price.get("output_per_mtok", 15.0), "price.output_per_mtok"),
    )
    if "racks" in data:
        racks = _bounded(data["racks"], "racks")
        spec = replace(spec, nodes_per_rack=-(-spec.nodes // racks))
    spec.kv_capacity_tokens_per_node()  # fail now if the weights do not fit
    return spec


def _table(data: dict[str, Any], key: str, known: set[str]) -> dict[str, Any]:
    value = data.get(key, {})
    if not isinstance(value, dict):
        raise UsageError(f"{key} must be a table, not {_shown(value)}")
    unknown = sorted(set(value) - known)
    if unknown:
        raise UsageError(f"[{key}]: unknown key(s) {', '.join(unknown)}; known: {', '.join(sorted(known))}")
    return value


def _preset(value: object, presets: dict[str, Any], key: str, build: Any) -> Any:
    if isinstance(value, str):
        if value not in presets:
            raise UsageError(f"unknown {key} {_shown(value)}; presets: {', '.join(sorted(presets))}")
        return presets[value]
    if isinstance(value, dict) and build is not None:
        return build(value, key)
    raise UsageError(f"{key} must be a preset name or a table, not {_shown(value)}")


def _spec_table(t: dict[str, Any], key: str, presets: dict[str, Any], cls: type[Any]) -> Any:
    """A preset with some fields replaced, or a whole spec; every field checked, names listed."""
    base = _preset(t["preset"], presets, f"{key}.preset", None) if "preset" in t else None
    fields = {k: v for k, v in t.items() if k != "preset"}
    known = list(cls.__dataclass_fields__)
    unknown = sorted(set(fields) - set(known))
    if unknown:
        raise UsageError(f"{key}: unknown field(s) {', '.join(unknown)}; known: {', '.join(known)}")
    fields = {name: _FIELDS[name](value, f"{key}.{name}") for name, value in fields.items()}
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
        heads, dim = _count(t.pop("kv_heads"), f"{key}.kv_heads"), _count(t.pop("head_dim"), f"{key}.head_dim")
        t["kv_dim"] = 2 * heads * dim  # checked against model.kv_dim's bound with the other fields
    if "preset" not in t and "params" in t:
        t.setdefault("active_params", t["params"])
    spec: ModelSpec = _spec_table(t, key, MODELS, ModelSpec)
    return spec


def _gpu_table(t: dict[str, Any], key: str) -> GpuSpec:
    spec: GpuSpec = _spec_table(t, key, GPUS, GpuSpec)
    return spec


def _link_table(t: dict[str, Any], key: str) -> LinkSpec:
    spec: LinkSpec = _spec_table({"name": key, "latency_s": 0, **t} if "preset" not in t else t, key, LINKS, LinkSpec)
    return spec


def _flag(value: object, key: str) -> bool:
    if not isinstance(value, bool):
        raise UsageError(f"{key} must be true or false, not {_shown(value)}")
    return value


def _string(value: object, key: str) -> str:
    if not isinstance(value, str):
        raise UsageError(f"{key} must be a string, not {_shown(value)}")
    return value


def _number(value: object, key: str) -> float:
    """A finite number within :data:`RANGES` (TOML also writes ``nan``, ``inf``, ``+inf``, ``-inf``)."""
    low, high = RANGES.get(key.rpartition(".")[2], (0, math.inf))
    if isinstance(value, bool) or not isinstance(value, int | float) or not low <= value < math.inf:
        raise UsageError(f"{key} must be a finite number >= {low:g}, not {_shown(value)}")
    if value > high:
        raise UsageError(f"{key} must be at most {high:g}, not {_shown(value)}")
    return float(value)


def _positive(value: object, key: str, most: int | None = None) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
        raise UsageError(f"{key} must be a positive integer, not {_shown(value)}")
    if most is not None and value > most:
        raise UsageError(f"{key} must be at most {most:,}, not {_shown(value)}")
    return value


def _bounded(value: object, key: str) -> int:
    """A positive TOML integer within its bound in :data:`LIMITS`."""
    return _positive(value, key, most=LIMITS[key])


def _count(value: object, key: str) -> int:
    """A model shape: a positive integer within :data:`LIMITS` (``80.0`` and ``1e3`` are allowed)."""
    if isinstance(value, float) and value.is_integer():
        value = int(value)
    return _positive(value, key, most=LIMITS[f"model.{key.rpartition('.')[2]}"])


def _fraction(value: object, key: str) -> float:
    f = _number(value, key)
    if key == "reserve_fraction" and not f < 1:
        raise UsageError(f"reserve_fraction must be within [0, 1), not {_shown(value)}")
    return f


_FIELDS: dict[str, Callable[[object, str], object]] = {
    "name": _string, "source": _string, "moe": _flag,
    "layers": _count, "hidden": _count, "kv_dim": _count, "dtype_bytes": _count, "kv_dtype_bytes": _count,
    "params": _number, "active_params": _number, "hbm_bytes": _number, "latency_s": _number,
    "hbm_bytes_per_s": _number, "peak_bf16_flops": _number, "peak_fp8_flops": _number, "bytes_per_s": _number,
}
"""How each field of a model, GPU or link table is checked."""


class _Shown(reprlib.Repr):
    def repr_int(self, x: int, level: int) -> str:
        # repr() refuses an int of more than 4,300 digits; TOML's 0x... form has no such limit
        return f"<a {x.bit_length()}-bit integer>" if x.bit_length() > 128 else super().repr_int(x, level)


_SHOWN = _Shown()
_SHOWN.maxlevel, _SHOWN.maxstring, _SHOWN.maxother = 3, 60, 60


def _shown(value: object) -> str:
    """``value`` for an error line: short, and safe for values nested thousands deep."""
    return _SHOWN.repr(value)
