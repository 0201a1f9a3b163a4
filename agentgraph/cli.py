"""The ``agentgraph`` command line.

Exit codes: 0 ok, 1 gate regression, 2 bad input or usage, 3 internal error. Every command has
``--help``; ``--json`` prints one machine-readable object on stdout. Errors are one line,
``error: ...``. Every file is written through :mod:`agentgraph.outputs`.
"""

from __future__ import annotations

import argparse
import contextlib
import os
import signal
import sys
import threading
import traceback
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import IO, Any, TypeVar

import orjson

from agentgraph import traceio
from agentgraph.costs import BACKENDS, DEFAULT_BACKEND, DPU_CHECKS_PER_S, REPEATS
from agentgraph.errors import AgentgraphError, ImportIssue, IssueKind, NothingImportedError, UsageError
from agentgraph.model import Hop, Trace
from agentgraph.outputs import open_output, write_output
from agentgraph.sources import FORMATS, iter_import, merge

_T = TypeVar("_T")

EXIT_OK, EXIT_REGRESSION, EXIT_BAD_INPUT, EXIT_INTERNAL = 0, 1, 2, 3
EXIT_INTERRUPTED = 130  # 128 + SIGINT, as shells report it


Commands = Callable[["argparse._SubParsersAction[argparse.ArgumentParser]"], None]
"""A hook that adds subcommands; :mod:`schedulers.cli` adds ``replay`` and ``compare`` this way, so
this package never imports :mod:`schedulers`."""


def main(argv: Sequence[str] | None = None, extensions: Sequence[Commands] = ()) -> int:
    parser = _parser(extensions)
    try:
        args = parser.parse_args(argv)
    except SystemExit as exc:  # argparse: 0 for --help, 2 for usage errors
        return int(exc.code or 0)
    try:
        with _signals_unwind():
            result: int = args.run(args)
        return result
    except KeyboardInterrupt:  # Ctrl-C, SIGTERM, SIGHUP: the with-blocks on the way out cleaned up
        print("error: interrupted", file=sys.stderr)
        return EXIT_INTERRUPTED
    except BrokenPipeError as exc:
        if exc.filename is not None:  # an output file's reader (a FIFO, a socket) went away
            print(f"error: {error_line(exc)}", file=sys.stderr)
            return EXIT_BAD_INPUT
        # stdout's reader went away (e.g. `| head`): not an error
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_OK
    except (AgentgraphError, OSError) as exc:
        print(f"error: {error_line(exc)}", file=sys.stderr)
        return EXIT_BAD_INPUT
    except Exception:  # an internal bug: say so, with the traceback for the report
        traceback.print_exc()
        print("agentgraph: internal error (a bug; please report it with the traceback above)",
              file=sys.stderr)
        return EXIT_INTERNAL


@contextlib.contextmanager
def _signals_unwind() -> Iterator[None]:
    """SIGTERM and SIGHUP raise KeyboardInterrupt as Ctrl-C does, so a half-written output's
    temporary file is removed on the way out (``timeout``, CI cancellation and systemd send SIGTERM).
    Only in the main thread (signals cannot be set elsewhere); the old handlers come back after."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {sig: signal.signal(sig, _interrupt) for sig in (signal.SIGTERM, signal.SIGHUP)}
    # polars' import re-registers SIGINT at the C level with SA_RESTART, so Ctrl-C could not stop a
    # blocking open() (a FIFO without a reader): installing Python's handler again undoes that
    ctrl_c = signal.getsignal(signal.SIGINT)
    previous[signal.SIGINT] = signal.signal(signal.SIGINT, ctrl_c if callable(ctrl_c) else signal.default_int_handler)
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt(signal.Signals(signum).name)


def error_line(exc: BaseException) -> str:
    """An error as one line: an OSError as ``FILE: reason`` (never errno and repr), others as their text."""
    if isinstance(exc, OSError) and exc.strerror:
        text = f"{exc.filename}: {exc.strerror}" if exc.filename is not None else exc.strerror
    else:
        text = str(exc) or type(exc).__name__
    return " ".join(text.splitlines())


def _parser(extensions: Sequence[Commands] = ()) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="agentgraph", description="Record agent sessions, import them as "
                                "call graphs of LLM hops, inspect them, and replay them on a modeled GPU "
                                "cluster under scheduling strategies.")
    p.add_argument("--version", action="version", version=f"agentgraph {_version()}")
    sub = p.add_subparsers(dest="command", required=True, metavar="COMMAND")

    imp = sub.add_parser("import", help="import transcripts / traces into one agentgraph.trace file",
                         description="Import Claude Code transcripts (file, session dir or a whole "
                         "~/.claude/projects tree), Mooncake / agentic Mooncake traces or native "
                         "traces into one agentgraph.trace file.")
    imp.add_argument("sources", nargs="+", metavar="SOURCE")
    imp.add_argument("-o", "--output", required=True, metavar="TRACE")
    imp.add_argument("--format", choices=FORMATS, help="force the source format (default: detect)")
    imp.add_argument("--block-size", type=positive_int, metavar="TOKENS",
                     help="prefix block size in tokens (default 64; Mooncake sources keep theirs)")
    imp.add_argument("--to", choices=("agentgraph", "mooncake"), default="agentgraph",
                     help="output format: agentgraph.trace (default) or Dynamo's agentic Mooncake v2")
    imp.add_argument("--json", action="store_true", help="print a JSON summary")
    warnings_option(imp)
    _cpu_options(imp)
    imp.add_argument("--measure-cpu", action="store_true",
                     help="measure each hop's CPU work (parse, validate, assemble) on its real payloads; "
                     "timings vary between runs, so the output is no longer byte-identical")
    _schemas_option(imp)
    bar = imp.add_mutually_exclusive_group()
    bar.add_argument("--progress", dest="progress", action="store_true", default=None,
                     help="always show the progress bar, one step per session (default: only on a terminal)")
    bar.add_argument("--no-progress", dest="progress", action="store_false", help="never show it")
    imp.set_defaults(run=_cmd_import)

    val = sub.add_parser("validate", help="tool-JSON validation per tool: invalid calls, fast-path share, µs",
                         description="Validate every tool call of a trace against its tool's input "
                         "schema (recorded with the calls) and time each backend: per tool, the number "
                         "of calls, the invalid ones with the first error, the share the RE2 fast path "
                         "decides alone, and p50/p99 microseconds per call.")
    val.add_argument("trace", nargs="+", metavar="TRACE", help="a trace file, or any importable source")
    warnings_option(val)
    val.add_argument("--backend", default=",".join(BACKENDS), metavar="NAMES",
                     help=f"comma-separated backends to time (default {','.join(BACKENDS)})")
    _dpu_rate_option(val)
    val.add_argument("--repeats", type=positive_int, default=REPEATS, help="timed runs per call, fastest kept")
    val.add_argument("--json", action="store_true", help="print the per-tool figures as JSON")
    _schemas_option(val)
    val.set_defaults(run=_cmd_validate)

    sch = sub.add_parser("schemas", help="capture the tool schemas of your claude CLI for validate/import",
                         description="Tool input schemas of the installed Claude Code CLI, captured by "
                         "running it once against the scripted upstream and kept per CLI version in "
                         "$AGENTGRAPH_CACHE/schemas (default ~/.cache/agentgraph/schemas); import and "
                         "validate attach them to transcript tool calls (docs/validation.md).")
    sch_sub = sch.add_subparsers(dest="schemas_command", required=True, metavar="ACTION")
    cap = sch_sub.add_parser("capture", help="run claude once offline and store its tool schemas")
    cap.add_argument("--claude", metavar="PATH", help="the claude binary (default: claude on PATH)")
    cap.set_defaults(run=_cmd_schemas_capture)
    lst = sch_sub.add_parser("list", help="the captured CLI versions and their tools")
    lst.add_argument("--json", action="store_true", help="print them as JSON")
    lst.set_defaults(run=_cmd_schemas_list)

    ins = sub.add_parser("inspect", help="one line per session; --session: its hops (or --json totals)",
                         description="Show one line per session (hops, agents, tool calls, prompt "
                         "tokens, makespan); with --session, that session's hops: agent, prompt tokens, "
                         "prefix shared with the previous hop, new tokens, API cache read/write, output, "
                         "tools.")
    ins.add_argument("trace", nargs="+", metavar="TRACE", help="a trace file, or any importable source")
    warnings_option(ins)
    ins.add_argument("--json", action="store_true", help="print totals and per-session numbers as JSON")
    ins.add_argument("--session", help="only this session id (or a unique prefix), hop by hop")
    ins.set_defaults(run=_cmd_inspect)

    use = sub.add_parser("usage", help="API tokens and cost per day, model or session (like ccusage)",
                         description="Tokens as the API reported them (input, cache read, 5-minute and "
                         "1-hour cache writes, output) and their cost at Anthropic's list prices, per "
                         "group; totals are inspect --json's. See docs/usage-accounting.md.")
    use.add_argument("trace", nargs="+", metavar="PATH", help="a trace file, or any importable source")
    warnings_option(use)
    use.add_argument("--by", choices=("day", "model", "session", "turn"), default="model",
                     help="one row per UTC day, model (default) or session; turn needs turn boundaries "
                     "(not imported yet)")
    use.add_argument("--prices", metavar="FILE",
                     help="TOML or .json file of model id or prefix -> {input_per_mtok, output_per_mtok}; "
                     "replaces or extends the built-in list prices")
    use.add_argument("--json", action="store_true", help="print rows, total and warnings as one JSON object")
    use.set_defaults(run=_cmd_usage)

    rec = sub.add_parser("record", help="record Anthropic API calls through a local proxy",
                         description="Run a recording proxy for the Anthropic Messages API. With a "
                         "command after --, start it with ANTHROPIC_BASE_URL pointing at the proxy "
                         "and stop when it exits (the exit status is the command's); without one, "
                         "record until interrupted. API keys and auth headers are never written.")
    rec.add_argument("--upstream", required=True, metavar="URL", help="where to forward, e.g. https://api.anthropic.com")
    rec.add_argument("--host", default="127.0.0.1", help="address to listen on (default 127.0.0.1)")
    rec.add_argument("--port", type=int_range(0, 65535), default=0, help="port to listen on (default: any free one)")
    rec.add_argument("-o", "--output", required=True, metavar="FILE", help="agentgraph.record file (appended to)")
    rec.add_argument("--redact", action="store_true",
                     help="store unit hashes and sizes instead of content (imports to the same blocks)")
    rec.add_argument("--max-record-bytes", type=non_negative_int, metavar="BYTES",
                     help="keep at most BYTES of one call's body for its record, which is then marked "
                     "truncated (default 64 MiB); the client still gets every byte")
    rec.add_argument("--max-inflight-bytes", type=positive_int, metavar="BYTES",
                     help="request bodies of all calls in flight together; past it a new one gets a 413 "
                     "(default 512 MiB)")
    rec.add_argument("command", nargs=argparse.REMAINDER, metavar="-- CMD ARGS",
                     help="the program to run against the proxy")
    rec.set_defaults(run=_cmd_record)

    emu = sub.add_parser("emulate", help="serve a scripted Anthropic-compatible upstream",
                         description="Serve an Anthropic Messages API that answers from a script "
                         "(see docs/emulator.md), with streaming and prompt-caching usage, until "
                         "interrupted. Point a client at it with ANTHROPIC_BASE_URL.")
    emu.add_argument("--script", required=True, metavar="FILE")
    emu.add_argument("--host", default="127.0.0.1")
    emu.add_argument("--port", type=int_range(0, 65535), default=8787, help="0 = any free port (default 8787)")
    emu.add_argument("--time-scale", type=float, default=1.0, metavar="X",
                     help="run the cache clock X times faster (e.g. 100: 3 s of pause = 5 min of TTL)")
    emu.add_argument("--var", action="append", default=[], metavar="NAME=VALUE",
                     help="replace ${NAME} in the script")
    emu.set_defaults(run=_cmd_emulate)

    gr = sub.add_parser("graph", help="the call graph as DOT, Mermaid, JSON, PNG or SVG, critical path marked",
                        description="The call graph of each session, critical path marked. png and svg "
                        "are drawn with matplotlib (no Graphviz): one panel per session (at most 12; "
                        "--session picks one), agents in lanes, hops in start order, a session of more "
                        "than 80 hops summarized as one node per agent and span of hops.")
    gr.add_argument("trace", nargs="+", metavar="TRACE")
    warnings_option(gr)
    gr.add_argument("--format", choices=("dot", "mermaid", "json", "png", "svg"), default="dot",
                    help="dot (default), mermaid, json, or a picture: png, svg")
    gr.add_argument("--session", help="only this session id (or a unique prefix)")
    gr.add_argument("-o", "--output", metavar="FILE",
                    help="write here instead of stdout (png/svg go to stdout only when it is not a "
                    "terminal: `> graph.png`)")
    gr.set_defaults(run=_cmd_graph)
    for extend in extensions:
        extend(sub)
    return p


def _schemas_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--schemas", choices=("auto", "off"), default="auto",
                   help="attach captured CLI tool schemas to calls without one (auto: when "
                   "`agentgraph schemas capture` stored any)")


def warnings_option(p: argparse.ArgumentParser) -> None:
    """``--warnings FILE`` for a command that imports (every import warning, one per line)."""
    p.add_argument("--warnings", metavar="FILE",
                   help="write every import warning to FILE, one per line (stderr groups them by kind)")


def _cpu_options(p: argparse.ArgumentParser) -> None:
    p.add_argument("--cpu-backend", choices=BACKENDS, default=DEFAULT_BACKEND,
                   help="validation backend for --measure-cpu (default fastpath)")
    _dpu_rate_option(p)


def _dpu_rate_option(p: argparse.ArgumentParser) -> None:
    p.add_argument("--dpu-rate", type=float, default=DPU_CHECKS_PER_S, metavar="CHECKS_PER_S",
                   help="checks per second of the modeled dpu backend (default 30e6)")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("agentgraph")
    except PackageNotFoundError:
        return "unknown (not installed)"


def positive_int(text: str) -> int:
    return _int_in(text, 1, None, "a positive integer")


def non_negative_int(text: str) -> int:
    return _int_in(text, 0, None, "an integer >= 0")


def int_range(low: int, high: int) -> Callable[[str], int]:
    """An argparse ``type=`` for an integer in ``low..high`` (the bounds are documented in docs/cli.md)."""
    def convert(text: str) -> int:
        return _int_in(text, low, high, f"an integer in {low}..{high}")
    return convert


def _int_in(text: str, low: int, high: int | None, what: str) -> int:
    try:
        value = int(text)
    except ValueError:  # also for more than 4,300 digits
        raise argparse.ArgumentTypeError(f"expected {what}, got {_shown(repr(text))}") from None
    if value < low or (high is not None and value > high):
        raise argparse.ArgumentTypeError(f"expected {what}, got {_shown(text.strip())}")
    return value


def _shown(text: str, most: int = 42) -> str:
    """``text`` for an error line, cut to ``most`` characters."""
    return text if len(text) <= most else f"{text[:most]}... ({len(text)} characters)"


def positive_float(text: str) -> float:
    """A finite number > 0 (an argparse ``type=``)."""
    return _finite_float(text, "a positive number", zero_ok=False)


def non_negative_float(text: str) -> float:
    """A finite number >= 0 (an argparse ``type=``)."""
    return _finite_float(text, "a number >= 0", zero_ok=True)


def float_range(low: float, high: float) -> Callable[[str], float]:
    """An argparse ``type=`` for a finite number in ``[low, high]``: beyond a bound, float time loses
    the precision a replay needs (``--time-scale 1e300`` gave zero latencies)."""
    what = f"a number in [{low:g}, {high:g}]"

    def convert(text: str) -> float:
        value = _finite_float(text, what, zero_ok=True)
        if not low <= value <= high:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
        return value
    return convert


def _finite_float(text: str, what: str, *, zero_ok: bool) -> float:
    try:
        value = float(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
    if not ((value >= 0 if zero_ok else value > 0) and value < float("inf")):  # nan fails every comparison
        raise argparse.ArgumentTypeError(f"expected {what}, got {text}")
    return value


def argument_type(parse: Callable[[str], _T]) -> Callable[[str], _T]:
    """``parse`` as an argparse ``type=``: its :class:`UsageError` becomes argparse's usage error."""

    def convert(text: str) -> _T:
        try:
            return parse(text)
        except UsageError as exc:
            raise argparse.ArgumentTypeError(str(exc)) from None

    return convert


# --------------------------------------------------------------------------- import


def _cmd_import(args: argparse.Namespace) -> int:
    issues: list[ImportIssue] = []
    out = Path(args.output)
    totals: dict[str, int] = {}
    parts = iter_import(args.sources, issues, format=args.format, block_size=args.block_size,
                        measure_cpu=args.measure_cpu)  # a missing source fails here, before -o is touched
    from agentgraph.capture import attach_captured

    parts = attach_captured(parts, args.sources, args.schemas)
    _not_a_source(out, args.sources)
    with open_output(out) as f:  # opened first: an unusable -o fails before the import's work
        meta: dict[str, Any] = {}
        if args.measure_cpu:
            from agentgraph.costs import ValidationBackend, measure_cpu

            backend = ValidationBackend(args.cpu_backend, args.dpu_rate)
            parts = (measure_cpu(part, backend) for part in parts)
            meta = backend.meta()
        parts = _with_progress(parts, args.progress)
        if args.to == "mooncake":  # one file-wide header digest: needs the whole trace
            from agentgraph.sources.mooncake import write_agentic_mooncake

            whole = merge(list(parts))
            _accumulate(totals, whole.summary())
            write_agentic_mooncake(whole, f)
        else:
            writer = traceio.TraceWriter(f, meta)
            for part in parts:  # streams: one session in memory at a time
                writer.add(part)
                _accumulate(totals, part.summary())
            writer.close()
        _report_issues(issues, args.warnings)
        if not totals.get("llm_hops"):  # raised inside: a file being replaced is left as it was
            raise NothingImportedError(f"no usable hop found in {', '.join(args.sources)}")
    if args.json:
        print_json({**totals, "output": str(out), "warnings": len(issues),
                     "issues": [str(i) for i in issues]})
    else:
        print(f"imported {totals['sessions']} session(s), {totals['llm_hops']} hops, "
              f"{totals['tool_calls']} tool calls -> {out}"
              + (f" ({len(issues)} warning(s))" if issues else ""))
    return EXIT_OK


def _with_progress(parts: Iterator[Trace], progress: bool | None) -> Iterator[Trace]:
    """``parts`` with a bar on stderr counting sessions (no total: the import streams); ``progress``
    None draws it only on a terminal. The bar is gone once the parts are."""
    from tqdm import tqdm

    with tqdm(desc="import", unit="session", file=sys.stderr, leave=False, dynamic_ncols=True,
              disable=None if progress is None else not progress) as bar:
        for part in parts:
            yield part
            bar.update(len(part.sessions()))


def _not_a_source(out: Path, sources: Sequence[str]) -> None:
    """Refuse ``-o`` naming one of the files being imported: the import would replace its input."""
    if not out.exists():
        return
    for source in sources:
        with contextlib.suppress(OSError):
            if os.path.samefile(out, source):
                raise UsageError(f"-o {out} is also a source of this import; write the trace elsewhere")


def _accumulate(totals: dict[str, int], part: dict[str, int]) -> None:
    for key, value in part.items():
        totals[key] = totals.get(key, 0) + value


def _report_issues(issues: list[ImportIssue], warnings: str | None = None) -> None:
    """Every import warning: all of them to ``warnings`` (one per line) when given; on stderr one
    line per kind (see :func:`warning_lines`), and where that folded some, how to see each."""
    if warnings is not None:
        write_output(warnings, "".join(f"{_one_line(str(i))}\n" for i in issues))
    lines = warning_lines(issues)
    for line in lines:
        print(f"warning: {line}", file=sys.stderr)
    if len(lines) < len(issues) and warnings is None:
        print(f"warning: {len(issues)} warnings in all; --warnings FILE lists each", file=sys.stderr)


def warning_lines(issues: Sequence[ImportIssue]) -> list[str]:
    """One line per kind, in order of first appearance: a kind met once is the issue itself, a
    kind met N times is ``N × KIND (e.g. FIRST ISSUE)``.

    >>> from agentgraph.errors import ImportIssue, IssueKind
    >>> warning_lines([ImportIssue("a", 3, "invalid JSON; skipped", IssueKind.INVALID_JSON),
    ...                ImportIssue("b", None, "cannot open: Permission denied", IssueKind.CANNOT_OPEN),
    ...                ImportIssue("a", 9, "invalid JSON; skipped", IssueKind.INVALID_JSON)])
    ['2 × invalid JSON line (e.g. a:3: invalid JSON; skipped)', 'b: cannot open: Permission denied']
    """
    groups: dict[IssueKind, list[ImportIssue]] = {}
    for issue in issues:
        groups.setdefault(issue.kind, []).append(issue)
    return [_one_line(str(group[0]) if len(group) == 1 else f"{len(group)} × {kind} (e.g. {group[0]})")
            for kind, group in groups.items()]


def _one_line(text: str) -> str:
    return " ".join(text.splitlines())


# --------------------------------------------------------------------------- inspect / graph


def load_any(sources: Sequence[str], session: str | None = None, *, warnings: str | None = None) -> Trace:
    """A native trace file as is; any other source imported in memory (warnings to stderr grouped
    by kind, and each to the file ``warnings`` when given). A missing source is an error."""
    issues: list[ImportIssue] = []
    trace = merge(list(iter_import(sources, issues)))
    _report_issues(issues, warnings)
    if not trace.hop_list:
        raise NothingImportedError(f"no usable hop found in {', '.join(sources)}")
    if session is None:
        return trace
    matches = [s for s in trace.sessions() if s.startswith(session)]
    if len(matches) != 1:
        raise UsageError(f"--session {session!r} matches {len(matches)} sessions "
                         f"(of {len(trace.sessions())}); give a unique prefix")
    keep = {h.hop_id for h in trace.hop_list if h.session_id == matches[0]}
    return Trace(tuple(h for h in trace.hop_list if h.hop_id in keep),
                 tuple(e for e in trace.edges if e.src in keep and e.dst in keep),
                 tuple(a for a in trace.agents if a.session_id == matches[0]), trace.block_size,
                 trace.meta, trace.schemas)


INSPECT_COLUMNS = ("hop", "agent", "prompt", "shared", "new", "cache_rd", "cache_wr", "output",
                   "tools", "tool_wait_s")


def _cmd_inspect(args: argparse.Namespace) -> int:
    from agentgraph import graph as graphmod  # networkx loads only for commands that need it

    trace = load_any(args.trace, args.session, warnings=args.warnings)
    if args.json:
        sessions = {}
        parts = _by_session(trace)
        for sid, (path, makespan) in graphmod.session_critical_paths(trace).items():
            sessions[sid] = {**Trace(tuple(parts[sid])).summary(), "makespan_s": makespan,
                             "critical_path": path}
        print_json({**trace.summary(), "block_size": trace.block_size, "session_list": sessions})
        return EXIT_OK
    if args.session is None:
        _print_sessions(trace, sys.stdout)
    else:
        _print_tables(trace, sys.stdout)
    return EXIT_OK


def _by_session(trace: Trace) -> dict[str, list[Hop]]:
    """Hops grouped by session, sessions in order of first appearance."""
    groups: dict[str, list[Hop]] = {}
    for hop in trace.hop_list:
        groups.setdefault(hop.session_id, []).append(hop)
    return groups


# turns and active_s (issue 14 §1) go after "tool_calls" once hops carry their turn
SESSION_COLUMNS = ("session", "hops", "agents", "tool_calls", "prompt", "makespan_s")


def _print_sessions(trace: Trace, out: IO[str]) -> None:
    """One line per session, then how to see one hop by hop."""
    from agentgraph import graph as graphmod

    makespans = graphmod.session_critical_paths(trace)
    rows = [SESSION_COLUMNS]
    for sid, hops in _by_session(trace).items():
        s = Trace(tuple(hops)).summary()
        rows.append((sid, str(s["llm_hops"]), str(s["agents"]), str(s["tool_calls"]), str(s["prompt_tokens"]),
                     f"{makespans[sid][1]:.2f}"))
    _write_rows(rows, out, left=(0,))
    out.write(f"{len(rows) - 1} session(s); --session ID shows one hop by hop\n")


def _print_tables(trace: Trace, out: IO[str]) -> None:
    from agentgraph import graph as graphmod

    makespans = graphmod.session_critical_paths(trace)
    names = trace.agent_names()
    for sid, hops in _by_session(trace).items():
        s = Trace(tuple(hops)).summary()
        out.write(f"session {sid}: {s['llm_hops']} hops, {s['agents']} agent(s), "
                  f"{s['tool_calls']} tool calls, prompt {s['prompt_tokens']} tok, "
                  f"makespan {makespans[sid][1]:.2f} s\n")
        rows = [INSPECT_COLUMNS]
        for h in hops:
            u = h.usage
            rows.append((
                str(h.index), names[sid, h.agent_id], str(h.prompt_tokens), str(h.shared_prefix_tokens),
                str(h.new_tokens), "-" if u is None else str(u.cache_read_tokens),
                "-" if u is None else str(u.cache_creation_tokens), str(h.output_tokens),
                ",".join(t.name for t in h.tool_calls) or "-", f"{h.tool_wait_s:.2f}",
            ))
        _write_rows(rows, out, left=(1, 8))
        out.write("\n")


def _write_rows(rows: Sequence[tuple[str, ...]], out: IO[str], left: tuple[int, ...]) -> None:
    """Aligned columns, two spaces apart: those in ``left`` left-aligned, the others right."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  " + "  ".join(c.ljust(w) if i in left else c.rjust(w)
                                   for i, (c, w) in enumerate(zip(r, widths, strict=True))).rstrip() + "\n")


USAGE_COLUMNS = (("input", "api_input_tokens"), ("cache_read", "api_cache_read_tokens"),
                 ("cache_write_5m", "cache_write_5m_tokens"), ("cache_write_1h", "cache_write_1h_tokens"),
                 ("output", "output_tokens"))


def _cmd_usage(args: argparse.Namespace) -> int:
    from agentgraph import usage

    if args.by == "turn":
        raise UsageError("--by turn needs turn boundaries, not imported yet (issue 14 point 1)")
    prices = usage.PRICES if args.prices is None else usage.load_prices(args.prices)  # fails before the import
    report = usage.usage_report(load_any(args.trace, warnings=args.warnings), args.by, prices)
    for line in report["warnings"]:
        print(f"warning: {line}", file=sys.stderr)
    source = f"{usage.PRICE_SOURCES[0]}" + ("" if args.prices is None else f", with {args.prices}")
    note = (f"prices: Anthropic list prices as of {usage.PRICES_AS_OF} ({source}); check before relying "
            "on them")
    if args.json:
        print_json({**report, "prices": {"as_of": usage.PRICES_AS_OF, "sources": list(usage.PRICE_SOURCES),
                                         "file": args.prices}, "note": usage.OUTPUT_NOTE})
        return EXIT_OK
    _print_usage(report, sys.stdout)
    sys.stdout.write(f"{note}\n{usage.OUTPUT_NOTE}\n")
    return EXIT_OK


def _print_usage(report: dict[str, Any], out: IO[str]) -> None:
    def cells(key: str, row: dict[str, Any]) -> list[str]:
        cost = "-" if row["cost_usd"] is None else f"{row['cost_usd']:.4f}"
        return [key, *(str(row[k]) for _, k in USAGE_COLUMNS), cost]

    rows = [[report["by"], *(name for name, _ in USAGE_COLUMNS), "cost_usd"]]
    rows += [cells(r["key"], r) for r in report["rows"]] + [cells("total", report["total"])]
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    for r in rows:
        out.write("  ".join(c.ljust(w) if i == 0 else c.rjust(w)
                            for i, (c, w) in enumerate(zip(r, widths, strict=True))) + "\n")
    total = report["total"]
    if total["cost_usd"] is None and total["priced_cost_usd"]:
        out.write(f"cost of the priced hops: {total['priced_cost_usd']:.4f} USD (the rest has no price)\n")


def _cmd_record(args: argparse.Namespace) -> int:
    import signal
    import subprocess
    import threading

    from agentgraph.record import DEFAULT_MAX_INFLIGHT_BYTES, DEFAULT_MAX_RECORD_BYTES, RecordingProxy, Upstream

    try:  # a bad URL fails here, before the command starts; the message never shows credentials
        upstream = Upstream.parse(args.upstream)
    except UsageError as exc:
        raise UsageError(f"--upstream: {exc}") from None
    command = args.command[1:] if args.command[:1] == ["--"] else args.command
    proxy = RecordingProxy(
        upstream, args.output, host=args.host, port=args.port, redact=args.redact,
        max_record_bytes=DEFAULT_MAX_RECORD_BYTES if args.max_record_bytes is None else args.max_record_bytes,
        max_inflight_bytes=args.max_inflight_bytes or DEFAULT_MAX_INFLIGHT_BYTES)
    with proxy:
        print(f"recording {proxy.url} -> {upstream.url} into {args.output}", file=sys.stderr, flush=True)
        if command:
            env = {**os.environ, "ANTHROPIC_BASE_URL": proxy.url}
            child = subprocess.Popen(command, env=env)
            # Ctrl-C goes to the whole process group: the command decides what it means (Claude
            # Code cancels a turn with it); the recorder waits for the command, as `time` does
            previous = signal.signal(signal.SIGINT, signal.SIG_IGN)
            try:
                status = child.wait()
            finally:
                signal.signal(signal.SIGINT, previous)
        else:
            stop = threading.Event()
            for sig in (signal.SIGINT, signal.SIGTERM):
                signal.signal(sig, lambda *_: stop.set())
            stop.wait()
            status = EXIT_OK
    others = f" and {proxy.other_requests} other request(s)" if proxy.other_requests else ""
    print(f"recorded {proxy.calls} call(s){others} into {args.output}", file=sys.stderr)
    return status


def _cmd_emulate(args: argparse.Namespace) -> int:
    from agentgraph.emulator import load_script, serve

    pairs = [v.partition("=") for v in args.var]
    if any(not sep for _, sep, _ in pairs):
        raise UsageError("--var takes NAME=VALUE")
    if args.time_scale <= 0:
        raise UsageError(f"--time-scale must be > 0, got {args.time_scale}")
    variables = {k: v for k, _, v in pairs}
    load_script(args.script, variables)  # a bad script fails here, before the port is taken
    with contextlib.suppress(KeyboardInterrupt):  # Ctrl-C is how it stops
        serve(args.script, args.host, args.port, variables=variables, time_scale=args.time_scale,
              on_ready=lambda url: print(f"emulating {args.script} at {url}", file=sys.stderr, flush=True))
    return EXIT_OK


def _cmd_graph(args: argparse.Namespace) -> int:
    from agentgraph import graph as graphmod

    image = args.format in graphmod.IMAGE_FORMATS
    if image and not args.output and sys.stdout.isatty():
        raise UsageError(f"--format {args.format} is binary: pass -o FILE or redirect stdout to a file")
    trace = load_any(args.trace, args.session, warnings=args.warnings)
    renderers: dict[str, Callable[[Trace], str | bytes]] = {
        "dot": graphmod.to_dot,
        "mermaid": graphmod.to_mermaid,
        "json": lambda t: graphmod.json_bytes(t).decode(),
        "png": lambda t: graphmod.to_image(t, "png"),
        "svg": lambda t: graphmod.to_image(t, "svg"),
    }
    data = renderers[args.format](trace)
    if args.output:
        write_output(args.output, data)
    elif isinstance(data, bytes):
        sys.stdout.flush()
        sys.stdout.buffer.write(data)
        sys.stdout.buffer.flush()
    else:
        sys.stdout.write(data)
    return EXIT_OK


def _cmd_validate(args: argparse.Namespace) -> int:
    from agentgraph.costs import ValidationBackend
    from agentgraph.validation.report import validation_report

    names = [n.strip() for n in args.backend.split(",") if n.strip()]
    backends = [ValidationBackend(n, args.dpu_rate) for n in dict.fromkeys(names)]
    if not backends:
        raise UsageError("--backend needs at least one name")
    trace = load_any(args.trace, warnings=args.warnings)
    report = validation_report(trace, backends, args.repeats, schemas=args.schemas, sources=args.trace)
    if args.json:
        print_json(report)
    else:
        _print_validation(report, sys.stdout)
    return EXIT_OK


def _print_validation(report: dict[str, Any], out: IO[str]) -> None:
    from agentgraph.capture import schema_lines

    backends = report["backends"]
    head = ["tool", "calls", "invalid", "fast%"] + [f"{b} p50/p99 us" for b in backends]
    rows = [head]
    for name, t in report["tools"].items():
        fast = "-" if t["fast_path_share"] is None else f"{100 * t['fast_path_share']:.1f}"
        rows.append([name, str(t["calls"]), str(t["invalid"]), fast]
                    + [_p50_p99(t["us"].get(b)) for b in backends])
    widths = [max(len(r[i]) for r in rows) for i in range(len(head))]
    for r in rows:
        cells = (c.ljust(w) if i == 0 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths, strict=True)))
        out.write("  ".join(cells).rstrip() + "\n")
    total = report["total"]
    out.write(f"\n{total['calls']} tool call(s), {total['with_schema']} with a schema, {total['invalid']} invalid, "
              f"{100 * total['fast_path_share']:.1f}% decided by the fast path\n" if total["with_schema"] else
              f"\n{total['calls']} tool call(s), none with a recorded schema (legacy transcripts, redacted "
              "recordings and Mooncake traces carry none; `agentgraph schemas capture` fixes transcripts)\n")
    out.writelines(f"{line}\n" for line in schema_lines(report.get("schemas")))
    for name, t in report["tools"].items():
        if t["first_error"]:
            out.write(f"first invalid {name} call ({t['first_error']['tool_use_id']}): {t['first_error']['error']}\n")


def _cmd_schemas_capture(args: argparse.Namespace) -> int:
    from agentgraph.capture import capture_schemas, find_claude, save_capture

    capture = capture_schemas(find_claude(args.claude))
    path = save_capture(capture)
    print(f"captured {len(capture.tools)} tool schemas of Claude Code {capture.cli_version} -> {path}")
    return EXIT_OK


def _cmd_schemas_list(args: argparse.Namespace) -> int:
    from agentgraph.capture import cache_root, load_captures

    captures = load_captures()
    if args.json:
        print_json([{"cli_version": c.cli_version, "captured_at": c.captured_at, "tools": sorted(c.tools)}
                    for c in captures])
    elif not captures:
        print(f"no capture in {cache_root() / 'schemas'}; run `agentgraph schemas capture`")
    for c in [] if args.json else captures:
        print(f"{c.cli_version}  {c.captured_at}  {len(c.tools)} tools: {', '.join(sorted(c.tools))}")
    return EXIT_OK


def _p50_p99(us: dict[str, float] | None) -> str:
    return "-" if not us else f"{us['p50']:.2f}/{us['p99']:.2f}"


def print_json(obj: Any) -> None:
    sys.stdout.write(orjson.dumps(obj, option=orjson.OPT_INDENT_2).decode() + "\n")


if __name__ == "__main__":
    sys.exit(main())
