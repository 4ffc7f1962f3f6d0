"""Zero-copy response bodies: os.sendfile on a dup of the client socket."""

from __future__ import annotations

import os
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Final

# Final: compiled code calls the clock directly, not through a lookup in the module's globals.
monotonic: Final = time.monotonic

if TYPE_CHECKING:
    from porch.worker.output import ConnectionOutput


class SendFile:
    """Sends a file span with os.sendfile: at once while the socket takes it, then
    driven by add_writer on a dup of the socket fd. ``done(ok, unsent)`` ends it.

    The first attempt writes to the transport's own socket, only when the
    transport has nothing queued (the head went out whole), so bytes stay in
    order. Most responses end there; a larger one that fills the socket buffer
    continues on a dup, which lets us watch writability without touching the
    transport's own registration.
    """

    __slots__ = ("conn", "count", "done", "fd", "file_fd", "offset")

    def __init__(
        self,
        conn: ConnectionOutput,
        file_fd: int,
        offset: int,
        count: int,
        done: Callable[[bool, int], None],
    ) -> None:
        self.conn, self.fd, self.file_fd = conn, -1, file_fd
        self.offset, self.count, self.done = offset, count, done

    def start(self, sock_fd: int) -> bool:
        """Send what the socket takes now; True when the span is finished (sent or failed)."""
        conn = self.conn
        assert conn.transport is not None
        if not conn.transport.get_write_buffer_size():
            try:
                while self.count > 0:
                    sent = os.sendfile(sock_fd, self.file_fd, self.offset, min(self.count, 1 << 20))
                    if sent == 0:  # the file is shorter than announced
                        self.done(False, self.count)
                        return True
                    self.offset += sent
                    self.count -= sent
            except BlockingIOError:
                pass
            except OSError:
                self.done(False, self.count)
                return True
            if self.count <= 0:
                self.done(True, 0)
                return True
        self.fd = os.dup(sock_fd)
        conn.deadline = monotonic() + conn.ctx.config.write_timeout
        conn.ctx.loop.add_writer(self.fd, self.step)
        return False

    def step(self) -> None:
        conn = self.conn
        assert conn.transport is not None
        if conn.transport.get_write_buffer_size():
            return  # the response head is still queued in the transport
        try:
            sent = os.sendfile(self.fd, self.file_fd, self.offset, min(self.count, 1 << 20))
        except BlockingIOError:
            return
        except OSError:
            self.stop(ok=False)
            return
        self.offset += sent
        self.count -= sent
        conn.deadline = monotonic() + conn.ctx.config.write_timeout
        if sent == 0 or self.count <= 0:
            self.stop(ok=self.count <= 0)

    def stop(self, *, ok: bool) -> None:
        loop = self.conn.ctx.loop
        loop.remove_writer(self.fd)
        os.close(self.fd)
        self.conn.sendfile_done()
        self.conn.deadline = 0.0
        self.done(ok, self.count)
