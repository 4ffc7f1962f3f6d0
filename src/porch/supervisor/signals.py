"""The master's signal queue: a tiny handler queues each signal; a self-pipe wakes the loop."""

from __future__ import annotations

import collections
import os
import signal
from collections.abc import Callable, Sequence
from types import FrameType

__all__ = ["SignalQueue"]

_Handler = Callable[[int, FrameType | None], object] | int | signal.Handlers | None
_MAX_QUEUED = 32


class SignalQueue:
    """Signals waiting for the master loop, and the pipe that interrupts its ``poll``.

    SIGCHLD is not queued (a burst of exits would crowd out TERM); it only sets
    :attr:`child_exited`, and the loop reaps every exited child at once.
    """

    def __init__(self, signals: Sequence[int]) -> None:
        self.signals = tuple(signals)
        self.child_exited = False
        self._queue: collections.deque[int] = collections.deque()
        self._saved: dict[int, _Handler] = {}
        self._read_fd = self._write_fd = -1

    def install(self) -> None:
        self._read_fd, self._write_fd = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
        for signum in self.signals:
            self._saved[signum] = signal.signal(signum, self._handle)

    def restore(self) -> None:
        """Put the previous handlers back and close the pipe."""
        for signum, handler in self._saved.items():
            if handler is not None:
                signal.signal(signum, handler)
        self._saved.clear()
        self.close_pipe()

    def close_pipe(self) -> None:
        """Close the self-pipe (also what a forked worker does)."""
        for fd in (self._read_fd, self._write_fd):
            if fd >= 0:
                os.close(fd)
        self._read_fd = self._write_fd = -1

    def fileno(self) -> int:
        """The read end to poll."""
        return self._read_fd

    def _handle(self, signum: int, frame: FrameType | None) -> None:
        if signum == signal.SIGCHLD:
            self.child_exited = True
            self.wake()
        else:
            self.push(signum)

    def push(self, signum: int) -> None:
        """Queue ``signum`` and wake the loop (also safe from another thread)."""
        if len(self._queue) < _MAX_QUEUED:
            self._queue.append(signum)
        self.wake()

    def wake(self) -> None:
        try:
            os.write(self._write_fd, b"!")
        except OSError:
            pass  # the pipe is full (the loop will wake anyway) or closed

    def drain(self) -> None:
        """Empty the pipe after ``poll`` reported it readable."""
        try:
            while os.read(self._read_fd, 512):
                pass
        except OSError:
            pass

    def pending(self) -> bool:
        return bool(self._queue) or self.child_exited

    def pop(self) -> int | None:
        return self._queue.popleft() if self._queue else None
