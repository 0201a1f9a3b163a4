"""An aiohttp application served from a background thread (the emulator, the recording proxy).

Nothing starts in the constructor; :meth:`BackgroundApp.start` binds the port and returns.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import threading
from collections.abc import Awaitable, Callable
from typing import TypeVar

from aiohttp import web

__all__ = ["BackgroundApp"]

T = TypeVar("T")


class BackgroundApp:
    """Serves ``make_app()`` on ``host:port`` (0 = ephemeral) in a daemon thread."""

    def __init__(self, make_app: Callable[[], web.Application], host: str = "127.0.0.1",
                 port: int = 0, name: str = "agentgraph-server", shutdown_timeout_s: float = 60.0) -> None:
        self.make_app, self.host, self.port_wanted, self.name = make_app, host, port, name
        self.shutdown_timeout_s = shutdown_timeout_s
        self.port: int | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._thread: threading.Thread | None = None
        self._runner: web.AppRunner | None = None

    @property
    def url(self) -> str:
        if self.port is None:
            raise RuntimeError(f"{self.name} is not running")
        return f"http://{self.host}:{self.port}"

    def start(self) -> None:
        """Start serving; returns once the port is bound."""
        assert self._loop is None, f"{self.name} is already running"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True, name=self.name)
        self._thread.start()
        try:
            self.port = self.run(self._start_site(), timeout_s=30)
        except OSError as exc:  # one line naming where: not the resolver's or asyncio's wording alone
            raise OSError(exc.errno, f"cannot listen on {self.host}:{self.port_wanted}: {_reason(exc)}") from None

    def run(self, coro: Awaitable[T], timeout_s: float | None = None) -> T:
        """Run a coroutine on the server's loop and wait for its result."""
        assert self._loop is not None, f"{self.name} is not running"
        return asyncio.run_coroutine_threadsafe(coro, self._loop).result(timeout_s)  # type: ignore[arg-type]

    def stop(self, then: Callable[[], Awaitable[None]] | None = None) -> None:
        """Stop serving (calls in flight get ``shutdown_timeout_s``, then are cancelled), run
        ``then()`` on the loop (e.g. to close client sessions), release thread, loop and port."""
        if self._loop is None or self._thread is None:
            return
        if self._runner is not None:
            self.run(self._runner.cleanup(), timeout_s=self.shutdown_timeout_s + 30)
        if then is not None:
            self.run(then(), timeout_s=30)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=30)
        self._loop.close()
        self._loop = self._thread = self._runner = None
        self.port = None

    async def _start_site(self) -> int:
        self._runner = web.AppRunner(self.make_app(), access_log=None, shutdown_timeout=self.shutdown_timeout_s)
        await self._runner.setup()
        await web.TCPSite(self._runner, self.host, self.port_wanted).start()
        return int(self._runner.addresses[0][1])


def _reason(exc: OSError) -> str:
    """``Address already in use``, ``Name or service not known``: the OS's words for ``exc``."""
    if exc.errno is not None and exc.errno > 0:
        with contextlib.suppress(ValueError):
            if (text := os.strerror(exc.errno)) and not text.startswith("Unknown error"):
                return text
    return exc.strerror or type(exc).__name__
