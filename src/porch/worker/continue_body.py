"""``Expect: 100-continue`` (RFC 9110 §10.1.1): the app decides whether the body comes.

Such a request is dispatched once its head is parsed, with a ``BufferedInput``
whose first read calls :meth:`ContinueBody.want`. Only then does ``100 Continue``
go out and the connection read the body: in threads mode on the loop thread,
while the pool thread waits for it; in inline mode right there, since the app
runs on the loop thread itself. An app that never reads gets its response sent
without the body ever being asked for.
"""

from __future__ import annotations

import threading
import time
from typing import TYPE_CHECKING, Final

from porch.errors import BodyUnavailable

# Final: compiled code calls the clock directly, not through a lookup in the module's globals.
monotonic: Final = time.monotonic

if TYPE_CHECKING:
    from porch.worker.connection import HTTPConnection

__all__ = ["ContinueBody"]


class ContinueBody:
    """The body of one 100-continue request, asked for on the app's first read."""

    __slots__ = ("conn", "event")

    def __init__(self, conn: HTTPConnection) -> None:
        self.conn = conn
        self.event: threading.Event | None = None  # threads mode: set once it is in (or lost)

    def want(self) -> None:
        """First read of the body (the app's thread): ask for it, wait until buffered."""
        conn = self.conn
        if conn.ctx.inline:
            self._read_inline()
            return
        event = self.event = threading.Event()
        conn.ctx.to_loop(self._start)
        if not event.wait(conn.ctx.config.body_timeout + 1.0) or not self._ready():
            raise BodyUnavailable("the client did not send the request body")

    def wake(self) -> None:
        """The body is complete, or will never be: release a waiting app thread."""
        if self.event is not None:
            self.event.set()

    def _ready(self) -> bool:
        return self.conn.body_done and not self.conn.closing

    def _start(self) -> None:
        """Threads mode, on the loop: send 100 and read the body as it arrives."""
        conn = self.conn
        if conn.closing or self._ready():
            self.wake()
            return
        conn.early = True
        conn.send_continue()
        conn.deadline = monotonic() + conn.ctx.config.body_timeout
        conn.resume_reading()
        conn.process_events()

    def _read_inline(self) -> None:
        """Inline mode: the app runs on the loop thread, so read the socket here."""
        conn = self.conn
        assert conn.transport is not None
        conn.early = True
        conn.process_events()
        if self._ready() or not conn.early:
            conn.early = False
            return
        conn.send_continue()
        while conn.early and not conn.closing:
            conn.receive_inline(conn.ctx.config.body_timeout)
            if conn.parser.failed and conn.early:
                raise BodyUnavailable("malformed request body")
