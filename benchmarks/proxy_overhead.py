"""What `agentgraph record` adds: time to first byte and throughput, proxy vs direct.

Both paths hit the same scripted upstream (agentgraph.emulator, its own process) on 127.0.0.1
with the same streaming request; the proxy (`agentgraph record`, its own process) also writes
one record per call. Run:

    python benchmarks/proxy_overhead.py [--requests 400] [--concurrency 32]
"""

from __future__ import annotations

import argparse
import asyncio
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import orjson
from aiohttp import ClientSession

SCRIPT = {"agents": {"main": {"turns": [{"text": "streamed answer " * 400}]}}}
BODY = orjson.dumps({"model": "bench", "max_tokens": 1000, "stream": True,
                     "messages": [{"role": "user", "content": "go"}],
                     "system": [{"type": "text", "text": "system " * 2000, "cache_control": {"type": "ephemeral"}}]})


async def _one(session: ClientSession, url: str) -> tuple[float, float]:
    start = time.perf_counter()
    async with session.post(url + "/v1/messages", data=BODY, headers={"content-type": "application/json"}) as r:
        first = None
        async for _ in r.content.iter_any():
            first = first or time.perf_counter()
    end = time.perf_counter()
    return (first or end) - start, end - start


async def _sequential(url: str, n: int) -> list[tuple[float, float]]:
    async with ClientSession() as session:
        await _one(session, url)  # warm up the connection and the upstream's cache
        return [await _one(session, url) for _ in range(n)]


async def _concurrent(url: str, n: int, width: int) -> float:
    async with ClientSession() as session:
        gate = asyncio.Semaphore(width)

        async def limited() -> None:
            async with gate:
                await _one(session, url)

        start = time.perf_counter()
        await asyncio.gather(*(limited() for _ in range(n)))
        return n / (time.perf_counter() - start)


def _pct(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[int(q) - 1] if len(values) > 1 else values[0]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--requests", type=int, default=400)
    parser.add_argument("--concurrency", type=int, default=32)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        out, script = Path(tmp) / "bench.record.jsonl", Path(tmp) / "script.json"
        script.write_bytes(orjson.dumps(SCRIPT))
        # client, upstream and proxy each in their own process, as in real use
        upstream = subprocess.Popen([sys.executable, "-c", "import sys; from agentgraph.emulator import serve; "
                                     "serve(sys.argv[1], port=0, on_ready=lambda u: print(u, flush=True))",
                                     str(script)], stdout=subprocess.PIPE, text=True)
        assert upstream.stdout is not None
        up_url = upstream.stdout.readline().strip()
        proxy = subprocess.Popen([str(Path(sys.executable).parent / "agentgraph"), "record", "--upstream",
                                  up_url, "-o", str(out)], stderr=subprocess.PIPE, text=True)
        assert proxy.stderr is not None
        found = re.search(r"recording (http://\S+)", proxy.stderr.readline())
        assert found, "the proxy did not start"
        rows = {}
        try:
            for name, url in (("direct", up_url), ("via proxy", found.group(1))):
                timings = asyncio.run(_sequential(url, args.requests))
                ttfb = [t * 1000 for t, _ in timings]
                total = [t * 1000 for _, t in timings]
                rate = asyncio.run(_concurrent(url, args.requests, args.concurrency))
                rows[name] = (statistics.median(ttfb), _pct(ttfb, 99), statistics.median(total), rate)
        finally:
            for process, stream in ((proxy, proxy.stderr), (upstream, upstream.stdout)):
                process.terminate()
                process.wait(30)
                stream.close()
        recorded = len(out.read_bytes().splitlines()) - 1
    print(f"{args.requests} streaming requests each (sequential), then {args.requests} at concurrency "
          f"{args.concurrency}; response ~{len(SCRIPT['agents']['main']['turns'][0]['text'])} chars")
    print(f"{'':12}{'TTFB p50 ms':>12}{'TTFB p99 ms':>12}{'total p50 ms':>13}{'req/s (conc.)':>15}")
    for name, (p50, p99, tot, rate) in rows.items():
        print(f"{name:12}{p50:12.2f}{p99:12.2f}{tot:13.2f}{rate:15.1f}")
    d, p = rows["direct"], rows["via proxy"]
    print(f"added TTFB p50: {p[0] - d[0]:.2f} ms; throughput proxy/direct: {p[3] / d[3]:.2f}x; "
          f"records written: {recorded}")


if __name__ == "__main__":
    main()
