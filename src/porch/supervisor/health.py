"""Pure decisions about workers: exit verdicts, respawn back-off, silence, deadlines, memory."""

from __future__ import annotations

import logging
import signal
from collections.abc import Callable, Iterable

from porch.errors import ExitCode
from porch.supervisor.workers import Worker

__all__ = [
    "BACKOFF_BASE_SECONDS",
    "MAX_BACKOFF_SECONDS",
    "backoff_seconds",
    "exit_verdict",
    "over_memory",
    "overdue_workers",
    "silent_workers",
]

BACKOFF_BASE_SECONDS = 0.25
MAX_BACKOFF_SECONDS = 10.0


def backoff_seconds(failures: int) -> float:
    """Delay before the next spawn after ``failures`` consecutive early worker deaths.

    The first failure is retried at once; then 0.25 s, 0.5 s, 1 s ... up to 10 s.
    """
    if failures < 2:
        return 0.0
    return float(min(MAX_BACKOFF_SECONDS, BACKOFF_BASE_SECONDS * 2 ** (failures - 2)))


def exit_verdict(
    pid: int, code: int, how: str, *, served: bool = True, leaving: bool = False
) -> tuple[int, str]:
    """Log level and message for a worker that exited without being asked to.

    ``leaving``: the worker said it was stopping on its own; exit 0 without that
    is not a recycle but, say, the app calling ``os._exit(0)``.
    """
    if not served and code in (ExitCode.OK, ExitCode.WORKER_TIMEOUT):
        return logging.ERROR, f"Worker {pid} exited before serving ({how}); replacing it"
    if code == ExitCode.OK and leaving:
        return logging.INFO, f"Worker {pid} exited (recycled); replacing it"
    if code == ExitCode.OK:
        return logging.ERROR, f"Worker {pid} exited unexpectedly ({how}); replacing it"
    if code == ExitCode.WORKER_TIMEOUT:
        return logging.WARNING, f"Worker {pid} left after a request timed out; replacing it"
    if code == ExitCode.APP_LOAD_ERROR:
        return logging.ERROR, f"Worker {pid} could not load the application; replacing it"
    if code == -signal.SIGKILL:
        return logging.ERROR, f"Worker {pid} was killed by SIGKILL (out of memory?); replacing it"
    return logging.ERROR, f"Worker {pid} died ({how}); replacing it"


def silent_workers(
    workers: Iterable[Worker], now: float, limit_seconds: float
) -> list[tuple[Worker, float]]:
    """Running workers whose last heartbeat is older than ``limit_seconds``, with the silence."""
    found = []
    for worker in workers:
        silence = now - worker.channel.last_beat()
        if not worker.stopping and silence > limit_seconds:
            found.append((worker, silence))
    return found


def overdue_workers(workers: Iterable[Worker], now: float) -> list[Worker]:
    """Workers asked to stop (or aborted) whose deadline passed and that are not killed yet."""
    return [w for w in workers if w.stopping and not w.killed and now >= w.stop_deadline]


def over_memory(
    workers: Iterable[Worker], limit_bytes: int, rss_of: Callable[[int], int | None]
) -> list[tuple[Worker, int]]:
    """Running workers whose resident memory exceeds ``limit_bytes``, with their RSS."""
    found = []
    for worker in workers:
        rss = None if worker.stopping else rss_of(worker.pid)
        if rss is not None and rss > limit_bytes:
            found.append((worker, rss))
    return found
