"""The native trace format round-trips losslessly and rejects bad files with file:line."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import agentgraph
from agentgraph import traceio
from agentgraph.errors import TraceFormatError
from agentgraph.model import Agent, Edge, EdgeKind, Hop, ToolCall, Trace, Usage

text = st.text(max_size=12)
opt_time = st.none() | st.floats(0, 2e9, allow_nan=False)
usage_st = st.builds(Usage, *[st.integers(0, 10**7)] * 6)
tool_st = st.builds(ToolCall, text, text, text, opt_time, opt_time, st.none() | st.booleans())


@st.composite
def traces(draw: st.DrawFn) -> Trace:
    n = draw(st.integers(0, 6))
    base = draw(st.lists(st.integers(0, 2**63 - 1), max_size=8))
    hops = []
    for i in range(n):
        agent = draw(st.sampled_from(["main", "sub"]))
        keep = draw(st.integers(0, len(base)))
        tail = draw(st.lists(st.integers(0, 2**63 - 1), max_size=4))
        hops.append(Hop(
            hop_id=f"s/{agent}/{i}", session_id="s", agent_id=agent, index=i,
            model=draw(text), start_s=draw(st.floats(0, 2e9, allow_nan=False)),
            end_s=draw(st.floats(0, 2e9, allow_nan=False)),
            prompt_tokens=draw(st.integers(0, 10**6)), output_tokens=draw(st.integers(0, 10**5)),
            shared_prefix_tokens=draw(st.integers(0, 10**6)),
            hash_ids=tuple(base[:keep] + tail), usage=draw(st.none() | usage_st),
            tool_calls=tuple(draw(st.lists(tool_st, max_size=3))),
            stop_reason=draw(st.none() | text), request_id=draw(st.none() | text),
        ))
    ids = [h.hop_id for h in hops]
    edges = []
    if len(ids) >= 2:
        for _ in range(draw(st.integers(0, 4))):
            a, b = draw(st.sampled_from(ids)), draw(st.sampled_from(ids))
            edges.append(Edge(a, b, draw(st.sampled_from(list(EdgeKind))),
                              draw(st.floats(0, 1e6, allow_nan=False)), draw(st.integers(0, 10**6))))
    agents = [Agent("s", "main"), Agent("s", "sub", draw(st.none() | text), "main", draw(st.none() | text))]
    return Trace(tuple(hops), tuple(edges), tuple(agents), draw(st.sampled_from([16, 64, 512])),
                 {"note": draw(text)})


@settings(max_examples=150)
@given(traces())
def test_save_load_is_lossless(tmp_path_factory: pytest.TempPathFactory, trace: Trace) -> None:
    """load(save(t)) == t, field by field, including hash deltas and the meta dict."""
    path = tmp_path_factory.mktemp("rt") / "t.trace"
    agentgraph.save(trace, path)
    again = agentgraph.load(path)
    assert again == trace
    assert again.meta == trace.meta
    assert traceio.dumps(again) == path.read_bytes()


def test_hash_ids_are_stored_as_deltas(tmp_path: Path) -> None:
    """A hop that extends the previous hop of its agent stores only its new blocks."""
    h0 = Hop("a", "s", "main", 0, "m", 0.0, 1.0, 128, 1, 0, (1, 2))
    h1 = Hop("b", "s", "main", 1, "m", 2.0, 3.0, 192, 1, 128, (1, 2, 3))
    text = traceio.dumps(Trace((h0, h1))).decode().splitlines()
    assert '"hash_base":"a","hash_keep":2,"hash_tail":[3]' in text[2]


@pytest.mark.parametrize(
    ("content", "message"),
    [
        (b"", "empty file"),
        (b'{"format":"other"}\n', "not an agentgraph.trace file"),
        (b'{"format":"agentgraph.trace","version":9,"block_size":64}\n', "unsupported agentgraph.trace version 9"),
        (b'{"format":"agentgraph.trace","version":1,"block_size":64}\n{"kind":"hop"\n', "invalid JSON"),
        (b'{"format":"agentgraph.trace","version":1,"block_size":64}\n{"kind":"hop"}\n', "bad hop record"),
        (b'{"format":"agentgraph.trace","version":1,"block_size":64}\n{"kind":"x"}\n', "unknown record kind 'x'"),
        (b'{"format":"agentgraph.trace","version":1,"block_size":"abc"}\n', "block_size must be a positive integer"),
        (b'{"format":"agentgraph.trace","version":1,"block_size":0}\n', "block_size must be a positive integer"),
        (b'{"format":"agentgraph.trace","version":1,"block_size":64,"meta":[1]}\n', "meta must be an object"),
        (b'{"format":"agentgraph.trace","version":1,"block_size":64}\n[1, 2]\n', "a record must be a JSON object"),
        (b'{"format":"agentgraph.trace","version":1,"block_size":64}\n{"kind":"edge","src":"a","dst":"b",'
         b'"kind_of_edge":"sequence","wait_s":0,"added_tokens":0}\n',
         "edge a -> b names unknown hop 'a' (not on an earlier line)"),
    ],
)
def test_bad_native_files_name_file_and_line(tmp_path: Path, content: bytes, message: str) -> None:
    """Every malformed native file raises TraceFormatError naming the file (and line)."""
    path = tmp_path / "bad.trace"
    path.write_bytes(content)
    with pytest.raises(TraceFormatError) as err:
        agentgraph.load(path)
    assert message in str(err.value)
    assert str(path) in str(err.value)
    if content.count(b"\n") == 2:
        assert f"{path}:2:" in str(err.value)
