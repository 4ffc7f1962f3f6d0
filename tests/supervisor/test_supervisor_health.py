"""Pure decisions of the master: back-off, exit verdicts, silent, overdue and oversized workers."""

from __future__ import annotations

import logging
import signal

import pytest

from porch.errors import ExitCode
from porch.ipc import WorkerChannel
from porch.supervisor.health import (
    MAX_BACKOFF_SECONDS,
    backoff_seconds,
    exit_verdict,
    over_memory,
    overdue_workers,
    silent_workers,
)
from porch.supervisor.workers import Worker, describe_status


@pytest.fixture
def channel() -> WorkerChannel:
    return WorkerChannel()


def make_worker(channel: WorkerChannel, pid: int = 100, **fields: object) -> Worker:
    return Worker(pid=pid, worker_id=1, generation=1, channel=channel, spawned_at=0.0,
                  **fields)  # type: ignore[arg-type]  # fmt: skip


def test_backoff_grows_and_is_capped() -> None:
    delays = [backoff_seconds(n) for n in range(0, 12)]
    assert delays[:3] == [0.0, 0.0, 0.25]
    assert delays[3:6] == [0.5, 1.0, 2.0]
    assert delays == sorted(delays)
    assert max(delays) == MAX_BACKOFF_SECONDS


@pytest.mark.parametrize(
    ("code", "level", "text"),
    [
        (ExitCode.OK, logging.ERROR, "exited unexpectedly (whatever)"),
        (ExitCode.WORKER_TIMEOUT, logging.WARNING, "request timed out"),
        (ExitCode.APP_LOAD_ERROR, logging.ERROR, "could not load the application"),
        (-signal.SIGKILL, logging.ERROR, "killed by SIGKILL (out of memory?)"),
        (1, logging.ERROR, "died (exit code 1)"),
    ],
)
def test_exit_verdict(code: int, level: int, text: str) -> None:
    how = "exit code 1" if code == 1 else "whatever"
    got_level, message = exit_verdict(42, code, how)
    assert got_level == level
    assert message.startswith("Worker 42 ")
    assert text in message


def test_exit_0_is_a_recycle_only_when_the_worker_said_it_was_leaving() -> None:
    # An app calling os._exit(0) was logged as a recycle.
    assert exit_verdict(42, 0, "exit code 0", leaving=True) == (
        logging.INFO, "Worker 42 exited (recycled); replacing it")  # fmt: skip
    assert exit_verdict(42, 0, "exit code 0") == (
        logging.ERROR, "Worker 42 exited unexpectedly (exit code 0); replacing it")  # fmt: skip


def test_exit_verdict_before_serving() -> None:
    level, message = exit_verdict(7, 0, "exit code 0", served=False)
    assert level == logging.ERROR
    assert message == "Worker 7 exited before serving (exit code 0); replacing it"


def test_describe_status() -> None:
    assert describe_status(4 << 8) == "exit code 4"
    assert describe_status(signal.SIGSEGV) == "signal SIGSEGV"


def test_silent_workers(channel: WorkerChannel) -> None:
    beat = channel.last_beat()
    worker = make_worker(channel)
    assert silent_workers([worker], beat + 5.0, 10.0) == []
    assert silent_workers([worker], beat + 10.5, 10.0) == [(worker, 10.5)]
    worker.stop_signal = signal.SIGTERM  # stopping workers are judged by their deadline
    assert silent_workers([worker], beat + 100.0, 10.0) == []


def test_overdue_workers(channel: WorkerChannel) -> None:
    running = make_worker(channel, pid=1)
    stopping = make_worker(channel, pid=2, stop_signal=signal.SIGTERM, stop_deadline=10.0)
    killed = make_worker(channel, pid=3, stop_signal=signal.SIGTERM, stop_deadline=1.0,
                         killed=True)  # fmt: skip
    aborted = make_worker(channel, pid=4, aborted_at=5.0, stop_deadline=6.0)
    workers = [running, stopping, killed, aborted]
    assert overdue_workers(workers, 5.0) == []
    assert overdue_workers(workers, 6.0) == [aborted]
    assert overdue_workers(workers, 10.0) == [stopping, aborted]


def test_over_memory(channel: WorkerChannel) -> None:
    small, big = make_worker(channel, pid=1), make_worker(channel, pid=2)
    leaving = make_worker(channel, pid=3, stop_signal=signal.SIGTERM)
    rss = {1: 100, 2: 5000, 3: 9000}
    assert over_memory([small, big, leaving], 1000, rss.get) == [(big, 5000)]
    assert over_memory([small], 1000, lambda pid: None) == []
