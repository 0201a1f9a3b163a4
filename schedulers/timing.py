"""How long GPU work takes: prefill, one decode step, and KV transfers (DESIGN §5).

:class:`RooflineTiming` applies the documented formulas to a :class:`ClusterSpec`;
:class:`FixedTiming` is a test double with constant per-token costs, so a test can state the
expected time of every hop by hand.

>>> from schedulers.cluster import GPUS, MODELS, ClusterSpec
>>> t = RooflineTiming(ClusterSpec(model=MODELS["llama-3-70b"], gpu=GPUS["h100"], tensor_parallel=1))
>>> round(t.decode_step_s(batch=1, kv_tokens=0) * 1000, 1)  # 141 GB of weights / 3.35 TB/s
42.1
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

from schedulers.cluster import ClusterSpec

__all__ = [
    "PREFILL_A",
    "PREFILL_B",
    "FixedTiming",
    "RooflineTiming",
    "Timing",
    "prefill_flops",
]

PREFILL_A = 4
"""Attention coefficient of the prefill FLOP formula (Mooncake paper §2.2 form)."""
PREFILL_B = 22
"""Linear-layer coefficient of the prefill FLOP formula (Mooncake paper §2.2 form)."""


class Timing(Protocol):
    """What the simulator and the strategies ask about time."""

    def prefill_s(self, new_tokens: int, cached_tokens: int) -> float: ...

    def decode_step_s(self, batch: int, kv_tokens: int) -> float: ...


def prefill_flops(layers: int, hidden: int, new_tokens: int, cached_tokens: int,
                  linear_per_token: float | None = None) -> float:
    """layers × (a·(n² + 2np)·d + b·n·d²): FLOPs to prefill n new tokens after p cached ones.

    ``linear_per_token`` replaces the dense ``layers × b × d²`` term (mixture-of-experts models
    run only their active parameters: 2 × active FLOPs per token).

    >>> prefill_flops(1, 10, 2, 0)  # 4·(4 + 0)·10 + 22·2·100
    4560
    """
    n, p, d = new_tokens, cached_tokens, hidden
    attention = layers * PREFILL_A * (n * n + 2 * n * p) * d
    linear = layers * PREFILL_B * n * d * d if linear_per_token is None else linear_per_token * n
    return attention + linear


class RooflineTiming:
    """Prefill is compute-bound (FLOPs / (peak × MFU)); a decode step is bandwidth-bound (bytes
    of weights and KV read / HBM bandwidth), never faster than its FLOPs at peak. The formulas'
    constants are folded once, at construction."""

    __slots__ = ("_attn", "_compute_per_seq", "_kv_per_token", "_linear", "_weights", "spec")

    def __init__(self, spec: ClusterSpec) -> None:
        self.spec = spec
        m, g, tp = spec.model, spec.gpu, spec.tensor_parallel
        flops_per_s = g.peak_flops(m.dtype_bytes) * spec.mfu * tp
        linear = 2 * m.active_params if m.moe else m.layers * PREFILL_B * m.hidden * m.hidden
        self._attn = m.layers * PREFILL_A * m.hidden / flops_per_s  # × (n² + 2np)
        self._linear = linear / flops_per_s  # × n
        bandwidth = g.hbm_bytes_per_s * tp
        self._weights = (m.active_params * m.dtype_bytes if m.moe else m.weight_bytes) / bandwidth
        self._kv_per_token = m.kv_bytes_per_token / bandwidth
        self._compute_per_seq = 2 * m.active_params / (g.peak_flops(m.dtype_bytes) * tp)

    def __repr__(self) -> str:
        return f"RooflineTiming({self.spec.name!r})"

    def prefill_s(self, new_tokens: int, cached_tokens: int) -> float:
        """FLOPs of :func:`prefill_flops` over peak × MFU × tensor-parallel GPUs."""
        n = new_tokens
        if n <= 0:
            return 0.0
        return self._attn * (n * n + 2 * n * cached_tokens) + self._linear * n

    def decode_step_s(self, batch: int, kv_tokens: int) -> float:
        """max((weights + KV of the batch) / HBM bandwidth, 2 × active params × batch / peak)."""
        return max(self._weights + kv_tokens * self._kv_per_token, self._compute_per_seq * batch)


@dataclass(frozen=True, slots=True)
class FixedTiming:
    """Constant costs: ``prefill_per_token_s`` per new token, ``decode_step`` per step whatever
    the batch. For tests that compute expected latencies by hand."""

    prefill_per_token_s: float = 1e-3
    decode_step: float = 1e-2

    def prefill_s(self, new_tokens: int, cached_tokens: int) -> float:
        return max(0, new_tokens) * self.prefill_per_token_s

    def decode_step_s(self, batch: int, kv_tokens: int) -> float:
        return self.decode_step
