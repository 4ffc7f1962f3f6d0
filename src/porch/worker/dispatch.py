"""One request/response exchange: call the app inline or on a thread, frame and send its body.

Inline mode (``--threads 1``) runs the app and iterates its result on the loop
thread, pausing the iteration while the transport is over its high-water mark.
Threads mode runs both on a pool thread; each body piece is handed to the loop,
and the thread waits while the client is slow to read. Either way the loop does
all socket I/O and ``close()`` is always called on the result.
"""

from __future__ import annotations

import logging
import os
import stat
import sys
import threading
import time
from collections.abc import Iterable, Iterator
from typing import TYPE_CHECKING, Any, Final

from porch.access_log import escape
from porch.errors import AppResponseError, BodyUnavailable
from porch.protocol.events import RequestHead
from porch.protocol.framing import ResponseFraming, header_lines
from porch.wsgi.file_wrapper import FileWrapper
from porch.wsgi.response import StartResponse, own_fields

# Final: compiled code calls the clock directly, not through a lookup in the module's globals.
monotonic: Final = time.monotonic

if TYPE_CHECKING:
    from porch.types import WSGIApp
    from porch.worker.connection import HTTPConnection

error_log: Final = logging.getLogger("porch.error")

_THREAD_QUEUE_BYTES: Final = 256 * 1024  # body bytes a thread may have queued for the loop
# A list result smaller than this goes out as one bytes object with its head (one
# copy); a larger body is written after its head without being copied (writev).
JOIN_MAX_BYTES: Final = 16384
# What the app may raise and get a 500 for, the worker serving on: SystemExit too (an
# argparse or click call inside a view exits on bad input), and KeyboardInterrupt
# raised by app code (the worker's own SIGINT is a signal handler, never this). One
# request's exit must neither kill the other clients' connections (inline mode) nor
# leave its client waiting forever (a pool thread's exception would go unseen).
APP_ERRORS: Final = (Exception, SystemExit, KeyboardInterrupt)
_ERROR_500: Final = "500 Internal Server Error"
_ERROR_BODY: Final = b"500 Internal Server Error\n"


class ClientGone(Exception):
    """The client disconnected while the app was still producing the response."""


class Exchange(StartResponse):
    """Runs the app for one request and streams its response (see module docstring)."""

    __slots__ = (
        "app",
        "cond",
        "conn",
        "ctx",
        "environ",
        "error_bytes",
        "framing",
        "gone",
        "head",
        "iterator",
        "paused_at",
        "queued",
        "result",
        "since",
        "suspended",
        "watch_from",
        "written",
    )

    def __init__(
        self, conn: HTTPConnection, head: RequestHead, environ: dict[str, Any], app: WSGIApp
    ) -> None:
        self.app = app  # the app, or a static-file response posing as one
        self.conn = conn
        self.ctx = conn.ctx
        self.head = head
        self.environ = environ
        self.framing: ResponseFraming | None = None
        self.written = False  # threads mode: the loop wrote some of the response
        self.result: Iterable[bytes] | None = None
        self.iterator: Iterator[object] | None = None  # items checked: bytes (PEP 3333)
        self.error_bytes = 0  # body bytes of a server-made 500
        self.gone = False
        self.queued = 0
        self.cond: threading.Condition | None = None
        self.since = monotonic()
        # What the watchdog measures --timeout from: ``since``, moved on by each wait
        # for a slow client (a paused or parked iteration, a blocked write(), a body
        # read in threads mode), which is not the app running.
        self.watch_from = self.since
        self.paused_at = 0.0  # when the iteration last stopped for the client
        self.suspended = False  # threads mode: iteration parked until the client reads
        StartResponse.__init__(self)  # this object is the app's start_response

    def start_queued(self) -> None:
        """Inline mode: run the app of an exchange queued by ``WorkerContext.start_soon``."""
        if self.gone:  # the client left while it waited: its app is not run
            self.conn.exchange_done(False)
        else:
            self._run_inline()

    def start(self) -> None:
        if self.ctx.inline:
            self._run_inline()
        else:
            self.cond = threading.Condition()
            assert self.ctx.executor is not None
            self.ctx.executor.submit(self._run_threaded)

    # --- response head and framing (pure; called from whichever thread runs the app) --

    def _begin(self, content_length: int | None, body: bytes | None = None) -> bytes:
        """Freeze status and headers; return the serialized head.

        ``content_length`` is the body's length when the whole body is known
        (a list result); the app's own Content-Length header wins. ``body``, when
        given, is framed and returned after the head, in the same bytes.
        """
        if not self.status:
            raise RuntimeError("the app produced a body without calling start_response")
        head, ctx = self.head, self.ctx
        declared = self.content_length
        framing = self.framing = ResponseFraming(
            method=head.method,
            http_version=head.http_version,
            status_code=self.status_code,
            content_length=declared if declared is not None else content_length,
            keep_alive=self._may_keep_alive() and not self.close_connection,
        )
        known = self.known
        if known is None:  # a head the app built from unhashable parts: not remembered
            lines = None
            has_server, has_date = own_fields(self.headers)
        else:
            lines = known.wire
            if lines is None:
                lines = known.wire = header_lines(self.headers)
            has_server, has_date = known.has_server, known.has_date
        if not has_date:
            extra = ctx.date_header if has_server else ctx.date_server_header
        else:
            extra = b"" if has_server else ctx.server_header
        if (
            declared is None
            and content_length is not None
            and self.status_code not in (204, 304)
            # A HEAD answered with no body says nothing of GET's length (Werkzeug sends
            # none for HEAD): RFC 9110 §8.6 allows only GET's own Content-Length.
            and (content_length or head.method != "HEAD")
        ):
            extra += b"Content-Length: %d\r\n" % content_length
        self.headers_sent = True
        return framing.head(
            http_version=head.http_version,
            status=self.status,
            headers=self.headers,
            extra=extra,
            lines=lines,
            body=body,
        )

    def _may_keep_alive(self) -> bool:
        """Whether this response may leave the connection open, whatever the app said."""
        return (
            self.head.keep_alive
            and self.ctx.keep_alive
            and not self.ctx.stop_asked
            # A 100-continue body never asked for is never read: the connection closes.
            and not self.conn.continue_owed
        )

    def _frame(self, item: object) -> bytes:
        data = _body_bytes(item)  # before the head: a wrong type still gets its 500
        if self.framing is None:
            return self._begin(None) + self._frame_body(data)
        return self._frame_body(data)

    def _frame_body(self, data: bytes) -> bytes:
        assert self.framing is not None
        return self.framing.body(data)

    def _whole(self, result: list[object] | tuple[object, ...]) -> list[bytes]:
        """A list result: head, body and tail for one write, with a computed Content-Length.

        Parts, not one joined bytes: a large body is not copied to be glued to its head.
        """
        if len(result) == 1:
            body = _body_bytes(result[0])
        else:
            try:
                body = b"".join(result)  # type: ignore[arg-type]  # checked by join
            except TypeError:
                for item in result:
                    _body_bytes(item)
                raise
        if self.framing is None:
            if len(body) < JOIN_MAX_BYTES:  # one bytes object, one copy
                return [self._begin(len(body), body)]
            head = self._begin(len(body))
            # The length is known, so never chunked: no tail. body() drops it for HEAD.
            framed = self._frame_body(body)
            return [head, framed] if framed else [head]
        return [self._frame_body(body), self._tail()]

    def _tail(self) -> bytes:
        data = self._begin(0) if self.framing is None else b""
        assert self.framing is not None
        return data + self.framing.end()

    def head_out(self) -> bool:
        """Whether the response's head reached the transport: no error response can
        follow it. In threads mode the app thread frames the head (``framing`` set)
        before the loop writes it, so a refusal in between still gets its answer."""
        return self.framing is not None and (self.cond is None or self.written)

    def _keep_alive(self) -> bool:
        framing = self.framing
        return framing is not None and framing.keep_alive and framing.complete

    def _error_response(self) -> tuple[bytes, bool]:
        """The 500 for an app that failed before its head went out, and whether to keep alive."""
        self.status, self.status_code, self.known = _ERROR_500, 500, None
        head, ctx = self.head, self.ctx
        framing = ResponseFraming(
            method=head.method,
            http_version=head.http_version,
            status_code=500,
            content_length=len(_ERROR_BODY),
            keep_alive=self._may_keep_alive(),
        )
        self.headers = [("Content-Type", "text/plain"), ("Content-Length", str(len(_ERROR_BODY)))]
        data = framing.head(
            http_version=head.http_version,
            status=self.status,
            headers=self.headers,
            extra=ctx.date_header + ctx.server_header,
        )
        body = framing.body(_ERROR_BODY)
        self.error_bytes = framing.sent
        return data + body, framing.keep_alive

    def _log_failure(self, exc: BaseException) -> None:
        head = self.head
        path = escape(head.path.decode("latin-1"))  # client bytes: never forge a log line
        if isinstance(exc, BodyUnavailable):  # the client's fault: no traceback
            error_log.info("%s %s: %s", head.method, path, exc)
        else:
            error_log.error("Error handling request %s %s", head.method, path, exc_info=exc)

    def _access(self) -> None:
        access = self.ctx.access_log
        if access.enabled:
            access.log(
                self.environ,
                self.status,
                self.headers,
                # Body bytes actually sent (none for HEAD, truncated to Content-Length).
                self.framing.sent if self.framing is not None else self.error_bytes,
                monotonic() - self.since,
                self.head.target,
            )

    def _close_result(self) -> None:
        result, self.result = self.result, None  # close() exactly once
        if type(result) is list or type(result) is tuple:
            return
        close = getattr(result, "close", None)
        if close is not None:
            try:
                close()
            except APP_ERRORS:
                error_log.exception("Error closing the response iterable")

    def _file_source(self, result: object) -> tuple[int, int, int] | None:
        """(fd, offset, count) when the result can go out with os.sendfile."""
        if type(result) is not FileWrapper or self.head.method == "HEAD":
            return None
        source = result.sendfile_source()  # offset from tell(): buffered reads count
        if source is None:
            return None
        fd, offset, count = source
        try:
            if not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
        except OSError:
            return None
        if self.content_length is not None:
            count = min(count, self.content_length)
        return fd, offset, count

    # --- inline mode (loop thread) -------------------------------------------------------

    def _run_inline(self) -> None:
        inflight = self.ctx.inflight
        conn = self.conn
        inflight.loop = self
        try:
            result = self.result = self.app(self.environ, self)
            if type(result) is list or type(result) is tuple:
                # The common case, fused: one write; a plain list has no close().
                conn.write_parts(self._whole(result))
                self.result = None
                if self.ctx.access_logging:
                    self._access()
                framing = self.framing
                assert framing is not None
                conn.exchange_done(framing.keep_alive and framing.complete)
                return
            source = self._file_source(result)
            if source is not None:
                self._sendfile(source)
                return
            self.iterator = iter(result)
        except APP_ERRORS as exc:
            self._fail_inline(exc)
            return
        finally:
            inflight.loop = None
        self._pump()

    def _pump(self) -> None:
        """Iterate the app's result until done or the transport asks us to pause."""
        conn = self.conn
        iterator = self.iterator
        assert iterator is not None
        self._unpaused()
        inflight = self.ctx.inflight
        inflight.loop = self
        try:
            for chunk in iterator:
                if chunk:
                    conn.write(self._frame(chunk))
                if conn.closing:
                    # The client left: a failed write closes the transport at once but
                    # connection_lost() only runs after we yield, and writes are
                    # dropped meanwhile (no back-pressure): stop producing now.
                    self._abandon()
                    return
                if conn.write_paused:
                    self.paused_at = monotonic()
                    return  # resume() continues from here
            conn.write(self._tail())
        except APP_ERRORS as exc:
            self.iterator = None
            self._fail_inline(exc)
            return
        finally:
            inflight.loop = None
        self.iterator = None
        self._finish()

    def _unpaused(self) -> None:
        """An iteration continues after waiting for the client: that wait is not
        the app's time, so the watchdog's clock moves on by it."""
        if self.paused_at:
            self.watch_from += monotonic() - self.paused_at
            self.paused_at = 0.0

    def _fail_inline(self, exc: BaseException) -> None:
        self._log_failure(exc)
        self._close_result()
        self._answer_failure(exc)

    def _abandon(self) -> None:
        """Inline mode: the client is gone mid-body; close the result, never resume."""
        self.iterator = None
        self._close_result()
        self._access()
        self.conn.exchange_done(False)

    def resume(self) -> None:
        """The transport drained below its low-water mark."""
        cond = self.cond
        if cond is not None:
            with cond:
                cond.notify_all()
                self._unpark()
        elif self.iterator is not None and not self.gone:
            self._pump()

    def client_gone(self) -> None:
        self.gone = True
        cond = self.cond
        if cond is not None:
            with cond:
                cond.notify_all()
                self._unpark()  # a parked iteration is closed on a pool thread
        elif self.iterator is not None:  # a paused inline iteration: it will never resume
            self._abandon()

    def deliver(self, data: bytes) -> None:
        """The legacy ``write()`` callable of PEP 3333."""
        if not data:
            return
        if self.cond is None:
            self.conn.write(self._frame(data))
        else:
            self._send_threaded(self._frame(data))

    def _answer_failure(self, exc: BaseException) -> None:
        """On the loop, once the app failed (logged, result closed): 500, 408 or abort.

        Once the head is out the response cannot be completed: the connection is
        aborted so the client sees a truncated body, never a "complete" wrong one.
        """
        conn = self.conn
        if self.framing is not None:
            self._access()
            conn.abort()
            conn.exchange_done(False)
        elif isinstance(exc, BodyUnavailable):
            conn.send_error(408, str(exc))
            conn.exchange_done(False)
        else:
            data, keep_alive = self._error_response()
            self._access()
            conn.write(data)
            conn.exchange_done(keep_alive)

    def _finish(self) -> None:
        self._close_result()
        self._access()
        self.conn.exchange_done(self._keep_alive())

    def _sendfile(self, source: tuple[int, int, int]) -> None:
        fd, offset, count = source
        self.written = True  # on the loop, in either mode
        self.conn.write(self._begin(count))
        assert self.framing is not None
        if self.framing.no_body:  # 204/304 (HEAD never gets here): the file is not sent
            self._finish()
            return
        self.framing.sent = count  # the bytes go out below the framing layer
        self.conn.sendfile(fd, offset, count, self._sendfile_done)

    def _sendfile_done(self, ok: bool, unsent: int) -> None:
        assert self.framing is not None
        self.framing.sent -= unsent  # the access log counts what went out
        if not ok:
            self._close_result()
            self._access()  # a cut download is logged too (nginx does), with its bytes
            self.conn.abort()
            self.conn.exchange_done(False)
            return
        self._finish()

    # --- threads mode (pool thread) -------------------------------------------------------

    def _run_threaded(self) -> None:
        inflight = self.ctx.inflight.threads
        ident = threading.get_ident()
        inflight[ident] = self
        try:
            result = self.result = self.app(self.environ, self)
            if type(result) is list or type(result) is tuple:
                data = b"".join(self._whole(result))
                self._close_result()
                self._access()
                self.ctx.to_loop(self._threaded_done, data, self._keep_alive())
                return
            source = self._file_source(result)
            if source is not None:
                self.ctx.to_loop(self._sendfile, source)
                return
            self.iterator = iter(result)
        except APP_ERRORS as exc:
            self._threaded_failure(exc)
            return
        finally:
            inflight.pop(ident, None)
        self._stream_threaded()

    def _stream_threaded(self) -> None:
        """Iterate on a pool thread until done, or until the client falls behind.

        A slow reader never holds an app thread: once the bytes queued for the
        loop pass the limit (or the transport paused), the iteration is parked
        and this thread returns to the pool; :meth:`resume` submits it again.
        """
        iterator = self.iterator
        assert iterator is not None
        self._unpaused()
        inflight = self.ctx.inflight.threads
        ident = threading.get_ident()
        inflight[ident] = self
        try:
            if self.gone:
                raise ClientGone
            for chunk in iterator:
                if chunk and self._queue_threaded(self._frame(chunk)):
                    return  # parked: resume() continues from here on some pool thread
            tail = self._tail()
        except ClientGone:
            self._close_result()
            self._access()
            self.ctx.to_loop(self._gone_on_loop)
            return
        except APP_ERRORS as exc:
            self._threaded_failure(exc)
            return
        finally:
            inflight.pop(ident, None)
        self._close_result()
        self._access()
        self.ctx.to_loop(self._threaded_done, tail, self._keep_alive())

    def _threaded_failure(self, exc: BaseException) -> None:
        self._log_failure(exc)
        self._close_result()
        self.ctx.to_loop(self._answer_failure, exc)

    def _backed_up(self) -> bool:
        return self.queued > _THREAD_QUEUE_BYTES or self.conn.write_paused

    def _queue_threaded(self, data: bytes) -> bool:
        """Hand ``data`` to the loop; True when the iteration must park (slow client)."""
        cond = self.cond
        assert cond is not None
        with cond:
            if self.gone:
                raise ClientGone
            self.queued += len(data)
            self.ctx.to_loop(self._loop_write, data)
            if self._backed_up():
                self.suspended = True
                self.paused_at = monotonic()
                return True
        return False

    def _unpark(self) -> None:
        """Under ``cond``, on the loop: continue a parked iteration when there is room."""
        if self.suspended and (self.gone or not self._backed_up()):
            self.suspended = False
            assert self.ctx.executor is not None
            self.ctx.executor.submit(self._stream_threaded)

    def _gone_on_loop(self) -> None:
        # The client left, or this thread gave up waiting for it to read (write
        # timeout): then the connection is still open and must not linger closing.
        self.conn.write_timed_out()
        self.conn.exchange_done(False)

    def _send_threaded(self, data: bytes) -> None:
        """The legacy write() callable in threads mode: it must block while the client is slow."""
        cond = self.cond
        assert cond is not None
        conn = self.conn
        with cond:
            if (self.queued > _THREAD_QUEUE_BYTES or conn.write_paused) and not self.gone:
                # Waiting on a slow reader is not the app hanging: leave the watchdog's
                # view, and do not count the wait when coming back.
                away = self.ctx.inflight.step_out()
                deadline = away[1] + self.ctx.config.write_timeout
                while (self.queued > _THREAD_QUEUE_BYTES or conn.write_paused) and not self.gone:
                    if not cond.wait(deadline - monotonic()) and monotonic() > deadline:
                        self.gone = True
                self.ctx.inflight.step_in(away)
            if self.gone:
                raise ClientGone
            self.queued += len(data)
        self.ctx.to_loop(self._loop_write, data)

    def _loop_write(self, data: bytes) -> None:
        self.written = True
        self.conn.write(data)
        cond = self.cond
        assert cond is not None
        with cond:
            self.queued -= len(data)
            cond.notify_all()
            self._unpark()

    def _threaded_done(self, data: bytes, keep_alive: bool) -> None:
        self.written = True
        if data:
            self.conn.write(data)
        self.conn.exchange_done(keep_alive)


def _body_bytes(item: object) -> bytes:
    """A body item of the app's response: bytes (PEP 3333), or the app's error (a 500
    while no head went out) naming what it gave instead."""
    if isinstance(item, bytes):
        return item
    if isinstance(item, bytearray):  # bytes-like, as b"".join takes it: a copy, rare
        return bytes(item)
    raise AppResponseError(f"the response iterable yielded {type(item).__name__}, not bytes")


def current_frames() -> dict[int, Any]:
    """Stacks of every thread, for the watchdog's hung-request report."""
    return sys._current_frames()
