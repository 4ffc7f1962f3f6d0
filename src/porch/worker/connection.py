"""The one connection driver: socket events in, protocol core, one exchange at a time.

An :class:`HTTPConnection` owns the transport, feeds received bytes to the
sans-IO parser, buffers the request body (the app is called once the body is
complete, so a slow upload never holds an app thread; with
``--no-request-buffering`` it is streamed to the app instead, see
:mod:`porch.worker.body_stream`), runs one
:class:`~porch.worker.dispatch.Exchange` at a time (pipelined requests wait in
order), enforces the header/body/keep-alive/write deadlines, and applies
back-pressure in both directions. The transport side (writes, sendfile, pausing,
closing) is its base class, :class:`porch.worker.output.ConnectionOutput`.

Deadlines are absolute ``time.monotonic()`` values taken when they are set (a
clock cached by the once-per-tick sweep could be stale by a whole tick and cut
a client early); the worker's sweep fires them at most one tick late.
"""

from __future__ import annotations

import asyncio
import logging
import math
import time
from typing import Final

from porch.errors import BodyUnavailable
from porch.protocol.events import BadRequest, BodyData, EndOfMessage, Event, RequestHead
from porch.protocol.framing import error_body, error_response
from porch.protocol.h1 import H1Parser
from porch.protocol.proxy_protocol import ProxyHeaderError, ProxyHeaderParser
from porch.types import Environ
from porch.worker.body_stream import CONTINUE, BodyStream, read_socket
from porch.worker.context import WorkerContext, reason_phrase
from porch.worker.dispatch import Exchange
from porch.worker.output import ConnectionOutput
from porch.wsgi.environ import HeaderMemo, build_environ
from porch.wsgi.input import EMPTY_INPUT, BufferedInput

# Final: compiled code calls the clock directly, not through a lookup in the module's globals.
monotonic: Final = time.monotonic

error_log: Final = logging.getLogger("porch.error")

# Connection states (Final: compiled, a comparison with a constant, not a global lookup).
IDLE: Final = 0  # between requests
HEAD: Final = 1  # reading a request head
BODY: Final = 2  # reading a request body before the app runs
APP: Final = 3  # the app runs or its response is being sent
DRAIN: Final = 4  # answered; reading and discarding the rest of a streamed body

# Inline mode batches the apps of complete requests (WorkerContext.start_soon), but
# a queued request holds its whole body: 64 clients uploading 1 MiB each then kept
# up to 64 MiB alive at once, glibc handed it back to the kernel after each batch,
# and every page faulted in again (1 MiB uploads: 337 -> 1,077 µs of CPU each).
# A request with a bigger body starts its app at once, as before batching.
_BATCHED_BODY_MAX_BYTES: Final = 64 * 1024

# ``pending`` when no parsed event waits: shared, so never mutated (see _queue).
_NO_EVENTS: Final[list[Event]] = []


class HTTPConnection(ConnectionOutput):
    """Drives one client connection (see module docstring)."""

    __slots__ = (
        "body_done",
        "client_counted",
        "continue_owed",
        "early",
        "exchange",
        "head",
        "header_memo",
        "in_process",
        "input",
        "parser",
        "peer_eof",
        "pending",
        "pending_at",
        "proxy_header",
        "remote_addr",
        "remote_port",
        "state",
        "stream",
    )

    def __init__(self, ctx: WorkerContext) -> None:
        ConnectionOutput.__init__(self, ctx)
        self.parser = H1Parser(limits=ctx.limits)
        # Parsed events not handled yet: pending[pending_at:]. A list and an index,
        # not a deque: usually the parser's own list is adopted whole (no copy), and
        # an idle connection holds no block of its own (a deque's is 760 bytes).
        self.pending: list[Event] = _NO_EVENTS
        self.pending_at = 0
        self.state = IDLE
        self.exchange: Exchange | None = None
        self.head: RequestHead | None = None
        self.header_memo = HeaderMemo()  # this client's last header fields (build_environ)
        self.input: BufferedInput | BodyStream | None = None
        self.stream: BodyStream | None = None  # self.input when the body is streamed
        self.body_done = False
        self.early = False  # body read while the app runs (Expect: 100-continue, streamed)
        self.continue_owed = False  # a streamed Expect: 100-continue body not asked for yet
        self.in_process = False
        self.peer_eof = False  # the client will send nothing more
        self.remote_addr = ""
        self.remote_port = ""
        self.proxy_header = ProxyHeaderParser() if ctx.config.proxy_protocol else None
        self.client_counted = False  # counted by --max-client-connections

    # --- asyncio.Protocol ------------------------------------------------------

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]  # uvloop's is not a subclass
        peer = transport.get_extra_info("peername")
        if isinstance(peer, tuple):
            self.remote_addr, self.remote_port = peer[0], str(peer[1])
        ctx = self.ctx
        ctx.connection_opened(self)
        self.deadline = monotonic() + ctx.config.header_timeout
        if self.proxy_header is not None and not ctx.proxy_allow.trusts(self.remote_addr):
            error_log.warning(
                "refused connection from %s: not in --proxy-allow-from", self.remote_addr
            )
            self.abort()
        elif self.proxy_header is None:
            self._count_client()

    def data_received(self, data: bytes) -> None:
        if self.closing:
            return
        if self.proxy_header is not None:
            data = self._proxy_header(data)
            if not data:
                return
        ctx = self.ctx
        state = self.state
        if state == IDLE:
            self.state = HEAD
            self.deadline = monotonic() + ctx.config.header_timeout
        elif state == BODY or self.early:
            self.deadline = monotonic() + ctx.config.body_timeout
        events = self.parser.feed(data)
        if events:
            self._queue(events)
            if self.exchange is None or self.early:
                self.process_events()
        if self.exchange is not None and self.has_pending() and not self.early:
            # Pipelined requests wait for the running one: stop reading more.
            self._pause_reading()

    def _proxy_header(self, data: bytes) -> bytes:
        """PROXY protocol v1/v2 precedes HTTP: the client address it names is REMOTE_ADDR."""
        assert self.proxy_header is not None
        try:
            result = self.proxy_header.feed(data)
        except ProxyHeaderError as exc:
            self._reject(BadRequest(status=exc.status, message=f"bad PROXY header: {exc}"))
            return b""
        if result is None:
            return b""
        self.proxy_header = None
        if result.source is not None:
            self.remote_addr, self.remote_port = result.source[0], str(result.source[1])
        if not self._count_client():
            return b""
        return result.rest

    def _count_client(self) -> bool:
        """--max-client-connections: False (and a 503) when this address has too many."""
        limits = self.ctx.client_limits
        if not limits.active:
            return True
        if not limits.connection_opened(self.remote_addr):
            self.send_error(503, "too many connections from this address", retry_after=1.0)
            return False
        self.client_counted = True
        return True

    def eof_received(self) -> bool | None:
        # A half-closed client still gets the responses to what it sent.
        self.peer_eof = True
        if self.early and self.stream is not None:  # a streamed body that will never end
            self._body_lost("the client closed the connection mid-body")
        if self.exchange is None and not self.has_pending():
            self._close()
        return True

    def connection_lost(self, exc: Exception | None) -> None:
        self.closed = self.closing = True
        self._drop_pending()
        self.parser.release()
        self.ctx.connection_closed(self)
        if self.client_counted:
            self.ctx.client_limits.connection_closed(self.remote_addr)
        if self._sendfile is not None:
            self._sendfile.stop(ok=False)
        if self.stream is not None:
            self.stream.fail("the client closed the connection")
        if self.exchange is not None:
            self.exchange.client_gone()
        elif self.input is not None:
            self.input.close()

    def resume_writing(self) -> None:
        self.write_paused = False
        if self.state == APP or self.state == DRAIN:
            # Back to the body deadline while a body is still expected and read.
            early = self.early and not self.reading_paused
            self.deadline = monotonic() + self.ctx.config.body_timeout if early else 0.0
        if self.exchange is not None:
            self.exchange.resume()

    # --- request sequencing ----------------------------------------------------

    def _queue(self, events: list[Event]) -> None:
        if self.pending_at == len(self.pending):  # nothing waits (or _NO_EVENTS): adopt
            self.pending = events
            self.pending_at = 0
        else:
            self.pending.extend(events)

    def has_pending(self) -> bool:
        """True while parsed events wait to be handled (pipelined requests, body data)."""
        return self.pending_at < len(self.pending)

    def _drop_pending(self) -> None:
        self.pending = _NO_EVENTS
        self.pending_at = 0

    def process_events(self) -> None:
        """Handle parsed events in order until a request is dispatched."""
        nested = self.in_process
        self.in_process = True
        try:
            while (
                self.pending_at < len(self.pending)
                and (self.exchange is None or self.early)
                and not self.closing
            ):
                # Re-read each time: a handler may queue more (inline body reads).
                event = self.pending[self.pending_at]
                self.pending_at += 1
                kind = type(event)
                if kind is BodyData:
                    assert self.input is not None
                    self.input.feed(event.data)  # type: ignore[union-attr]
                elif kind is EndOfMessage:
                    self._on_end()
                elif kind is RequestHead:
                    self._on_head(event)  # type: ignore[arg-type]
                else:
                    self._reject(event)  # type: ignore[arg-type]
        finally:
            self.in_process = nested
        if self.pending_at == len(self.pending):
            self._drop_pending()  # handled events are freed now, while still in cache
        if not nested and self.reading_paused and self.exchange is None:
            self.resume_reading()

    def _on_head(self, head: RequestHead) -> None:
        self.head = head
        self.body_done = False
        if head.chunked or head.content_length:
            if self.ctx.stream_bodies:
                # RFC 9110 §10.1.1: the app decides; 100 goes out only if it reads.
                self.continue_owed = head.expect_continue
                self._stream_body(head)
                return
            if head.expect_continue:
                # Buffered like any body, so asked for at once (as nginx, gunicorn and
                # waitress do): the app runs once it is in, and a slow upload holds no
                # app thread and counts against no --timeout. The head passed the
                # limits already: a body over --limit-request-body got its 413 unasked.
                self.write(CONTINUE)
            self.input = BufferedInput(memory_limit=self.ctx.config.body_buffer_size)
            self.state = BODY
            self.deadline = monotonic() + self.ctx.config.body_timeout
        else:
            self.input = None

    def _on_end(self) -> None:
        self.body_done = True
        self.continue_owed = False  # the client sent the body without waiting
        if self.input is not None:
            self.input.finish()
        if self.early:
            self.early = False
            if self.state == DRAIN:  # the rest the app left unread is gone: next request
                self.exchange_done(True)
                return
            if not self.write_paused:  # the body is in: no deadline while the app works
                self.deadline = 0.0
            return
        body = self.input  # buffered here: a streamed body's app was started by _on_head
        small = body is None or (
            isinstance(body, BufferedInput) and body.received_bytes <= _BATCHED_BODY_MAX_BYTES
        )
        self._dispatch(soon=small)

    def _dispatch(self, *, soon: bool = False) -> None:
        """Run the app for the request in ``self.head`` (``soon``: a complete request,
        whose app runs in inline mode after this loop iteration's reads, see
        ``WorkerContext.start_soon``)."""
        head = self.head
        assert head is not None
        ctx = self.ctx
        self.state = APP
        self.deadline = 0.0
        environ = build_environ(
            head,
            ctx.base_environ,
            wsgi_input=self.input if self.input is not None else EMPTY_INPUT,
            remote_addr=self.remote_addr,
            remote_port=self.remote_port,
            on_forwarding=ctx.apply_forwarding,
            memo=self.header_memo,
        )
        if ctx.client_limits.active:
            wait = ctx.client_limits.retry_after(environ["REMOTE_ADDR"])
            if wait:
                self._turn_away(environ, 429, "request rate limit exceeded", wait)
                return
        if ctx.shed_at and ctx.app_jobs() >= ctx.shed_at:
            ctx.shedding()
            self._turn_away(environ, 503, "the server is busy, retry shortly", 1.0)
            return
        app = ctx.app
        if ctx.static is not None:
            static = ctx.static.match(head.method, head.path, head.headers, head.query)
            if static is not None:
                app = static.as_wsgi_app()
        exchange = self.exchange = Exchange(self, head, environ, app)
        if soon and ctx.inline:
            ctx.start_soon(exchange)
        else:
            exchange.start()

    def exchange_done(self, keep_alive: bool) -> None:
        """Called on the loop once the response is fully handed to the transport."""
        self.exchange = None
        ctx = self.ctx
        if not self.body_done and self.stream is not None and keep_alive and self._drain_body():
            return  # _on_end calls exchange_done again once the rest was read and discarded
        ctx.request_done()
        body_incomplete = not self.body_done
        if self.input is not None:
            self.input.close()
            self.input = self.stream = None
        self.head = None
        self.early = False
        self.continue_owed = False
        if not keep_alive or body_incomplete or self.closing:
            self._close()
            return
        if self.has_pending():
            self.state = HEAD
            self.deadline = monotonic() + ctx.config.header_timeout
        elif self.peer_eof:  # answered everything the half-closed client sent
            self._close()
            return
        else:
            self.state = IDLE
            grace = 1.0 if ctx.stopping else ctx.config.keep_alive
            self.deadline = monotonic() + grace
        if not self.in_process:
            self.process_events()

    def receive_inline(self, timeout: float) -> None:
        """Inline mode, the app waiting for body bytes: read the socket once, here.

        The app runs on the loop thread, so the loop cannot deliver the body: the
        bytes go through the same parser and ``process_events`` as in ``data_received``.
        """
        if self.closing:
            raise BodyUnavailable("the connection is closing")
        if self.has_pending():  # received before the app ran
            self.process_events()
            return
        assert self.transport is not None
        data = read_socket(self.transport.get_extra_info("socket").fileno(), timeout)
        if not data:
            return  # nothing after all (a spurious wake-up)
        events = self.parser.feed(data)
        if events:
            self._queue(events)
        self.process_events()

    # --- streamed request bodies (--no-request-buffering, see body_stream.py) ------------

    def _stream_body(self, head: RequestHead) -> None:
        """Call the app now; its wsgi.input reads wait for the body as it arrives."""
        self.input = self.stream = BodyStream(self, expect_continue=head.expect_continue)
        self.early = True
        self._dispatch()

    def pause_body_reading(self, pause: bool) -> None:
        """Back-pressure from a streamed body the app has not read (see body_stream.py)."""
        if pause:
            self._pause_reading()
            if not self.write_paused:  # the app is slow to read, not the client to send
                self.deadline = 0.0
        elif self.reading_paused and self.early and not self.closing:
            self.resume_reading()
            if not self.write_paused:
                self.deadline = monotonic() + self.ctx.config.body_timeout

    def _drain_body(self) -> bool:
        """The app answered without reading all of its streamed body: read and discard the
        rest (bounded by --limit-request-body and --body-timeout, like a buffered body) so
        the connection can be kept alive. False: close it instead."""
        stream = self.stream
        assert stream is not None
        if self.closing or self.ctx.stopping or not stream.discard_rest():
            return False
        self.state = DRAIN
        self.early = True
        if not self.write_paused:
            self.deadline = monotonic() + self.ctx.config.body_timeout
        self.resume_reading()
        if self.has_pending() and not self.in_process:
            self.process_events()
        return True

    def _body_lost(self, reason: str) -> None:
        """A streamed body will never be complete: the app's reads fail; a drain just ends."""
        assert self.stream is not None
        self.stream.fail(reason)
        if self.state == DRAIN:
            self._close()

    # --- answers and closing --------------------------------------------------------

    def send_continue(self) -> None:
        """The app reads a streamed Expect: 100-continue body: ask the client for it (RFC 9110
        §10.1.1). Not once the final response's head is out: a 1xx after it would land
        inside the response (§15.2); that head said Connection: close (``continue_owed``)
        and the client sends the body unasked, or the read times out."""
        if not self.continue_owed:
            return
        self.continue_owed = False
        exchange = self.exchange
        if exchange is None or exchange.framing is None:
            self.write(CONTINUE)

    def abort(self) -> None:
        """Drop the connection now: a response that cannot be completed, or a client
        that does not read (also while a graceful close waits to flush)."""
        self._drop_pending()
        self._abort_transport()

    def _close(self) -> None:
        # Requests pipelined behind the last answered one are never served.
        self._drop_pending()
        self._close_transport()

    def _reject(self, event: BadRequest) -> None:
        error_log.info(
            "rejected request from %s: %d %s",
            self.remote_addr or "unix",
            event.status,
            event.message,
        )
        exchange = self.exchange
        if self.stream is not None:  # e.g. a streamed chunked body past --limit-request-body
            self.stream.fail(event.message)
        if self.state == DRAIN or (exchange is not None and exchange.head_out()):
            self.abort()  # a response is on its way: no error response can follow it
        else:
            self.send_error(event.status, event.message)
            if self.ctx.access_logging and exchange is None:
                self._log_refusal(event.status, event.message)

    def _log_refusal(self, status: int, message: str) -> None:
        """An access-log record for a request refused before its app ran, as nginx
        writes one for its 400s: the request line when the head was parsed (a body
        refused), else ``-`` (an unparsable head), so scanners and broken clients
        show up where operators look."""
        environ: Environ = {"REMOTE_ADDR": self.remote_addr, "REMOTE_PORT": self.remote_port}
        head = self.head
        target = b""
        if head is not None:
            environ["REQUEST_METHOD"] = head.method
            environ["SERVER_PROTOCOL"] = "HTTP/" + head.http_version
            target = head.target
        reason = reason_phrase(status)
        self.ctx.access_log.log(
            environ, f"{status} {reason}", (), len(error_body(status, reason, message)), 0.0, target
        )

    def _turn_away(self, environ: Environ, status: int, message: str, retry_after: float) -> None:
        """An overload limit refuses a parsed request: the answer, and its access-log
        record (nginx logs its limit_req refusals too; the error log says it once)."""
        self.send_error(status, message, retry_after=retry_after)
        head = self.head
        assert head is not None
        reason = reason_phrase(status)
        self.ctx.access_log.log(
            environ,
            f"{status} {reason}",
            (),
            len(error_body(status, reason, message)),
            0.0,
            head.target,
        )

    def send_error(self, status: int, message: str, *, retry_after: float = 0.0) -> None:
        """Answer a server-generated error and close the connection."""
        ctx = self.ctx
        self.write(
            error_response(
                status,
                reason_phrase(status),
                message,
                extra=ctx.date_header + ctx.server_header,
                retry_after=max(1, math.ceil(retry_after)) if retry_after else 0,
            )
        )
        self.state = APP
        self.deadline = monotonic() + ctx.config.write_timeout
        self._close()

    # --- deadlines and shutdown -----------------------------------------------------

    def on_deadline(self) -> None:
        state = self.state
        self.deadline = 0.0
        exchange = self.exchange
        if state == IDLE:
            self._close()
        elif (state in (HEAD, BODY) and exchange is None) or self.early:
            # RFC 9110 §15.5.9; also a body the app reads as it comes (100-continue, streamed).
            if self.stream is not None:
                self.stream.fail("timed out waiting for the request body")
            if state != DRAIN and (exchange is None or not exchange.head_out()):
                self.send_error(408, "request not received in time")
            else:
                self.abort()
        else:
            self.write_timed_out()

    def write_timed_out(self) -> None:
        """A client that stopped reading our response: drop it (no-op once it is gone)."""
        if not self.closed:
            error_log.info("write timeout to %s: connection dropped", self.remote_addr or "unix")
            self.abort()

    def begin_shutdown(self) -> None:
        """Graceful stop: finish the current request; close idle connections soon."""
        if self.state == IDLE and self.exchange is None:
            # A request may be on the wire right now; give it a moment to arrive.
            soon = monotonic() + 1.0
            self.deadline = min(self.deadline or soon, soon)
