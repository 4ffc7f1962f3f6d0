"""Threads mode's two hand-offs: jobs to the app threads, and calls back to the loop.

``AppThreads`` is the app's thread pool: ``--threads`` daemon threads taking
callables from one ``SimpleQueue``. ``concurrent.futures.ThreadPoolExecutor``
did the same with a ``Future`` and a work item per job, which porch never
reads (each job reports back through the loop itself).

``LoopInbox`` carries calls from those threads to the event loop.
``call_soon_threadsafe`` wakes the loop through its self-pipe on every call
(a write and a read syscall); under load most calls arrive while a wake-up is
already pending, so the inbox queues them and wakes the loop once per batch.
Calls run on the loop in the order they were posted.
"""

from __future__ import annotations

import asyncio
import logging
import threading
from collections import deque
from collections.abc import Callable
from queue import SimpleQueue
from typing import Any, Final

error_log: Final = logging.getLogger("porch.error")

__all__ = ["AppThreads", "LoopInbox"]


class AppThreads:
    """``count`` daemon threads running submitted callables in order of submission."""

    __slots__ = ("_jobs", "_stopped", "threads")

    def __init__(self, count: int, *, name_prefix: str) -> None:
        self._jobs: SimpleQueue[Callable[[], object] | None] = SimpleQueue()
        self._stopped = False
        self.threads = [
            threading.Thread(target=self._work, name=f"{name_prefix}_{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, job: Callable[[], object]) -> None:
        self._jobs.put(job)

    def shutdown(self) -> None:
        """Run no further job; each thread ends once its current job returns."""
        self._stopped = True
        for _ in self.threads:
            self._jobs.put(None)

    def _work(self) -> None:
        jobs = self._jobs
        while True:
            job = jobs.get()
            if job is None or self._stopped:
                return
            try:
                job()
            except BaseException:  # pragma: no cover - jobs handle their own errors
                error_log.exception("Unexpected error in an app thread")


class LoopInbox:
    """Calls posted from any thread, run on the loop in order, one wake-up per batch."""

    __slots__ = ("_calls", "_lock", "_loop", "_scheduled")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self._loop = loop
        self._calls: deque[tuple[Callable[..., object], tuple[Any, ...]]] = deque()
        self._lock = threading.Lock()
        self._scheduled = False

    def post(self, call: Callable[..., object], *args: Any) -> None:
        self._calls.append((call, args))
        with self._lock:
            if self._scheduled:
                return  # the pending _drain runs this call too (it clears the flag first)
            self._scheduled = True
        self._loop.call_soon_threadsafe(self._drain)

    def _drain(self) -> None:
        with self._lock:
            self._scheduled = False
        calls = self._calls
        while calls:
            call, args = calls.popleft()
            try:
                call(*args)
            except Exception:  # one failing call must not strand the rest of the batch
                error_log.exception("Error in a call from an app thread")
