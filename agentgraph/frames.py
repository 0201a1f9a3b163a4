"""Declared schemas of the polars frames agentgraph returns (imported only when a frame is built,
so the command line starts without loading polars)."""

from __future__ import annotations

from collections.abc import Sequence

import polars as pl

__all__ = [
    "HOPS_SCHEMA",
    "TOOL_CALLS_SCHEMA",
    "Schema",
    "frame",
]

Schema = dict[str, pl.DataType | type[pl.DataType]]

HOPS_SCHEMA: Schema = {
    "hop_id": pl.String,
    "session_id": pl.String,
    "agent_id": pl.String,
    "agent_name": pl.String,
    "index": pl.Int64,
    "model": pl.String,
    "start_s": pl.Float64,
    "end_s": pl.Float64,
    "latency_s": pl.Float64,
    "prompt_tokens": pl.Int64,
    "shared_prefix_tokens": pl.Int64,
    "new_tokens": pl.Int64,
    "output_tokens": pl.Int64,
    "api_input_tokens": pl.Int64,
    "api_cache_read_tokens": pl.Int64,
    "api_cache_creation_tokens": pl.Int64,
    "n_blocks": pl.Int64,
    "tool_calls": pl.Int64,
    "tools": pl.List(pl.String),
    "tool_wait_s": pl.Float64,
    "stop_reason": pl.String,
    "parse_us": pl.Float64,
    "validate_us": pl.Float64,
    "assemble_us": pl.Float64,
}
"""Schema of :meth:`Trace.hops`; ``agent_name`` is :meth:`Trace.agent_names`' (the name ``inspect``
and ``graph`` show), API usage columns are null where the source had none, CPU columns
(``*_us``) where nothing was measured (``agentgraph import --measure-cpu``)."""

TOOL_CALLS_SCHEMA: Schema = {
    "hop_id": pl.String,
    "session_id": pl.String,
    "agent_id": pl.String,
    "tool_use_id": pl.String,
    "name": pl.String,
    "input_bytes": pl.Int64,
    "duration_s": pl.Float64,
    "is_error": pl.Boolean,
    "schema_id": pl.String,
}


def frame(rows: Sequence[Sequence[object]], schema: Schema) -> pl.DataFrame:
    """A frame from row tuples, with exactly ``schema``'s columns and types."""
    return pl.DataFrame(rows, schema=schema, orient="row")
