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

    __slots__ = ("_finished", "_jobs", "_stopped", "_submitted", "threads")

    def __init__(self, count: int, *, name_prefix: str) -> None:
        self._jobs: SimpleQueue[Callable[[], object] | None] = SimpleQueue()
        self._stopped = False
        # Counted without a lock: jobs are submitted from the loop thread only, and
        # each app thread counts the jobs it finished in a slot of its own.
        self._submitted = 0
        self._finished = [0] * count
        self.threads = [
            threading.Thread(target=self._work, args=(i,), name=f"{name_prefix}_{i}", daemon=True)
            for i in range(count)
        ]
        for thread in self.threads:
            thread.start()

    def submit(self, job: Callable[[], object]) -> None:
        """Queue ``job`` (from the loop thread: see ``pending``)."""
        self._submitted += 1
        self._jobs.put(job)

    def pending(self) -> int:
        """Jobs submitted and not finished: running, or waiting for a thread."""
        return self._submitted - sum(self._finished)

    def shutdown(self) -> None:
        """Run no further job; each thread ends once its current job returns."""
        self._stopped = True
        for _ in self.threads:
            self._jobs.put(None)

    def _work(self, index: int) -> None:
        jobs = self._jobs
        finished = self._finished
        while True:
            job = jobs.get()
            if job is None or self._stopped:
                return
            try:
                job()
            except BaseException:  # pragma: no cover - jobs handle their own errors
                error_log.exception("Unexpected error in an app thread")
            finished[index] += 1


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
