"""Call-graph pictures: the lane layout, its summary of long sessions, and ``graph --format png|svg``."""

from __future__ import annotations

import io
from itertools import pairwise
from pathlib import Path

import pytest

from agentgraph.cli import main
from agentgraph.graph import MAX_COLUMNS, lane_layout, to_image
from agentgraph.model import Trace
from tests.test_plots import BIG, TRACE, png_size

ROOT = Path(__file__).resolve().parents[1]


def test_lanes_are_reused_by_agents_that_start_after_another_finished() -> None:
    """12 agents of the 1,000-hop session fit in fewer lanes; main keeps lane 0; no two agents
    of one lane overlap in columns."""
    layout = lane_layout(BIG, "big")
    assert layout.lanes["main"] == 0 and len(layout.lanes) == 12 and layout.lane_count < 12
    by_lane: dict[int, list[tuple[int, int]]] = {}
    for node, hops in layout.members.items():
        agent = hops[0].agent_id
        cols = [int(layout.pos[n][0]) for n, m in layout.members.items() if m[0].agent_id == agent]
        by_lane.setdefault(layout.lanes[agent], []).append((min(cols), max(cols)))
        assert layout.pos[node][1] == -layout.lanes[agent]
    for spans in by_lane.values():
        ordered = sorted(set(spans))
        assert all(a[1] < b[0] for a, b in pairwise(ordered)), ordered


def test_a_long_session_is_summarized_not_stretched() -> None:
    """1,000 hops: one node per agent and span of 13 hops, at most 80 columns, every hop in
    exactly one node; a short session draws each hop as itself."""
    layout = lane_layout(BIG, "big")
    assert layout.hops_per_column == 13 and layout.columns <= MAX_COLUMNS
    members = [h.hop_id for hops in layout.members.values() for h in hops]
    assert sorted(members) == sorted(h.hop_id for h in BIG) and len(set(members)) == 1000
    assert all(len({h.agent_id for h in hops}) == 1 for hops in layout.members.values())
    small = lane_layout(TRACE, "s")
    assert small.hops_per_column == 1 and set(small.members) == {"h0", "h1", "h2", "h3"}


@pytest.mark.parametrize("trace", [BIG, TRACE], ids=["1000 hops", "4 hops"])
def test_to_image_is_a_readable_png_without_graphviz(trace: Trace, monkeypatch: pytest.MonkeyPatch) -> None:
    """PNG bytes within 2,400 px a side and 1:3..3:1, the same bytes twice, with no `dot` on PATH."""
    monkeypatch.setenv("PATH", "")
    png = to_image(trace, "png")
    width, height = png_size(png)
    assert max(width, height) <= 2400 and 1 / 3 <= width / height <= 3, (width, height)
    assert to_image(trace, "png") == png


def test_svg_is_reproducible() -> None:
    """SVG bytes carry no date and fixed element ids: equal traces give equal bytes."""
    svg = to_image(TRACE, "svg")
    assert svg.startswith(b"<?xml") and b"<svg" in svg and b"dc:date" not in svg
    assert to_image(TRACE, "svg") == svg


def test_graph_png_with_output_file_and_to_a_pipe(tmp_path: Path, capsysbinary: pytest.CaptureFixture[bytes]) -> None:
    """`graph --format png -o FILE` writes the picture; without -o it goes to stdout (not a terminal)."""
    replays = str(ROOT / "replays")
    assert main(["graph", replays, "--format", "png", "-o", str(tmp_path / "g.png")]) == 0
    assert main(["graph", replays, "--format", "png"]) == 0
    out = capsysbinary.readouterr().out
    assert out == (tmp_path / "g.png").read_bytes() and out[:4] == b"\x89PNG"
    assert main(["graph", replays, "--session", "28b7", "--format", "svg", "-o", str(tmp_path / "g.svg")]) == 0
    svg = (tmp_path / "g.svg").read_bytes()  # matplotlib keeps each text as a comment beside its paths
    assert svg.startswith(b"<?xml") and b"session 28b7fd19" in svg and b"session 5e6e3a05" not in svg


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_graph_refuses_binary_to_a_terminal(monkeypatch: pytest.MonkeyPatch,
                                             capsys: pytest.CaptureFixture[str]) -> None:
    """On a terminal, png/svg without -o is one error line and exit 2, before reading the input."""
    terminal = _Terminal()
    monkeypatch.setattr("sys.stdout", terminal)
    assert main(["graph", "/nonexistent", "--format", "svg"]) == 2
    assert capsys.readouterr().err == ("error: --format svg is binary: pass -o FILE or redirect stdout "
                                       "to a file\n")
    assert terminal.getvalue() == ""
