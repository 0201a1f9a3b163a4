"""CPU orchestration cost per hop: parse, validate and assemble, measured on the real payloads.

Around every LLM call an agent spends CPU: it parses the tool inputs the model emitted
(``parse_us``), validates each against its tool's schema (``validate_us``) and serializes the next
request, the whole conversation so far (``assemble_us``). Timings are the minimum over a few
repeats (the least disturbed run) of the actual work on the hop's own texts.

Validation runs under a pluggable backend, so replays can ask "what if validation ran elsewhere":

* ``jsonschema`` — the exact validator on the parsed value (the parse is counted in ``parse_us``);
* ``fastpath`` — :meth:`~agentgraph.validation.SchemaValidator.validate` on the text: the RE2
  fast path, the exact validator for what it does not decide;
* ``dpu`` — modeled: a regex engine off the CPU checks every call at ``dpu_checks_per_s``
  (default 30M checks/s, seed 000's DPU figure); calls its regex does not accept fall back to the
  exact validator on the CPU, measured.

Measured values change from run to run (they are timings); everything else in a trace stays
byte-identical, which is why measuring is asked for (``agentgraph import --measure-cpu``).
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, replace
from typing import TYPE_CHECKING, Any

import orjson

from agentgraph.errors import UsageError
from agentgraph.model import Hop, ToolCall, Trace

if TYPE_CHECKING:
    from agentgraph.validation import SchemaValidator

__all__ = [
    "BACKENDS",
    "DEFAULT_BACKEND",
    "DPU_CHECKS_PER_S",
    "REPEATS",
    "CallCost",
    "ValidationBackend",
    "call_costs",
    "measure_cpu",
    "time_us",
    "validation_us",
    "validators",
]

DPU_CHECKS_PER_S = 30e6
"""Rate of the modeled DPU regex engine (seed 000: "validates at 30M checks/s")."""
REPEATS = 3
"""Runs per measurement; the minimum is kept."""
BACKENDS = ("jsonschema", "fastpath", "dpu")
DEFAULT_BACKEND = "fastpath"


def time_us(work: Callable[[], object], repeats: int = REPEATS) -> float:
    """The fastest of ``repeats`` runs of ``work``, in microseconds."""
    best = None
    for _ in range(repeats):
        t0 = time.perf_counter_ns()
        work()
        dt = time.perf_counter_ns() - t0
        best = dt if best is None or dt < best else best
    return (best or 0) / 1000.0


@dataclass(frozen=True, slots=True)
class ValidationBackend:
    """Where tool-JSON validation runs; ``dpu_checks_per_s`` only matters for ``dpu``."""

    name: str = DEFAULT_BACKEND
    dpu_checks_per_s: float = DPU_CHECKS_PER_S

    def meta(self) -> dict[str, Any]:
        """What a trace measured under this backend records in its header's ``meta``."""
        if self.name == "dpu":
            return {"cpu_backend": self.name, "dpu_checks_per_s": self.dpu_checks_per_s}
        return {"cpu_backend": self.name}

    def __post_init__(self) -> None:
        if self.name not in BACKENDS:
            raise UsageError(f"unknown validation backend {self.name!r}; choose one of {', '.join(BACKENDS)}")
        if not self.dpu_checks_per_s > 0:
            raise UsageError(f"the DPU rate must be positive, got {self.dpu_checks_per_s}")


@dataclass(frozen=True, slots=True)
class CallCost:
    """One tool call under one backend: its verdict and its CPU (or modeled) time."""

    valid: bool
    by_fast_path: bool
    error: str | None
    parse_us: float
    validate_us: float


def validators(schemas: Mapping[str, Any]) -> dict[str, SchemaValidator]:
    """A compiled validator per schema id (schemas that fail to compile are left out)."""
    from agentgraph.validation import compile_schema

    out = {}
    for sid, schema in schemas.items():
        try:
            out[sid] = compile_schema(schema)
        except UsageError:
            continue
    return out


def call_costs(call: ToolCall, validator: SchemaValidator | None, backend: ValidationBackend,
               repeats: int = REPEATS) -> CallCost:
    """Parse and validate one tool call's input text, timed, under ``backend``."""
    text = call.input_json.encode()
    parse_us = time_us(lambda: _loads(text), repeats)
    if validator is None:
        return CallCost(True, False, None, parse_us, 0.0)
    verdict = validator.validate(text)
    return CallCost(verdict.valid, verdict.by_fast_path and backend.name != "jsonschema", verdict.error,
                    parse_us, validation_us(text, validator, backend, repeats))


def validation_us(text: bytes, validator: SchemaValidator, backend: ValidationBackend,
                  repeats: int = REPEATS) -> float:
    """Time to validate one input text under ``backend`` (its parse not included)."""
    if backend.name == "fastpath":
        return time_us(lambda: validator.validate(text), repeats)
    value = _loads(text)
    exact_us = time_us(lambda: validator.check(value), repeats)
    if backend.name == "jsonschema":
        return exact_us
    return 1e6 / backend.dpu_checks_per_s + (0.0 if validator.fast_accepts(text) else exact_us)


def _loads(text: bytes) -> Any:
    try:
        return orjson.loads(text)
    except orjson.JSONDecodeError:
        return None


def measure_cpu(trace: Trace, backend: ValidationBackend | str = DEFAULT_BACKEND,
                repeats: int = REPEATS) -> Trace:
    """``trace`` with every hop's ``parse_us`` and ``validate_us`` measured under ``backend``.

    ``assemble_us`` is kept: it needs the request the hop sent, which only the import sees.
    """
    chosen = ValidationBackend(backend) if isinstance(backend, str) else backend
    compiled = validators(trace.schemas)
    hops = []
    for hop in trace.hop_list:
        costs = [call_costs(t, compiled.get(t.schema_id or ""), chosen, repeats) for t in hop.tool_calls]
        hops.append(_with_costs(hop, costs))
    meta = {k: v for k, v in trace.meta.items() if k not in ("cpu_backend", "dpu_checks_per_s")}
    return replace(trace, hop_list=tuple(hops), meta={**meta, **chosen.meta()})


def _with_costs(hop: Hop, costs: list[CallCost]) -> Hop:
    return replace(hop, parse_us=sum(c.parse_us for c in costs),
                   validate_us=sum(c.validate_us for c in costs))
