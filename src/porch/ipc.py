"""Master<->worker channel: a heartbeat slot in shared memory and a readiness pipe.

The master creates one :class:`WorkerChannel` per worker before ``fork()``. The
worker writes ``time.monotonic()`` into the shared slot (``beat``), writes one
byte into the pipe once it serves (``notify_ready``), and sets a flag in the slot
when it stops on its own (``notify_leaving``: --max-requests, a hung request).
``CLOCK_MONOTONIC`` is system-wide on Linux, so the master can compare the
worker's stamp with its own clock. After the fork each side closes the pipe end
it does not use, so the master sees end-of-file on the readiness pipe when a
worker dies before it was ready.
"""

from __future__ import annotations

import mmap
import os
import struct
import time

__all__ = ["WorkerChannel"]

_SLOT = struct.Struct("d")  # the last beat; then one byte: the leaving flag
_LEAVING = _SLOT.size
_READY = b"R"


class WorkerChannel:
    """Heartbeat slot plus readiness pipe shared by the master and one worker."""

    __slots__ = ("_eof", "_ready", "_ready_r", "_ready_w", "_slot")

    def __init__(self) -> None:
        self._slot = mmap.mmap(-1, _SLOT.size + 1, flags=mmap.MAP_SHARED)
        _SLOT.pack_into(self._slot, 0, time.monotonic())
        self._ready_r, self._ready_w = os.pipe()
        os.set_blocking(self._ready_r, False)
        self._ready = False
        self._eof = False

    # --- worker side -----------------------------------------------------------

    def beat(self) -> None:
        """Record that the worker is alive (call about once a second)."""
        _SLOT.pack_into(self._slot, 0, time.monotonic())

    def notify_ready(self) -> None:
        """Tell the master this worker accepts connections (call once)."""
        self.beat()
        if self._ready_w >= 0:
            try:
                os.write(self._ready_w, _READY)
            except OSError:  # EPIPE: the master is gone; the worker's tick notices and stops
                pass
            finally:
                os.close(self._ready_w)
                self._ready_w = -1

    def notify_leaving(self) -> None:
        """Tell the master this worker stops on its own and drains: it may start the
        replacement now, and knows an exit 0 is a recycle, not a crash."""
        self._slot[_LEAVING] = 1

    # --- master side -----------------------------------------------------------

    def leaving(self) -> bool:
        """Whether the worker called :meth:`notify_leaving`."""
        return not self._slot.closed and self._slot[_LEAVING] == 1

    def last_beat(self) -> float:
        """The worker's last ``time.monotonic()`` stamp (its creation time at first)."""
        value: float = _SLOT.unpack_from(self._slot, 0)[0]
        return value

    def ready_fileno(self) -> int:
        """The pipe end to poll for readability; then call :meth:`read_ready`."""
        return self._ready_r

    def read_ready(self) -> bool:
        """Consume what the worker wrote; return :meth:`is_ready`."""
        if self._ready_r < 0 or self._ready or self._eof:
            return self._ready
        try:
            data = os.read(self._ready_r, 64)
        except BlockingIOError:
            return self._ready
        if _READY in data:
            self._ready = True
        elif not data:
            self._eof = True
        return self._ready

    def is_ready(self) -> bool:
        """Whether the worker has called :meth:`notify_ready` (as last read)."""
        return self._ready

    def waiting(self) -> bool:
        """Whether the readiness pipe is still worth polling."""
        return self._ready_r >= 0 and not self._ready and not self._eof

    # --- after fork / teardown ---------------------------------------------------

    def close_worker_side(self) -> None:
        """In the master after fork: drop the worker's pipe end."""
        if self._ready_w >= 0:
            os.close(self._ready_w)
            self._ready_w = -1

    def close_master_side(self) -> None:
        """In the worker after fork: drop the master's pipe end."""
        if self._ready_r >= 0:
            os.close(self._ready_r)
            self._ready_r = -1

    def close(self) -> None:
        """Release everything (the master after reaping the worker)."""
        self.close_worker_side()
        self.close_master_side()
        if not self._slot.closed:
            self._slot.close()
