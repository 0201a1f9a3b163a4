"""Token usage and API cost of a trace, per day, model or session (``agentgraph usage``).

Tokens are the API's own counts per call (``Hop.usage``), so the totals are
:meth:`Trace.summary`'s (the ``inspect --json`` numbers): ``api_input_tokens``,
``api_cache_read_tokens``, ``api_cache_creation_tokens`` (split here into 5-minute and 1-hour
writes) and ``output_tokens`` (the call's final count; ccusage 18 reports the first line's
partial count, see ``docs/usage-accounting.md``).

Cost is priced per model from :data:`PRICES`, Anthropic's per-model list prices (input and output
$ per million tokens), with the cache rules of Anthropic's pricing page: reads at 0.1× the input
price, 5-minute writes at 1.25×, 1-hour writes at 2×. A cache write the transcript does not split
by TTL counts as a 5-minute write (the API's default TTL). A model with no price, or a hop with no
API usage (Mooncake traces), has cost ``None``, never 0; :func:`usage_report` names them.

>>> from agentgraph.model import Hop, Trace, Usage
>>> hop = Hop("s/main/0", "s", "main", 0, "claude-sonnet-4-5-20250929", 0.0, 1.0, 1_000_000,
...           100_000, 0, (), Usage(0, 1_000_000, 0, 100_000))
>>> usage_report(Trace((hop,)), "model")["total"]["cost_usd"]  # 1M reads at $0.30 + 0.1M out at $15
1.8
"""

from __future__ import annotations

import json
import math
import tomllib
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from agentgraph.errors import TraceFormatError, UsageError
from agentgraph.model import Hop, Trace

if TYPE_CHECKING:
    import polars as pl

__all__ = [
    "CACHE_READ_MULTIPLIER",
    "CACHE_WRITE_1H_MULTIPLIER",
    "CACHE_WRITE_5M_MULTIPLIER",
    "GROUPS",
    "LONG_CONTEXT_TOKENS",
    "OUTPUT_NOTE",
    "PRICES",
    "PRICES_AS_OF",
    "PRICE_SOURCES",
    "TOKEN_KEYS",
    "USAGE_SCHEMA",
    "Price",
    "load_prices",
    "price_for",
    "usage_frame",
    "usage_report",
]


@dataclass(frozen=True, slots=True)
class Price:
    """List price of one model, $ per million tokens (the replay's ``[price]`` key names)."""

    input_per_mtok: float
    output_per_mtok: float


PRICES_AS_OF = "2026-04-16"
"""The date the table is believed valid: list prices as of then, check before relying on them."""
PRICE_SOURCES = (
    "https://www.anthropic.com/pricing",
    "https://docs.claude.com/en/docs/about-claude/pricing",
)
"""Where the list prices are published; cross-checked against the LiteLLM table that ccusage
18.0.11 bundles for every model it lists (``tests/test_ccusage.py`` checks the ones in the fixtures)."""

PRICES: dict[str, Price] = {
    # Opus 4.5 and later: $5 / $25
    "claude-opus-4-7": Price(5.0, 25.0),
    "claude-opus-4-6": Price(5.0, 25.0),
    "claude-opus-4-5": Price(5.0, 25.0),
    # Opus 4 and 4.1, Opus 3: $15 / $75
    "claude-opus-4-1": Price(15.0, 75.0),
    "claude-opus-4-0": Price(15.0, 75.0),
    "claude-opus-4-20250514": Price(15.0, 75.0),
    "claude-3-opus": Price(15.0, 75.0),
    # Sonnet 3.x and 4.x: $3 / $15 (prompts up to 200K tokens, see LONG_CONTEXT_TOKENS)
    "claude-sonnet-4-6": Price(3.0, 15.0),
    "claude-sonnet-4-5": Price(3.0, 15.0),
    "claude-sonnet-4-0": Price(3.0, 15.0),
    "claude-sonnet-4-20250514": Price(3.0, 15.0),
    "claude-3-7-sonnet": Price(3.0, 15.0),
    "claude-3-5-sonnet": Price(3.0, 15.0),
    "claude-3-sonnet": Price(3.0, 15.0),
    # Haiku
    "claude-haiku-4-5": Price(1.0, 5.0),
    "claude-3-5-haiku": Price(0.8, 4.0),
    "claude-3-haiku": Price(0.25, 1.25),
}
"""Model id (or family prefix, see :func:`price_for`) -> list price, as of :data:`PRICES_AS_OF`."""

CACHE_READ_MULTIPLIER = 0.1
CACHE_WRITE_5M_MULTIPLIER = 1.25
CACHE_WRITE_1H_MULTIPLIER = 2.0
LONG_CONTEXT_TOKENS = 200_000
"""Above this many prompt tokens some models bill long-context rates, which are not applied."""

GROUPS = ("day", "model", "session")
TOKEN_KEYS = ("api_input_tokens", "api_cache_read_tokens", "api_cache_creation_tokens",
              "cache_write_5m_tokens", "cache_write_1h_tokens", "output_tokens")
"""Token columns of a usage row; the first three and ``output_tokens`` are ``inspect --json``'s."""
OUTPUT_NOTE = ("output tokens are each call's final count; ccusage 18 counts the first transcript line's "
               "partial count, so it reports less output (docs/usage-accounting.md)")


def _schema() -> dict[str, Any]:
    import polars as pl

    return {"key": pl.String, "llm_hops": pl.Int64, **dict.fromkeys(TOKEN_KEYS, pl.Int64),
            "cost_usd": pl.Float64, "models": pl.List(pl.String)}


USAGE_SCHEMA = ("key", "llm_hops", *TOKEN_KEYS, "cost_usd", "models")
"""Column order of :func:`usage_frame` (Int64 counts, Float64 ``cost_usd``, List[String] ``models``)."""


def price_for(model: str, prices: Mapping[str, Price] = PRICES) -> Price | None:
    """The price of the longest key that is ``model`` or a prefix of it ending before a ``-``.

    >>> price_for("claude-opus-4-5-20251101")
    Price(input_per_mtok=5.0, output_per_mtok=25.0)
    >>> price_for("claude-opus-4-50") is None  # "claude-opus-4-5" names a family, not a text prefix
    True
    """
    keys = [k for k in prices if model == k or model.startswith(f"{k}-")]
    return prices[max(keys, key=len)] if keys else None


def _split(hop: Hop) -> tuple[int, int, int, int, int]:
    """(input, cache read, 5-min write, 1-hour write, output); an unsplit write is a 5-minute one."""
    u = hop.usage
    if u is None:
        return 0, 0, 0, 0, hop.output_tokens
    write_1h = min(u.cache_creation_1h_tokens, u.cache_creation_tokens)
    return (u.input_tokens, u.cache_read_tokens, u.cache_creation_tokens - write_1h, write_1h,
            hop.output_tokens)


def _cost(tokens: Iterable[int], price: Price) -> float:
    inp, read, w5, w1, out = tokens
    per_input = inp + read * CACHE_READ_MULTIPLIER + w5 * CACHE_WRITE_5M_MULTIPLIER + w1 * CACHE_WRITE_1H_MULTIPLIER
    return (per_input * price.input_per_mtok + out * price.output_per_mtok) / 1e6


def _key(hop: Hop, by: str) -> str:
    if by == "day":
        return datetime.fromtimestamp(hop.start_s, UTC).date().isoformat()
    return hop.model if by == "model" else hop.session_id


class _Group:
    """Integer token sums per model of one group (cost is priced from these, not summed per hop)."""

    __slots__ = ("hops", "per_model", "unpriceable")

    def __init__(self) -> None:
        self.hops = 0
        self.unpriceable = 0  # hops without API usage
        self.per_model: dict[str, list[int]] = {}

    def add(self, hop: Hop) -> None:
        self.hops += 1
        self.unpriceable += hop.usage is None
        sums = self.per_model.setdefault(hop.model, [0] * 5)
        for i, n in enumerate(_split(hop)):
            sums[i] += n

    def row(self, key: str, prices: Mapping[str, Price]) -> dict[str, Any]:
        t = [sum(s[i] for s in self.per_model.values()) for i in range(5)]
        found = [price_for(m, prices) for m in self.per_model]
        cost = None if self.unpriceable or None in found else sum(
            _cost(s, p) for s, p in zip(self.per_model.values(), found, strict=True) if p is not None)
        return {"key": key, "llm_hops": self.hops, "api_input_tokens": t[0], "api_cache_read_tokens": t[1],
                "api_cache_creation_tokens": t[2] + t[3], "cache_write_5m_tokens": t[2],
                "cache_write_1h_tokens": t[3], "output_tokens": t[4], "cost_usd": cost,
                "models": sorted(self.per_model)}


def _groups(trace: Trace, by: str) -> dict[str, _Group]:
    if by not in GROUPS:
        if by == "turn":
            raise UsageError("grouping by turn needs turn boundaries, not imported yet (issue 14 point 1)")
        raise UsageError(f"unknown grouping {by!r}; known: {', '.join(GROUPS)}")
    groups: dict[str, _Group] = {}
    for hop in trace.hop_list:
        groups.setdefault(_key(hop, by), _Group()).add(hop)
    return dict(sorted(groups.items()))


def _rows(trace: Trace, by: str, prices: Mapping[str, Price]) -> list[dict[str, Any]]:
    return [g.row(key, prices) for key, g in _groups(trace, by).items()]


def usage_frame(trace: Trace, by: str = "model", prices: Mapping[str, Price] = PRICES) -> pl.DataFrame:
    """One row per group (``by`` in :data:`GROUPS`), sorted by key; columns :data:`USAGE_SCHEMA`."""
    import polars as pl

    return pl.DataFrame(_rows(trace, by, prices), schema=_schema())


def usage_report(trace: Trace, by: str = "model", prices: Mapping[str, Price] = PRICES) -> dict[str, Any]:
    """Rows (as :func:`usage_frame`), the total (the same keys, plus ``priced_cost_usd``: the cost of
    the hops that have a price), the models without a price, and warnings to show the user."""
    whole = _Group()
    for hop in trace.hop_list:
        whole.add(hop)
    total = {k: v for k, v in whole.row("total", prices).items() if k != "key"}
    unpriced = {m: 0 for m in sorted(whole.per_model) if price_for(m, prices) is None}
    for hop in trace.hop_list:
        if hop.model in unpriced:
            unpriced[hop.model] += 1
    total["priced_cost_usd"] = sum(_cost(s, p) for m, s in whole.per_model.items()
                                   if (p := price_for(m, prices)) is not None)
    long_context = sum(h.prompt_tokens > LONG_CONTEXT_TOKENS for h in trace.hop_list)
    return {"by": by, "rows": _rows(trace, by, prices), "total": total, "unpriced_models": sorted(unpriced),
            "hops_without_usage": whole.unpriceable,
            "warnings": _warnings(unpriced, whole.unpriceable, long_context)}


def _warnings(unpriced: Mapping[str, int], no_usage: int, long_context: int) -> list[str]:
    out = []
    if unpriced:
        named = ", ".join(f"{m} ({n} hop{'s' * (n != 1)})" for m, n in unpriced.items())
        out.append(f"no price for {named}: cost unknown (null); --prices FILE adds models")
    if no_usage:
        out.append(f"{no_usage} hop(s) carry no API usage (e.g. Mooncake traces): their cost is unknown (null)")
    if long_context:
        out.append(f"{long_context} hop(s) have prompts over {LONG_CONTEXT_TOKENS:,} tokens: long-context "
                   "rates, where the model has them, are not applied")
    return out


# --------------------------------------------------------------------------- --prices FILE

_PRICE_KEYS = ("input_per_mtok", "output_per_mtok")


def load_prices(path: str | Path, base: Mapping[str, Price] = PRICES) -> dict[str, Price]:
    """``base`` with the entries of a TOML or JSON (``.json``) file of ``model id or prefix ->
    {input_per_mtok, output_per_mtok}`` replacing those of the same id, or added."""
    text = Path(path).read_text(encoding="utf-8")
    data = _parse(text, str(path))
    if not isinstance(data, dict) or not data:
        raise TraceFormatError("expected a table of model id -> {input_per_mtok, output_per_mtok}", path=str(path))
    return {**base, **{str(model): _entry(model, value, str(path)) for model, value in data.items()}}


def _parse(text: str, path: str) -> Any:
    try:
        return json.loads(text) if path.endswith(".json") else tomllib.loads(text)
    except json.JSONDecodeError as exc:
        raise TraceFormatError(f"not valid JSON: {exc.msg}", path=path, line=exc.lineno) from None
    except (tomllib.TOMLDecodeError, ValueError, RecursionError) as exc:
        raise TraceFormatError(f"not valid TOML: {' '.join(str(exc).split())}", path=path) from None


def _entry(model: str, value: object, path: str) -> Price:
    if not isinstance(value, dict):
        raise TraceFormatError(f"{model}: expected a table with {' and '.join(_PRICE_KEYS)}", path=path)
    if set(value) != set(_PRICE_KEYS):
        unknown, missing = sorted(set(value) - set(_PRICE_KEYS)), sorted(set(_PRICE_KEYS) - set(value))
        what = f"unknown key(s) {', '.join(unknown)}" if unknown else f"missing {', '.join(missing)}"
        raise TraceFormatError(f"{model}: {what}; expected {' and '.join(_PRICE_KEYS)}", path=path)
    return Price(*(_dollars(value[k], f"{model}.{k}", path) for k in _PRICE_KEYS))


def _dollars(value: object, key: str, path: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not 0 <= value < math.inf:
        raise TraceFormatError(f"{key} must be a finite number >= 0, not {value!r}", path=path)
    return float(value)
