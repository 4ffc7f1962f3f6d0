"""Detects a request running past --timeout and reports which request and where it hangs."""

from __future__ import annotations

import logging
import sys
import threading
import time
import traceback
from collections.abc import Callable
from typing import TYPE_CHECKING

from porch.access_log import escape

if TYPE_CHECKING:
    from porch.worker.connection import HTTPConnection
    from porch.worker.context import InFlight

error_log = logging.getLogger("porch.error")


class Watchdog(threading.Thread):
    """A daemon thread polling the in-flight table of one worker.

    It runs beside the event loop, so it still runs when an inline app blocks
    the loop thread (any Python code or blocking call releases the GIL
    periodically). ``on_hung(conn, inline)`` decides what happens next.
    """

    def __init__(
        self,
        *,
        inflight: InFlight,
        timeout_s: float,
        loop_thread: int,
        on_hung: Callable[[HTTPConnection, bool], None],
    ) -> None:
        super().__init__(name="porch-watchdog", daemon=True)
        self._inflight = inflight
        self._timeout_s = timeout_s
        self._loop_thread = loop_thread
        self._on_hung = on_hung
        self._reported: set[tuple[int, float]] = set()
        self._stop_event = threading.Event()

    def stop(self) -> None:
        self._stop_event.set()

    def run(self) -> None:
        interval = min(1.0, max(self._timeout_s / 4, 0.05))
        while not self._stop_event.wait(interval):
            self.check(time.monotonic())

    def check(self, now: float) -> None:
        inflight = self._inflight
        running = list(inflight.threads.items())
        inline = inflight.loop
        if inline is not None:
            running.append((self._loop_thread, inline))
        for ident, exchange in running:
            elapsed = now - exchange.watch_from
            key = (id(exchange), exchange.since)
            if elapsed <= self._timeout_s or key in self._reported:
                continue
            self._reported.add(key)
            head = exchange.head
            self.report(ident, head.method, head.path, elapsed, exchange.conn)

    def report(
        self, ident: int, method: str, path: bytes, elapsed: float, conn: HTTPConnection
    ) -> None:
        frame = sys._current_frames().get(ident)
        stack = "".join(traceback.format_stack(frame)) if frame is not None else "(no stack)\n"
        inline = ident == self._loop_thread
        error_log.error(
            "Request timeout: %s %s has run for %.1fs (--timeout %gs) in %s; "
            "the worker will be replaced. Stack of the request's thread:\n%s",
            method,
            escape(path.decode("latin-1")),
            elapsed,
            self._timeout_s,
            "the event loop thread" if inline else "an app thread",
            stack.rstrip("\n"),
        )
        self._on_hung(conn, inline)
