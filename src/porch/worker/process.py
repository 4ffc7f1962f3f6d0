"""The worker process: load the app, run the event loop, beat, stop gracefully."""

from __future__ import annotations

import asyncio
import faulthandler
import logging
import math
import os
import random
import signal
import socket
import sys
import time
from typing import TYPE_CHECKING, NoReturn

from porch.access_log import AccessLog
from porch.edge.compress import Compressor
from porch.errors import AppLoadError, ExitCode
from porch.log import reopen_log_files
from porch.worker.acceptor import Acceptor
from porch.worker.connection import HTTPConnection
from porch.worker.context import WorkerContext
from porch.worker.malloc import release_free_memory
from porch.worker.watchdog import Watchdog
from porch.wsgi.environ import base_environ
from porch.wsgi.file_wrapper import FileWrapper
from porch.wsgi.loader import load_app

if TYPE_CHECKING:
    from porch.config.settings import Config
    from porch.ipc import WorkerChannel
    from porch.types import WSGIApp

error_log = logging.getLogger("porch.error")

_MASTER_SIGNALS = (
    signal.SIGHUP,
    signal.SIGTERM,
    signal.SIGINT,
    signal.SIGQUIT,
    signal.SIGUSR1,
    signal.SIGUSR2,
    signal.SIGTTIN,
    signal.SIGTTOU,
    signal.SIGCHLD,
    signal.SIGWINCH,
)


_FULL_WARNING_INTERVAL_S = 10  # the --worker-connections warning, at most this often

_HANDLED_SIGNALS = frozenset({signal.SIGTERM, signal.SIGINT, signal.SIGQUIT, signal.SIGUSR1})


def run_worker(
    *,
    config: Config,
    listeners: list[socket.socket],
    app: WSGIApp | None,
    channel: WorkerChannel,
    worker_id: int,
) -> NoReturn:
    """Serve until told to stop, then leave the process with a meaningful exit code."""
    code: int = ExitCode.WORKER_BOOT_ERROR
    try:
        code = Worker(config=config, listeners=listeners, app=app, channel=channel).run()
    except BaseException:
        error_log.exception("worker %d failed", os.getpid())
    finally:
        logging.shutdown()
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def new_event_loop() -> asyncio.AbstractEventLoop:
    """uvloop when installed; ``PORCH_LOOP=asyncio`` forces the stdlib loop (tests, debugging)."""
    if os.environ.get("PORCH_LOOP") == "asyncio":
        return asyncio.new_event_loop()
    try:
        import uvloop
    except ImportError:
        return asyncio.new_event_loop()
    loop: asyncio.AbstractEventLoop = uvloop.new_event_loop()
    return loop


class Worker:
    """One worker process's life: boot, serve, drain, exit."""

    def __init__(
        self,
        *,
        config: Config,
        listeners: list[socket.socket],
        app: WSGIApp | None,
        channel: WorkerChannel,
    ) -> None:
        self.config = config
        self.listeners = listeners
        self.app = app
        self.channel = channel
        self.exit_code: int = ExitCode.OK
        self.acceptor: Acceptor | None = None
        self.ctx: WorkerContext | None = None
        self.loop = new_event_loop()
        self.stop_deadline = 0.0
        self.watchdog: Watchdog | None = None
        self.master_pid = os.getppid()
        self.served_by_last_tick = 0
        self.next_tick: asyncio.TimerHandle | asyncio.Handle | None = None  # one chain only
        self.full_warned_at = -math.inf  # last --worker-connections warning
        self.served_by_last_trim = -1  # trim once after booting too (the app's import garbage)

    def run(self) -> int:
        for sig in _MASTER_SIGNALS:
            signal.signal(sig, signal.SIG_DFL)
        # USR1 (reopen the logs, e.g. from logrotate) must not end a worker still
        # importing the app, as its default action would: held until the loop runs.
        signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGUSR1})
        faulthandler.enable(all_threads=True)  # SIGABRT from the master dumps every stack
        app = self.app
        if app is None:
            try:
                app = load_app(
                    self.config.app or "",
                    chdir=self.config.chdir,
                    pythonpath=self.config.pythonpath,
                )
            except AppLoadError as exc:
                detail = f"\n{exc.user_traceback.rstrip()}" if exc.user_traceback else ""
                error_log.error("Failed to load the application: %s%s", exc, detail)
                return ExitCode.APP_LOAD_ERROR
            except KeyboardInterrupt:  # raised by the app's import: it did not load
                error_log.error(
                    "Failed to load the application: importing %r was interrupted "
                    "(KeyboardInterrupt)", self.config.app, exc_info=True,
                )  # fmt: skip
                return ExitCode.APP_LOAD_ERROR
        loop = self.loop
        asyncio.set_event_loop(loop)
        # uvloop listens for signals only inside run_forever(): one arriving before
        # would be lost. Hold them until the loop runs (see _running); the threads
        # started meanwhile inherit the mask, so the loop thread receives them.
        signal.pthread_sigmask(signal.SIG_BLOCK, _HANDLED_SIGNALS)
        self.ctx = self._make_context(Compressor.wrap(app, self.config))
        loop.run_until_complete(self._serve())
        loop.call_soon(self._running)
        try:
            loop.run_forever()
        finally:
            if self.watchdog is not None:
                self.watchdog.stop()
            if self.ctx.executor is not None:
                self.ctx.executor.shutdown()
        return self.exit_code

    def _make_context(self, app: WSGIApp) -> WorkerContext:
        config = self.config
        name, port = _server_address(self.listeners[0])
        ctx = WorkerContext(
            config=config,
            app=app,
            loop=self.loop,
            access_log=AccessLog(config),
            base_environ=base_environ(
                server_name=name,
                server_port=port,
                url_scheme="http",
                multithread=config.threads > 1,
                multiprocess=config.workers > 1,
                errors=sys.stderr,
                file_wrapper=FileWrapper,
            ),
            on_request_limit=self._request_limit,
        )
        if config.max_requests:
            ctx.max_requests = config.max_requests + random.randint(0, config.max_requests_jitter)
        if config.timeout > 0:
            self.watchdog = Watchdog(
                inflight=ctx.inflight,
                timeout_s=config.timeout,
                loop_thread=ctx.loop_thread,
                on_hung=self._hung,
            )
            self.watchdog.start()
        return ctx

    async def _serve(self) -> None:
        ctx = self.ctx
        assert ctx is not None
        self.acceptor = Acceptor(
            loop=self.loop, listeners=self.listeners, factory=lambda: HTTPConnection(ctx)
        )
        self.acceptor.start()
        ctx.set_accepting = self._set_accepting

    def _set_accepting(self, accepting: bool) -> None:
        ctx = self.ctx
        assert ctx is not None and self.acceptor is not None
        if not accepting:
            if ctx.now >= self.full_warned_at + _FULL_WARNING_INTERVAL_S:
                self.full_warned_at = ctx.now
                error_log.warning(
                    "worker %d reached --worker-connections %d: not accepting until one"
                    " closes (said at most every %ds)",
                    os.getpid(),
                    ctx.max_connections,
                    _FULL_WARNING_INTERVAL_S,
                )
            self.acceptor.pause()
        elif not ctx.stopping:
            self.acceptor.start()

    def _running(self) -> None:
        """First callback of the running loop: take signals, then report ready."""
        self._install_signals()
        signal.pthread_sigmask(signal.SIG_UNBLOCK, _HANDLED_SIGNALS)  # pending ones arrive now
        self.channel.notify_ready()
        self._tick()

    def _install_signals(self) -> None:
        loop = self.loop
        # TERM is a Python-level handler, not the loop's: it runs at once, also inside
        # an inline app on this thread (the loop's handlers wait for the app to return),
        # so the response being built says Connection: close. The loop still wakes
        # for it: the handlers below make it watch the signal wakeup fd, and it runs
        # Python-level handlers for signals it has none for.
        signal.signal(signal.SIGTERM, self._term_received)
        loop.add_signal_handler(signal.SIGINT, self.fast_stop)
        loop.add_signal_handler(signal.SIGQUIT, self.fast_stop)
        loop.add_signal_handler(signal.SIGUSR1, reopen_log_files)
        for sig in (signal.SIGHUP, signal.SIGTTIN, signal.SIGTTOU, signal.SIGWINCH):
            signal.signal(sig, signal.SIG_IGN)

    def _tick(self) -> None:
        ctx = self.ctx
        assert ctx is not None
        ctx.tick()
        ctx.sweep()
        self.channel.beat()
        if os.getppid() != self.master_pid and not ctx.stopping:
            error_log.warning("worker %d: the master is gone; stopping", os.getpid())
            self.graceful_stop()  # which ticks again at once
            return
        if ctx.stopping:
            idle = not ctx.connections and not (self.acceptor and self.acceptor.adopting)
            if idle or ctx.now >= self.stop_deadline:
                if not idle:
                    busy = sum(1 for conn in ctx.connections if conn.exchange is not None)
                    error_log.warning(
                        "worker %d: --graceful-timeout %gs passed; closing %d connections"
                        " (%d with a request in progress)",
                        os.getpid(),
                        self.config.graceful_timeout,
                        len(ctx.connections),
                        busy,
                    )
                self.loop.stop()
                return
            self.next_tick = self.loop.call_later(0.05, self._tick)
            return
        served = ctx.requests_served
        if served == self.served_by_last_tick and served != self.served_by_last_trim:
            # Idle for a tick after serving: hand back what the requests freed.
            self.served_by_last_trim = served
            release_free_memory()
        self.served_by_last_tick = served
        self.next_tick = self.loop.call_later(ctx.sweep_interval, self._tick)

    def _request_limit(self) -> None:
        error_log.info("worker %d reached --max-requests: recycling", os.getpid())
        self.graceful_stop()

    def _term_received(self, signum: int, frame: object) -> None:
        """SIGTERM (Python-level, between two bytecodes of whatever runs): note it, and
        let the loop run the graceful stop."""
        if self.ctx is not None:
            self.ctx.stop_asked = True
        if not self.loop.is_closed():  # after the loop: the worker is leaving anyway
            self.loop.call_soon_threadsafe(self.graceful_stop)

    def graceful_stop(self) -> None:
        """Stop accepting, serve what is already queued, finish in-flight requests."""
        ctx = self.ctx
        assert ctx is not None
        if ctx.stopping:
            return
        ctx.stopping = ctx.stop_asked = True
        self.channel.notify_leaving()  # the master may fork the replacement while we drain
        # Not ctx.now: the coarse clock may be a tick (or an inline request) old.
        self.stop_deadline = time.monotonic() + self.config.graceful_timeout
        if self.acceptor is not None:
            # Connections the kernel already queued for us were promised service.
            self.acceptor.drain()
        # Then let go of the listening sockets: once every porch process has (the
        # master closes its copies as it signals a stop), the kernel refuses new
        # connections at once instead of queueing them for nobody to accept.
        for sock in self.listeners:
            sock.close()
        adopting = len(self.acceptor.adopting) if self.acceptor is not None else 0
        error_log.info("worker %d stopping: not accepting, finishing %d connections",
                       os.getpid(), len(ctx.connections) + adopting)  # fmt: skip
        for conn in list(ctx.connections):
            conn.begin_shutdown()
        if self.next_tick is not None:  # tick now instead: a second chain would stop twice
            self.next_tick.cancel()
        self.next_tick = self.loop.call_soon(self._tick)

    def fast_stop(self) -> None:
        self.loop.stop()

    def _hung(self, conn: HTTPConnection, inline: bool) -> None:
        """Called from the watchdog thread."""
        if inline:
            # The loop thread is stuck inside the app: nothing else can be served.
            logging.shutdown()
            os._exit(ExitCode.WORKER_TIMEOUT)
        self.loop.call_soon_threadsafe(self._hung_on_loop, conn)

    def _hung_on_loop(self, conn: HTTPConnection) -> None:
        self.exit_code = ExitCode.WORKER_TIMEOUT
        exchange = conn.exchange
        if exchange is not None and exchange.framing is None:
            conn.send_error(503, "the request exceeded the server's timeout")
        else:
            conn.abort()
        self.graceful_stop()


def _server_address(sock: socket.socket) -> tuple[str, str]:
    try:
        name = sock.getsockname()
    except OSError:
        return "localhost", "80"
    if isinstance(name, tuple):
        return str(name[0]), str(name[1])
    return "localhost", "80"
