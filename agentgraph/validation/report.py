"""Per-tool validation figures of a trace (``agentgraph validate``)."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from agentgraph.capture import attach_schemas, load_captures, session_versions
from agentgraph.costs import REPEATS, ValidationBackend, validation_us, validators
from agentgraph.model import Trace

__all__ = [
    "PERCENTILE_METHOD",
    "validation_report",
]

PERCENTILE_METHOD = "linear"
"""numpy's default: linear interpolation between the two nearest ranks."""


def validation_report(trace: Trace, backends: Sequence[ValidationBackend], repeats: int = REPEATS,
                      *, schemas: str = "off", sources: Sequence[str] = ()) -> dict[str, Any]:
    """Calls, invalid calls (first error), fast-path share and µs per call, per tool name.

    The verdicts do not depend on the backend; the times do. ``us`` holds, per backend, the
    validation time of one call (parsing is ``parse_us``, paid whatever validates). With
    ``schemas="auto"`` and a capture in the cache, calls without a schema get the captured one
    (:func:`agentgraph.capture.attach_schemas`, CLI versions read from ``sources``) and the
    report gains ``schemas`` (:meth:`agentgraph.capture.Attachment.to_json`).
    """
    captures = load_captures() if schemas == "auto" else []
    attached: dict[str, Any] = {}
    if captures:
        trace, attachment = attach_schemas(trace, captures, session_versions(sources))
        attached = {"schemas": attachment.to_json()}
    compiled = validators(trace.schemas)
    tools: dict[str, dict[str, Any]] = {}
    times: dict[str, dict[str, list[float]]] = {}
    for hop in trace.hop_list:
        for call in hop.tool_calls:
            t = tools.setdefault(call.name, {"calls": 0, "with_schema": 0, "invalid": 0, "fast": 0,
                                             "first_error": None})
            t["calls"] += 1
            validator = compiled.get(call.schema_id or "")
            if validator is None:
                continue
            t["with_schema"] += 1
            text = call.input_json.encode()
            for backend in backends:
                us = validation_us(text, validator, backend, repeats)
                times.setdefault(call.name, {}).setdefault(backend.name, []).append(us)
            verdict = validator.validate(text)
            t["fast"] += verdict.by_fast_path
            if not verdict.valid:
                t["invalid"] += 1
                if t["first_error"] is None:
                    t["first_error"] = {"hop_id": hop.hop_id, "tool_use_id": call.tool_use_id,
                                        "error": verdict.error}
    for name, t in tools.items():
        fast = t.pop("fast")
        t["fast_path_share"] = fast / t["with_schema"] if t["with_schema"] else None
        t["us"] = {b: _stats(v) for b, v in times.get(name, {}).items()}
    return {"backends": [b.name for b in backends], "percentile_method": PERCENTILE_METHOD,
            "tools": dict(sorted(tools.items())), "total": _total(tools), **attached}


def _stats(values: list[float]) -> dict[str, float]:
    p50, p99 = np.percentile(np.asarray(values), [50.0, 99.0], method="linear")
    return {"p50": round(float(p50), 3), "p99": round(float(p99), 3),
            "mean": round(float(np.mean(values)), 3)}


def _total(tools: dict[str, dict[str, Any]]) -> dict[str, Any]:
    calls = sum(t["calls"] for t in tools.values())
    with_schema = sum(t["with_schema"] for t in tools.values())
    fast = sum((t["fast_path_share"] or 0.0) * t["with_schema"] for t in tools.values())
    return {"calls": calls, "with_schema": with_schema,
            "invalid": sum(t["invalid"] for t in tools.values()),
            "fast_path_share": round(fast / with_schema, 6) if with_schema else None}
