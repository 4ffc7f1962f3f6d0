"""WorkerChannel across a real fork: heartbeats in shared memory, readiness through the pipe."""

from __future__ import annotations

import os
import select
import time

from porch.ipc import WorkerChannel


def _fork(child: object) -> int:
    pid = os.fork()
    if pid == 0:  # pragma: no cover - runs in the child
        code = 0
        try:
            child()  # type: ignore[operator]
        except BaseException:
            code = 1
        finally:
            os._exit(code)
    return pid


def _wait_readable(fd: int, timeout_s: float = 10.0) -> None:
    readable, _, _ = select.select([fd], [], [], timeout_s)
    assert readable, "the readiness pipe never became readable"


def test_initial_beat_is_creation_time() -> None:
    before = time.monotonic()
    channel = WorkerChannel()
    try:
        assert before <= channel.last_beat() <= time.monotonic()
        assert not channel.is_ready()
    finally:
        channel.close()


def test_beat_from_the_child_is_seen_by_the_master() -> None:
    channel = WorkerChannel()
    start = channel.last_beat()

    def child() -> None:
        channel.close_master_side()
        time.sleep(0.05)
        channel.beat()
        channel.notify_ready()  # used here only as "the beat is written"

    pid = _fork(child)
    channel.close_worker_side()
    try:
        _wait_readable(channel.ready_fileno())
        assert channel.read_ready() is True
        assert channel.last_beat() > start
        assert channel.is_ready()
        assert not channel.waiting()
    finally:
        assert os.waitpid(pid, 0)[1] == 0
        channel.close()


def test_child_dying_before_ready_gives_end_of_file() -> None:
    channel = WorkerChannel()
    pid = _fork(channel.close_master_side)
    channel.close_worker_side()
    try:
        _wait_readable(channel.ready_fileno())
        assert channel.read_ready() is False
        assert not channel.is_ready()
        assert not channel.waiting()  # EOF: the master stops polling this pipe
    finally:
        os.waitpid(pid, 0)
        channel.close()


def test_the_leaving_flag_from_the_child_is_seen_by_the_master() -> None:
    channel = WorkerChannel()
    assert not channel.leaving()
    beat = channel.last_beat()

    def child() -> None:
        channel.close_master_side()
        channel.notify_leaving()

    pid = _fork(child)
    channel.close_worker_side()
    try:
        assert os.waitpid(pid, 0)[1] == 0
        assert channel.leaving()
        assert channel.last_beat() == beat  # the flag does not touch the heartbeat
    finally:
        channel.close()
    assert not channel.leaving()  # closed: nothing to read


def test_read_before_anything_was_written_does_not_block() -> None:
    channel = WorkerChannel()
    try:
        assert channel.read_ready() is False
        assert channel.waiting()
    finally:
        channel.close()


def test_close_is_idempotent() -> None:
    channel = WorkerChannel()
    channel.close_worker_side()
    channel.close()
    channel.close()
    assert channel.ready_fileno() == -1
