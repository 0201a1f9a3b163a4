"""``agentgraph usage``: API tokens per day, model and session, priced from the dated list-price table."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import polars as pl
import pytest
from polars.testing import assert_frame_equal

import agentgraph
from agentgraph.cli import main
from agentgraph.model import Hop, Trace, Usage
from agentgraph.usage import (
    OUTPUT_NOTE,
    PRICES,
    Price,
    load_prices,
    price_for,
    usage_frame,
    usage_report,
)

ROOT = Path(__file__).resolve().parents[1]
DAY = 86_400.0
JAN_1 = 1_767_225_600.0  # 2026-01-01T00:00:00Z
INSPECT_KEYS = ("llm_hops", "hops_with_usage", "api_input_tokens", "api_cache_read_tokens",
                "api_cache_creation_tokens", "output_tokens")


def _hop(session: str, index: int, model: str, start_s: float, usage: Usage | None, output: int) -> Hop:
    return Hop(f"{session}/main/{index}", session, "main", index, model, start_s, start_s + 1.0,
               0 if usage is None else usage.prompt_tokens, output, 0, (), usage)


SMALL = Trace((
    # 1,000 in x $3 + 20,000 read x $0.30 + 3,000 5-min x $3.75 + 1,000 1-hour x $6 + 500 out x $15
    # = 3,000 + 6,000 + 11,250 + 6,000 + 7,500 = 33,750 µ$ = $0.03375
    _hop("s1", 0, "claude-sonnet-4-5-20250929", JAN_1 + 10, Usage(1000, 20_000, 4000, 500, 3000, 1000), 500),
    # a write the transcript does not split counts as 5-minute: 200 x $1 + 400 x $1.25 + 100 x $5 = $0.0012
    _hop("s1", 1, "claude-haiku-4-5-20251001", JAN_1 + 20, Usage(200, 0, 400, 100), 100),
    # 10 x $5 + 50,000 x $0.50 + 2,000 x $6.25 + 1,000 x $25 = 50 + 25,000 + 12,500 + 25,000 µ$ = $0.06255
    _hop("s2", 0, "claude-opus-4-6", JAN_1 + DAY + 5, Usage(10, 50_000, 2000, 1000, 2000, 0), 1000),
))
SMALL_COST_USD = 0.03375 + 0.0012 + 0.06255  # $0.0975


def _frame(rows: list[tuple[Any, ...]]) -> pl.DataFrame:
    return pl.DataFrame(rows, schema=usage_frame(Trace(())).schema, orient="row")


def test_frame_by_session_is_the_hand_count() -> None:
    """Per session: tokens split by TTL, cost at list prices with the 0.1x / 1.25x / 2x cache rules."""
    want = _frame([
        ("s1", 2, 1200, 20_000, 4400, 3400, 1000, 600, 0.03375 + 0.0012,
         ["claude-haiku-4-5-20251001", "claude-sonnet-4-5-20250929"]),
        ("s2", 1, 10, 50_000, 2000, 2000, 0, 1000, 0.06255, ["claude-opus-4-6"]),
    ])
    assert_frame_equal(usage_frame(SMALL, "session"), want, check_exact=False, rel_tol=1e-12)


def test_frame_by_day_and_model_are_sorted_by_key() -> None:
    """Days are UTC dates of the hop's start; models sort by id; each row's cost is to the cent."""
    by_day = usage_frame(SMALL, "day")
    assert by_day["key"].to_list() == ["2026-01-01", "2026-01-02"]
    assert [round(c, 5) for c in by_day["cost_usd"]] == [0.03495, 0.06255]
    by_model = usage_frame(SMALL, "model")
    assert by_model["key"].to_list() == ["claude-haiku-4-5-20251001", "claude-opus-4-6",
                                         "claude-sonnet-4-5-20250929"]
    assert by_model["cost_usd"].to_list() == pytest.approx([0.0012, 0.06255, 0.03375], rel=1e-12)


def test_report_total_is_the_summary_and_the_hand_cost() -> None:
    """The total carries Trace.summary()'s token keys with its numbers, and $0.0975 to the cent."""
    report = usage_report(SMALL, "day")
    summary = SMALL.summary()
    assert {k: report["total"][k] for k in INSPECT_KEYS if k != "hops_with_usage"} == {
        k: summary[k] for k in INSPECT_KEYS if k != "hops_with_usage"}
    assert report["total"]["cost_usd"] == pytest.approx(SMALL_COST_USD, rel=1e-12)
    assert round(report["total"]["cost_usd"], 2) == 0.10 and report["warnings"] == []


def test_unknown_model_costs_null_with_a_warning_naming_it() -> None:
    """A model without a price is never a silent 0: its rows and the total cost null, one warning."""
    trace = Trace((*SMALL.hop_list, _hop("s3", 0, "claude-opus-5-5", JAN_1, Usage(0, 10, 0, 1), 1),
                   _hop("s3", 1, "claude-opus-5-5", JAN_1 + 1, Usage(0, 10, 0, 1), 1)))
    report = usage_report(trace, "session")
    assert [r["cost_usd"] is None for r in report["rows"]] == [False, False, True]
    assert report["total"]["cost_usd"] is None
    assert report["total"]["priced_cost_usd"] == pytest.approx(SMALL_COST_USD, rel=1e-12)
    assert report["unpriced_models"] == ["claude-opus-5-5"]
    assert report["warnings"] == [
        "no price for claude-opus-5-5 (2 hops): cost unknown (null); --prices FILE adds models"]


def test_hop_without_api_usage_costs_null() -> None:
    """A hop with no usage (a Mooncake row) adds its output tokens, and makes its group's cost null."""
    trace = Trace((*SMALL.hop_list, _hop("s2", 1, "claude-opus-4-6", JAN_1 + DAY + 9, None, 7)))
    report = usage_report(trace, "session")
    assert report["rows"][1]["output_tokens"] == 1007 and report["rows"][1]["cost_usd"] is None
    assert report["rows"][0]["cost_usd"] is not None and report["hops_without_usage"] == 1
    assert report["warnings"] == [
        "1 hop(s) carry no API usage (e.g. Mooncake traces): their cost is unknown (null)"]


def test_long_prompts_are_warned_about() -> None:
    """Prompts over 200K tokens get a warning: long-context rates are not applied."""
    trace = Trace((_hop("s", 0, "claude-sonnet-4-5", JAN_1, Usage(200_001, 0, 0, 1), 1),))
    assert usage_report(trace)["warnings"] == [
        "1 hop(s) have prompts over 200,000 tokens: long-context rates, where the model has them, are not applied"]


@pytest.mark.parametrize(("model", "price"), [
    ("claude-opus-4-6", Price(5.0, 25.0)),
    ("claude-opus-4-5-20251101", Price(5.0, 25.0)),
    ("claude-opus-4-1-20250805", Price(15.0, 75.0)),
    ("claude-opus-4-20250514", Price(15.0, 75.0)),
    ("claude-sonnet-4-5-20250929", Price(3.0, 15.0)),
    ("claude-sonnet-4-20250514", Price(3.0, 15.0)),
    ("claude-3-7-sonnet-20250219", Price(3.0, 15.0)),
    ("claude-3-5-sonnet-20241022", Price(3.0, 15.0)),
    ("claude-haiku-4-5-20251001", Price(1.0, 5.0)),
    ("claude-3-5-haiku-20241022", Price(0.8, 4.0)),
    ("claude-3-haiku-20240307", Price(0.25, 1.25)),
    ("claude-opus-4-8", None),  # a new model is unknown, not the Opus 4 family's $15
    ("claude-opus-4-50", None),
    ("claude-test-1", None),
])
def test_price_for_takes_the_longest_family_key(model: str, price: Price | None) -> None:
    """An id matches a key equal to it or followed by ``-``; the longest such key wins."""
    assert price_for(model) == price


def test_prices_file_replaces_and_extends_the_table(tmp_path: Path) -> None:
    """TOML and JSON files: an entry of a known id replaces it, a new id or prefix is added."""
    toml = tmp_path / "p.toml"
    toml.write_text('["claude-opus"]\ninput_per_mtok = 5\noutput_per_mtok = 25\n'
                    '["claude-haiku-4-5"]\ninput_per_mtok = 2\noutput_per_mtok = 10.5\n')
    prices = load_prices(toml)
    assert price_for("claude-opus-5-5", prices) == Price(5.0, 25.0)
    assert price_for("claude-opus-4-1-20250805", prices) == Price(15.0, 75.0)  # the longer key still wins
    assert price_for("claude-haiku-4-5-20251001", prices) == Price(2.0, 10.5)
    assert len(prices) == len(PRICES) + 1
    js = tmp_path / "p.json"
    js.write_text('{"claude-test-1": {"input_per_mtok": 1, "output_per_mtok": 2}}')
    assert price_for("claude-test-1", load_prices(js)) == Price(1.0, 2.0)


BAD_PRICES = [
    ("p.toml", "[x\n", "p.toml: not valid TOML: Expected ']' at the end of a table declaration (at line 1, column 3)"),
    ("p.json", "{", "p.json:1: not valid JSON: Expecting property name enclosed in double quotes"),
    ("p.json", "[]", "p.json: expected a table of model id -> {input_per_mtok, output_per_mtok}"),
    ("p.toml", 'm = 3\n', "p.toml: m: expected a table with input_per_mtok and output_per_mtok"),
    ("p.toml", "[m]\ninput_per_mtok = 3\n", "p.toml: m: missing output_per_mtok; expected input_per_mtok and "
     "output_per_mtok"),
    ("p.toml", "[m]\ninput_per_mtok = 3\noutput_per_mtok = 1\nin = 2\n",
     "p.toml: m: unknown key(s) in; expected input_per_mtok and output_per_mtok"),
    ("p.toml", "[m]\ninput_per_mtok = nan\noutput_per_mtok = 1\n",
     "p.toml: m.input_per_mtok must be a finite number >= 0, not nan"),
    ("p.json", '{"m": {"input_per_mtok": 1, "output_per_mtok": "15"}}',
     "p.json: m.output_per_mtok must be a finite number >= 0, not '15'"),
    ("p.json", '{"m": {"input_per_mtok": -1, "output_per_mtok": 1}}',
     "p.json: m.input_per_mtok must be a finite number >= 0, not -1"),
]


@pytest.mark.parametrize(("name", "text", "line"), BAD_PRICES)
def test_bad_prices_file_is_one_error_line(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                           capsys: pytest.CaptureFixture[str], name: str, text: str,
                                           line: str) -> None:
    """A bad --prices file: exit 2, one ``error:`` line naming the file, before any import."""
    monkeypatch.chdir(tmp_path)
    Path(name).write_text(text)
    assert main(["usage", str(ROOT / "replays"), "--prices", name]) == 2
    captured = capsys.readouterr()
    assert (captured.out, captured.err) == ("", f"error: {line}\n")


def test_missing_prices_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """A missing --prices file says so, as every missing file does."""
    assert main(["usage", str(ROOT / "replays"), "--prices", str(tmp_path / "no.toml")]) == 2
    assert capsys.readouterr().err == f"error: {tmp_path / 'no.toml'}: No such file or directory\n"


def test_by_turn_is_a_clear_error(capsys: pytest.CaptureFixture[str]) -> None:
    """--by turn is refused until turns are imported (issue 14 point 1)."""
    assert main(["usage", str(ROOT / "replays"), "--by", "turn"]) == 2
    assert capsys.readouterr().err == "error: --by turn needs turn boundaries, not imported yet (issue 14 point 1)\n"
    with pytest.raises(agentgraph.UsageError, match=r"^grouping by turn needs turn boundaries"):
        usage_frame(SMALL, "turn")
    with pytest.raises(agentgraph.UsageError, match=r"^unknown grouping 'week'; known: day, model, session$"):
        usage_frame(SMALL, "week")


LEGACY_TABLE = """\
session                               input  cache_read  cache_write_5m  cache_write_1h  output  cost_usd
65e28dea-468a-48a5-ab0a-3b8805d0b5d9     34      118660           14902               0    1154    0.1492
afe7cc86-0b2c-4ecd-9fab-ca34569943c1     11       45390            4620               0     342    0.0361
bc0ffa8d-4bd9-4e06-b502-4860164c5bc8     31      111620            7850               0     959    0.0774
d415d0fe-77c0-4a60-aed8-395ec9c18876     33      100582           13905            1212    1159    0.0965
df749bd1-e005-4a7b-83a9-949e8e0bdb18     11       42580            3420               0     359    0.0310
total                                   120      418832           44697            1212    3973    0.3902
prices: Anthropic list prices as of 2026-04-16 (https://www.anthropic.com/pricing); check before relying on them
"""


def test_table_golden_on_the_legacy_fixtures(capsys: pytest.CaptureFixture[str]) -> None:
    """One row per session and a total, the price date, and the one line on output vs ccusage."""
    assert main(["usage", str(ROOT / "fixtures" / "claude_legacy" / "projects"), "--by", "session"]) == 0
    captured = capsys.readouterr()
    assert captured.out == LEGACY_TABLE + OUTPUT_NOTE + "\n" and captured.err == ""
    assert OUTPUT_NOTE.startswith("output tokens are each call's final count; ccusage 18 counts")


def test_table_says_what_is_unpriced(capsys: pytest.CaptureFixture[str]) -> None:
    """On replays/ two models have no price: a '-' cost, the priced part on its own line, one warning."""
    assert main(["usage", str(ROOT / "replays")]) == 0
    captured = capsys.readouterr()
    lines = captured.out.splitlines()
    assert lines[3] == "claude-opus-5-5                 0      377715           86488               0    2619         -"
    assert lines[7:9] == [
        "total                        6170      804847          131185            1212    6697         -",
        "cost of the priced hops: 0.3902 USD (the rest has no price)"]
    assert captured.err == ("warning: no price for claude-opus-5-5 (37 hops), claude-test-1 (5 hops): cost unknown "
                            "(null); --prices FILE adds models\n")


def _json(capsys: pytest.CaptureFixture[str], argv: list[str]) -> Any:
    assert main(argv) == 0
    return orjson.loads(capsys.readouterr().out)


@pytest.mark.parametrize("path", ["replays", "replays/recorded", "fixtures/claude_legacy/projects"])
@pytest.mark.parametrize("by", ["day", "model", "session"])
def test_totals_are_inspect_json_totals(capsys: pytest.CaptureFixture[str], path: str, by: str) -> None:
    """usage --json's total has inspect --json's token keys with the same numbers, and rows add up to it."""
    shown = _json(capsys, ["inspect", str(ROOT / path), "--json"])
    used = _json(capsys, ["usage", str(ROOT / path), "--json", "--by", by])
    total = used["total"]
    assert {k: total[k] for k in INSPECT_KEYS if k != "hops_with_usage"} == {
        k: shown[k] for k in INSPECT_KEYS if k != "hops_with_usage"}
    assert total["api_cache_creation_tokens"] == total["cache_write_5m_tokens"] + total["cache_write_1h_tokens"]
    for key in ("llm_hops", "api_input_tokens", "api_cache_read_tokens", "cache_write_5m_tokens",
                "cache_write_1h_tokens", "output_tokens"):
        assert sum(r[key] for r in used["rows"]) == total[key], key
    assert used["note"] == OUTPUT_NOTE and used["prices"]["as_of"] == "2026-04-16"


def test_json_cost_of_the_legacy_fixtures(capsys: pytest.CaptureFixture[str]) -> None:
    """The fixtures' cost, every model priced: $0.39 to the cent, the per-model rows summing to it."""
    used = _json(capsys, ["usage", str(ROOT / "fixtures" / "claude_legacy" / "projects"), "--json"])
    assert round(used["total"]["cost_usd"], 2) == 0.39 and used["warnings"] == []
    assert sum(r["cost_usd"] for r in used["rows"]) == pytest.approx(used["total"]["cost_usd"], rel=1e-12)
    assert used["total"]["cost_usd"] == used["total"]["priced_cost_usd"]


def test_prices_file_prices_the_replays(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With --prices naming the two unknown models, every row and the total have a cost, no warning."""
    prices = tmp_path / "p.toml"
    prices.write_text('["claude-opus-5-5"]\ninput_per_mtok = 5\noutput_per_mtok = 25\n'
                      '["claude-test-1"]\ninput_per_mtok = 1\noutput_per_mtok = 1\n')
    assert main(["usage", str(ROOT / "replays"), "--json", "--prices", str(prices)]) == 0
    captured = capsys.readouterr()
    used = orjson.loads(captured.out)
    assert captured.err == "" and used["unpriced_models"] == [] and used["prices"]["file"] == str(prices)
    # opus-5-5: 377,715 x $0.50 + 86,488 x $6.25 + 2,619 x $25 = $0.7948825; claude-test-1: 6,050 + 830 + 105 µ$
    assert used["total"]["cost_usd"] == pytest.approx(0.39022945 + 0.7948825 + 0.006985, rel=1e-12)
    assert round(used["total"]["cost_usd"], 2) == 1.19
