"""State shared by every connection of one worker: app, limits, clock, counters."""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from porch.protocol.dates import format_http_date
from porch.protocol.h1 import H1Limits
from porch.proxy.forwarded import ForwardedRules
from porch.worker.limits import ClientLimits
from porch.worker.threads import AppThreads, LoopInbox

error_log: Final = logging.getLogger("porch.error")

# At most this many apps wait for the end of a loop iteration (start_soon): with
# 1,000 busy connections an unbounded batch held hundreds of environs and
# exchanges at once, out of the CPU caches (hello at 1,000 connections: 20.6 µs
# of CPU per request unbounded, 17.6 µs with 64; 64 connections: unchanged).
_START_BATCH_MAX: Final = 64

if TYPE_CHECKING:
    from porch.access_log import AccessLog
    from porch.config.settings import Config
    from porch.static import StaticFiles
    from porch.types import WSGIApp
    from porch.worker.connection import HTTPConnection
    from porch.worker.dispatch import Exchange


def reason_phrase(status: int) -> str:
    from http import HTTPStatus  # here: error responses only (a worker need not hold it)

    try:
        return HTTPStatus(status).phrase
    except ValueError:
        return "Error"


class InFlight:
    """Requests whose app code is running now, for the watchdog.

    ``loop`` is the exchange running on the event loop thread (inline mode),
    ``threads`` the ones running on app threads, by thread id. An exchange is
    here only while its app or its result's iteration runs: not while it waits
    for the client (see ``Exchange.watch_from``). The inline slot is one
    attribute store per request, where a table entry cost a tuple and two dict
    operations (0.1-0.2 µs per hello request).
    """

    __slots__ = ("loop", "threads")

    def __init__(self) -> None:
        self.loop: Exchange | None = None
        self.threads: dict[int, Exchange] = {}

    def step_out(self) -> tuple[Exchange | None, float]:
        """This app thread starts waiting for the client: out of the watchdog's view.
        Give what is returned to :meth:`step_in` when the wait is over."""
        return self.threads.pop(threading.get_ident(), None), time.monotonic()

    def step_in(self, away: tuple[Exchange | None, float]) -> None:
        """Back from a wait: watched again, the wait not counted as the app's time."""
        exchange, since = away
        if exchange is not None:
            exchange.watch_from += time.monotonic() - since
            self.threads[threading.get_ident()] = exchange


class WorkerContext:
    """Everything a connection needs that is per worker, not per connection.

    ``now`` and ``date_header`` are refreshed on every sweep by :meth:`tick`, so
    the hot path reads attributes instead of calling formatters. ``now`` is for
    comparisons in the sweep only: deadlines are set from the precise clock.
    """

    def __init__(
        self,
        *,
        config: Config,
        app: WSGIApp,
        loop: asyncio.AbstractEventLoop,
        access_log: AccessLog,
        base_environ: dict[str, object],
        on_request_limit: Callable[[], None],
    ) -> None:
        self.config = config
        self.app = app
        self.loop = loop
        self.access_log = access_log
        self.access_logging = access_log.enabled  # decided once, when logging was set up
        self.base_environ = base_environ
        self.limits = H1Limits(
            max_request_line=config.limit_request_line,
            max_fields=config.limit_request_fields,
            max_field_size=config.limit_request_field_size,
            max_body_bytes=config.limit_request_body,
        )
        self.inline = config.threads == 1
        self.loop_thread = threading.get_ident()  # built on the thread that runs the loop
        self.stream_bodies = not config.request_buffering  # --no-request-buffering
        self.executor: AppThreads | None = (
            None if self.inline else AppThreads(config.threads, name_prefix="porch-app")
        )
        # From an app thread: run a call on the loop (batched wake-ups, in order).
        self.to_loop = LoopInbox(loop).post
        # Trusted-proxy rules, bound once (build_environ calls it for forwarding headers).
        self.apply_forwarding = ForwardedRules(
            config.forwarded_allow_ips, style=config.forwarded_headers
        ).apply
        self.proxy_allow = ForwardedRules(config.proxy_allow_from)
        self.static: StaticFiles | None = None
        if config.static:  # imported only when configured: most workers serve no files
            from porch.static import StaticFiles

            # Its Last-Modified must not be later than the Date this worker sends.
            self.static = StaticFiles.from_config(config, date_clock=self.date_seconds)
        self.client_limits = ClientLimits(config)
        # Load shedding (threads mode): at this many app jobs running or waiting for a
        # thread (app_jobs), a new request gets 503. A response going out by sendfile,
        # or parked until a slow client reads, holds no thread and does not count.
        self.shed_at = (
            config.threads + config.request_queue
            if config.threads > 1 and config.request_queue
            else 0
        )
        self._shed_logged = 0.0
        self.keep_alive = config.keep_alive > 0
        self.server_header = b"Server: porch\r\n" if config.server_header else b""
        self.connections: set[HTTPConnection] = set()
        self.max_connections = config.worker_connections
        # Set by the process: pause (False) or resume (True) accepting connections.
        self.set_accepting: Callable[[bool], None] | None = None
        self.accept_paused = False
        self.inflight = InFlight()
        self.stopping = False
        # Set as soon as a graceful stop is asked for: by the TERM handler at once, even
        # while an inline app runs on the loop thread, so its response already carries
        # Connection: close; ``stopping`` follows when the loop runs the stop itself.
        self.stop_asked = False
        self.requests_served = 0
        self.max_requests = 0  # set by the process (includes jitter)
        self._on_request_limit = on_request_limit
        self.now = time.monotonic()
        self.date_header = b""
        self.date_server_header = b""  # both lines, for responses without their own Server
        self._date_second = -1
        self._starts: list[Exchange] = []  # inline mode: apps to run this loop iteration
        self.tick()

    def start_soon(self, exchange: Exchange) -> None:
        """Inline mode: run ``exchange``'s app once the loop has delivered every read
        ready now (one callback per loop iteration; apps run in arrival order), or
        at once with the batch when it reaches _START_BATCH_MAX.

        Parsing all ready requests before running any app, rather than read, app,
        write per connection, measured 33.4 -> 24.1 µs of CPU per hello request
        (pure Python) and 151 -> 136 µs per Flask request: the app's code stays hot
        in the CPU caches through a batch, and the responses leave in a burst that
        the client answers in one, so both sides wake up less often.
        """
        starts = self._starts
        starts.append(exchange)
        if len(starts) == 1:
            self.loop.call_soon(self._start_all)
        elif len(starts) >= _START_BATCH_MAX:
            self._start_all()

    def _start_all(self) -> None:
        starts, self._starts = self._starts, []
        for exchange in starts:
            try:
                exchange.start_queued()
            except Exception:  # a porch bug: lose this connection, not the rest of the batch
                error_log.exception("Error starting a request")
                exchange.conn.abort()

    def tick(self) -> None:
        """Refresh the coarse clock and the cached Date header (RFC 9110 §6.6.1)."""
        self.now = time.monotonic()
        second = int(time.time())
        if second != self._date_second:
            self._date_second = second
            self.date_header = b"Date: " + format_http_date(second).encode() + b"\r\n"
            self.date_server_header = self.date_header + self.server_header

    def date_seconds(self) -> int:
        """The time the cached Date header states, in seconds since the epoch."""
        return self._date_second

    def connection_opened(self, conn: HTTPConnection) -> None:
        connections = self.connections
        connections.add(conn)
        if len(connections) >= self.max_connections and not self.accept_paused:
            # --worker-connections: leave further clients in the shared backlog,
            # where another worker (or this one, later) accepts them.
            self.accept_paused = True
            if self.set_accepting is not None:
                self.set_accepting(False)

    def connection_closed(self, conn: HTTPConnection) -> None:
        connections = self.connections
        connections.discard(conn)
        if self.accept_paused and len(connections) < self.max_connections and not self.stopping:
            self.accept_paused = False
            if self.set_accepting is not None:
                self.set_accepting(True)

    def app_jobs(self) -> int:
        """App jobs running on, or queued for, the app threads (0 in inline mode)."""
        return 0 if self.executor is None else self.executor.pending()

    def shedding(self) -> None:
        """Log load shedding at most once every 10 s."""
        now = time.monotonic()
        if now - self._shed_logged >= 10.0:
            self._shed_logged = now
            error_log.warning(
                "shedding load: %d requests in or waiting for the %d app threads "
                "(--request-queue %d); answering 503",
                self.app_jobs(),
                self.config.threads,
                self.config.request_queue,
            )

    def request_done(self) -> None:
        self.requests_served += 1
        if self.max_requests and self.requests_served >= self.max_requests:
            self.max_requests = 0
            self._on_request_limit()

    @property
    def sweep_interval(self) -> float:
        """Seconds between sweeps: deadlines fire at most this late (a quarter of the
        shortest timeout, at most one second)."""
        config = self.config
        timeouts = (
            config.header_timeout,
            config.body_timeout,
            config.keep_alive,
            config.write_timeout,
        )
        return max(0.05, min([1.0, *(t / 4 for t in timeouts if t > 0)]))

    def sweep(self) -> None:
        """Enforce per-connection deadlines (header, body, keep-alive, write)."""
        if self.client_limits.active:
            self.client_limits.prune()
        now = self.now
        for conn in list(self.connections):
            deadline = conn.deadline
            if deadline and deadline <= now:
                conn.on_deadline()
