"""``--no-request-buffering``: a request body handed to the app while it arrives.

The app is called once the request head is parsed; its ``wsgi.input`` is a
:class:`BodyStream`, whose reads (:class:`~porch.wsgi.input.StreamingInput`)
pull the pieces the connection ``feed``s. Who reads the socket:

* threads mode: the event loop, as for every request. A pool thread reading
  ``wsgi.input`` waits until the loop delivered enough, the body ended, or it
  failed (client gone, malformed or oversized body, ``--body-timeout``). Past
  ``HIGH_WATER_BYTES`` received and unread, the loop stops reading the socket
  and resumes once the app has read the queue down to ``LOW_WATER_BYTES``, so a
  huge upload to a slow app holds about 256K of it in memory (plus one socket
  read) while TCP flow control holds back the client.
* inline mode (``--threads 1``): the app runs on the loop thread, so a read
  that finds the queue empty reads the socket itself through the connection's
  parser (as Expect: 100-continue bodies are read). A slow upload holds the
  whole worker, and its duration counts against ``--timeout``.

Waiting for the client is not the app hanging: in threads mode the time a read
waits is left out of the watchdog's view, like a write waiting on a slow
reader. An ``Expect: 100-continue`` request gets its ``100`` on the first read
that has to wait. What the app leaves unread is read and discarded by the
connection after the response (:meth:`discard_rest`), so it can be kept alive.
"""

from __future__ import annotations

import os
import select
import threading
from collections import deque
from typing import TYPE_CHECKING

from porch.errors import BodyUnavailable
from porch.wsgi.input import StreamingInput

if TYPE_CHECKING:
    from porch.worker.connection import HTTPConnection

__all__ = ["CONTINUE", "HIGH_WATER_BYTES", "LOW_WATER_BYTES", "BodyStream", "read_socket"]

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
HIGH_WATER_BYTES = 256 * 1024  # received, unread body bytes past which the socket is not read
LOW_WATER_BYTES = 64 * 1024  # ... and at or below which it is read again
READ_BYTES = 65536  # one inline socket read


def read_socket(fd: int, timeout: float) -> bytes:
    """Inline mode: wait up to ``timeout`` s for body bytes on ``fd`` and read them,
    on the loop thread (the app runs there, so the loop cannot deliver them).

    Returns b"" when the socket had nothing after all; a timeout, a failed read or
    the client's end of the stream raise :class:`BodyUnavailable`.
    """
    poller = select.poll()
    poller.register(fd, select.POLLIN)
    if not poller.poll(int(timeout * 1000)):
        raise BodyUnavailable("timed out waiting for the request body")
    try:
        data = os.read(fd, READ_BYTES)
    except BlockingIOError:
        return b""
    except OSError as exc:
        raise BodyUnavailable(f"the client connection failed mid-body: {exc}") from None
    if not data:
        raise BodyUnavailable("the client closed the connection mid-body")
    return data


class BodyStream(StreamingInput):
    """The queue between the connection (loop thread) and the app's reads (see module docstring).

    Loop side: :meth:`feed`, :meth:`finish`, :meth:`fail`, :meth:`discard_rest`,
    :meth:`close`. App side: the ``wsgi.input`` reads, through :meth:`pull`.
    """

    __slots__ = (
        "_app_on_loop",
        "_chunks",
        "_cond",
        "_conn",
        "_continue_due",
        "_discarding",
        "_ended",
        "_error",
        "_paused",
        "_resume_due",
        "queued_bytes",
    )

    def __init__(self, conn: HTTPConnection, *, expect_continue: bool) -> None:
        super().__init__()
        self._conn = conn
        self._app_on_loop = conn.ctx.inline
        self._cond = threading.Condition()  # guards everything below in threads mode
        self._chunks: deque[bytes] = deque()
        self.queued_bytes = 0  # received, not yet pulled by the app
        self._ended = False  # the whole body was received
        self._error: str | None = None  # the body will never be complete: why
        self._continue_due = expect_continue  # a 100 is owed before the client sends
        self._paused = False  # we paused the socket for back-pressure
        self._resume_due = False  # a resume is scheduled on the loop
        self._discarding = False  # the app is done: drop what still comes

    # --- loop side ----------------------------------------------------------------

    def feed(self, data: bytes) -> None:
        """A piece of the body arrived; stop reading the socket while too much is unread."""
        if self._discarding:
            return
        with self._cond:
            self._chunks.append(data)
            self.queued_bytes += len(data)
            self._continue_due = False  # the client sends without waiting for a 100
            pause = self.queued_bytes > HIGH_WATER_BYTES and not self._paused
            if pause:
                self._paused = True
            self._cond.notify()
        if pause:
            self._conn.pause_body_reading(True)

    def finish(self) -> None:
        """The end of the body arrived."""
        with self._cond:
            self._ended = True
            self._cond.notify_all()

    def fail(self, reason: str) -> None:
        """The body will never be complete: reads get what was received, then BodyUnavailable."""
        with self._cond:
            if not self._ended and self._error is None:
                self._error = reason
                self._cond.notify_all()

    def discard_rest(self) -> bool:
        """The app is done: drop what it left unread and whatever is still to come.

        False when the rest will not come: the client waits for a ``100`` the app
        never asked for (RFC 9110 §10.1.1), or the body already failed.
        """
        with self._cond:
            if self._continue_due or self._error is not None:
                return False
            self._discarding = True
            self._chunks.clear()
            self.queued_bytes = 0
            self._paused = False
        return True

    def close(self) -> None:
        """Release what is queued; later reads raise ValueError."""
        with self._cond:
            self._chunks.clear()
            self.queued_bytes = 0
            if not self._ended and self._error is None:
                self._error = "the request is over"
            self._cond.notify_all()
        super().close()

    def _resume(self) -> None:
        with self._cond:
            self._resume_due = False
            if not self._paused or self.queued_bytes > LOW_WATER_BYTES:
                return
            self._paused = False
        self._conn.pause_body_reading(False)

    # --- app side (the wsgi.input reads) ----------------------------------------------

    def pull(self) -> bytes:
        """The next piece of the body, waiting for it; b"" at the end of the body."""
        if self._app_on_loop:
            return self._pull_inline()
        with self._cond:
            if not self._chunks and not self._ended and self._error is None:
                self._wait()
            return self._next()

    def _next(self) -> bytes:
        """Under the lock: a queued piece, b"" at the end, or the failure."""
        chunks = self._chunks
        if chunks:
            data = chunks.popleft()
            self.queued_bytes -= len(data)
            if self._paused and not self._resume_due and self.queued_bytes <= LOW_WATER_BYTES:
                if self._app_on_loop:  # on the loop thread already
                    self._resume()
                else:
                    self._resume_due = True
                    self._conn.ctx.to_loop(self._resume)
            return data
        if self._error is not None:
            raise BodyUnavailable(self._error)
        return b""

    def _wait(self) -> None:
        """Threads mode, under the lock: wait for the loop to deliver more of the body."""
        conn = self._conn
        if self._continue_due:
            self._continue_due = False
            conn.ctx.to_loop(conn.send_continue)
        # A little longer than the loop's own body deadline, which answers 408 first.
        timeout = conn.ctx.config.body_timeout + 1.0
        away = conn.ctx.inflight.step_out()
        try:
            while not self._chunks and not self._ended and self._error is None:
                if not self._cond.wait(timeout):
                    self._error = "timed out waiting for the request body"
        finally:
            conn.ctx.inflight.step_in(away)

    def _pull_inline(self) -> bytes:
        """Inline mode: the loop is busy running the app, so read the socket here."""
        conn = self._conn
        try:
            while not self._chunks and not self._ended and self._error is None:
                if self._continue_due and not conn.has_pending():
                    self._continue_due = False
                    conn.send_continue()
                conn.receive_inline(conn.ctx.config.body_timeout)
        except BodyUnavailable as exc:
            self.fail(str(exc))
        return self._next()
