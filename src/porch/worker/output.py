"""A connection's byte side: transport writes, flow control both ways, sendfile, closing.

:class:`ConnectionOutput` is the base of the connection driver
(:class:`porch.worker.connection.HTTPConnection`): it holds the transport and
the flags that say what may still be written or read, so the driver's own
module is about requests (parsing, bodies, dispatch, keep-alive, deadlines).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

from porch.worker.dispatch import JOIN_MAX_BYTES
from porch.worker.sendfile import SendFile

if TYPE_CHECKING:
    from porch.worker.context import WorkerContext

__all__ = ["ConnectionOutput"]

# Final: compiled code calls the clock directly, not through a lookup in the module's globals.
monotonic: Final = time.monotonic


class ConnectionOutput(asyncio.Protocol):
    """The transport of one connection and what is written to it (see module docstring)."""

    __slots__ = (
        "_sendfile",
        "closed",
        "closing",
        "ctx",
        "deadline",
        "reading_paused",
        "transport",
        "write_paused",
    )

    def __init__(self, ctx: WorkerContext) -> None:
        self.ctx = ctx
        self.transport: asyncio.Transport | None = None
        self.deadline = 0.0  # absolute monotonic time the next deadline fires; 0: none
        self.write_paused = False
        self.reading_paused = False
        self.closing = False  # we closed or aborted: nothing more is read, parsed or written
        self.closed = False  # connection_lost() ran
        self._sendfile: SendFile | None = None

    def pause_writing(self) -> None:
        self.write_paused = True
        self.deadline = monotonic() + self.ctx.config.write_timeout

    def write(self, data: bytes) -> None:
        if not self.closing:
            transport = self.transport
            assert transport is not None
            transport.write(data)
            if transport.is_closing():  # the write failed: the peer is gone
                self.closing = True

    def write_parts(self, parts: list[bytes]) -> None:
        """Write a response in pieces: joined when small (one send), else as a writev."""
        if len(parts) == 1:
            self.write(parts[0])
            return
        size = 0
        for part in parts:
            size += len(part)
        if size < JOIN_MAX_BYTES:
            self.write(b"".join(parts))
        elif not self.closing:
            transport = self.transport
            assert transport is not None
            transport.writelines(parts)
            if transport.is_closing():
                self.closing = True

    def sendfile(self, fd: int, offset: int, count: int, done: Callable[[bool, int], None]) -> None:
        """Send ``count`` bytes of file ``fd`` from ``offset`` with os.sendfile;
        ``done(ok, unsent)`` is called once finished or failed."""
        assert self.transport is not None
        sock = self.transport.get_extra_info("socket")
        if sock is None or self.closing:
            done(False, count)
            return
        sending = SendFile(self, fd, offset, count, done)
        if not sending.start(sock.fileno()):
            self._sendfile = sending  # continues when the socket is writable

    def sendfile_done(self) -> None:
        self._sendfile = None

    def _pause_reading(self) -> None:
        if not self.reading_paused and not self.closing:
            self.reading_paused = True
            assert self.transport is not None
            self.transport.pause_reading()

    def resume_reading(self) -> None:
        if self.reading_paused and not self.closing:
            self.reading_paused = False
            assert self.transport is not None
            self.transport.resume_reading()

    def _abort_transport(self) -> None:
        """Drop the connection now, unflushed writes included."""
        self.closing = True
        if self.transport is not None and not self.closed:
            self.transport.abort()

    def _close_transport(self) -> None:
        """Close once what was written is flushed."""
        if self.transport is not None and not self.closing:
            self.closing = True
            self.transport.close()
