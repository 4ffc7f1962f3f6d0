"""Zero-copy response bodies: os.sendfile on a dup of the client socket."""

from __future__ import annotations

import os
from collections.abc import Callable
from time import monotonic
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from porch.worker.connection import HTTPConnection


class SendFile:
    """Sends a file span with os.sendfile, driven by add_writer on a dup of the socket fd.

    The dup lets us watch writability without touching the transport's own
    registration; we only write once the transport's buffer (the head) is empty.
    """

    __slots__ = ("conn", "count", "done", "fd", "file_fd", "offset")

    def __init__(
        self,
        conn: HTTPConnection,
        fd: int,
        file_fd: int,
        offset: int,
        count: int,
        done: Callable[[bool], None],
    ) -> None:
        self.conn, self.fd, self.file_fd = conn, fd, file_fd
        self.offset, self.count, self.done = offset, count, done
        conn.ctx.loop.add_writer(fd, self.step)

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
        self.done(ok)
