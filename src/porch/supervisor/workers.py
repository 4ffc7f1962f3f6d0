"""Worker processes as the master sees them: records, the table, fork, exit status, RSS."""

from __future__ import annotations

import logging
import os
import signal
import sys
import time
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

from porch.errors import ExitCode
from porch.ipc import WorkerChannel

__all__ = ["Worker", "WorkerTable", "describe_status", "fork_worker", "read_rss_bytes"]

ChildMain = Callable[[WorkerChannel, int], object]  # (channel, worker_id), runs in the child

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
# A stopping worker closes its last connections itself at its own deadline and
# exits; it gets this long past the master's deadline before it is killed.
STOP_MARGIN_SECONDS = 0.5


@dataclass(slots=True, kw_only=True)
class Worker:
    """One forked worker and what the master asked of it."""

    pid: int
    worker_id: int
    generation: int
    channel: WorkerChannel
    spawned_at: float
    ready: bool = False
    stop_signal: int | None = None  # the signal the master sent to stop it
    stop_deadline: float = 0.0  # SIGKILL after this monotonic time
    aborted_at: float | None = None  # SIGABRT sent because it went silent
    killed: bool = False  # SIGKILL sent by the master
    leaving: bool = False  # it said it stops on its own (--max-requests, a hung request)

    @property
    def stopping(self) -> bool:
        """Whether this worker is on its way out: asked to stop, killed, or leaving."""
        return (self.stop_signal is not None or self.aborted_at is not None or self.killed
                or self.leaving)  # fmt: skip


class WorkerTable:
    """The master's live workers by pid: fork, signal, reap."""

    def __init__(self, *, signals: Iterable[int]) -> None:
        self._signals = tuple(signals)
        self._workers: dict[int, Worker] = {}
        self._spawned = 0
        self._log = logging.getLogger("porch.error")

    def __len__(self) -> int:
        return len(self._workers)

    def __iter__(self) -> Iterator[Worker]:
        return iter(list(self._workers.values()))

    def running(self, generation: int) -> list[Worker]:
        """Workers of ``generation`` the master has not asked to stop."""
        return [w for w in self._workers.values() if w.generation == generation and not w.stopping]

    def spawn(self, child_main: ChildMain, *, generation: int) -> Worker:
        """Fork a worker running ``child_main(channel, worker_id)``; ``OSError`` if fork fails."""
        self._spawned += 1
        worker_id, channel = self._spawned, WorkerChannel()
        try:
            pid = fork_worker(lambda: child_main(channel, worker_id), signals=self._signals)
        except OSError:
            channel.close()
            raise
        channel.close_worker_side()
        worker = Worker(pid=pid, worker_id=worker_id, generation=generation, channel=channel,
                        spawned_at=time.monotonic())  # fmt: skip
        self._workers[pid] = worker
        return worker

    def close_channels(self) -> None:
        """In a new child: release the other workers' channels."""
        for worker in self._workers.values():
            worker.channel.close()

    def send(self, worker: Worker, signum: int) -> None:
        try:
            os.kill(worker.pid, signum)
        except ProcessLookupError:
            pass

    def stop(self, worker: Worker, signum: int, grace_seconds: float) -> None:
        """Send ``signum``; the worker is killed if still there after ``grace_seconds``
        (and STOP_MARGIN_SECONDS: the worker itself cuts what is left at its own
        deadline, counted from when the signal reached it, then exits)."""
        deadline = time.monotonic() + grace_seconds + STOP_MARGIN_SECONDS
        worker.stop_deadline = min(deadline, worker.stop_deadline) if worker.stopping else deadline
        worker.stop_signal = signum
        self.send(worker, signum)

    def kill(self, worker: Worker, why: str) -> None:
        if not worker.killed:
            self._log.warning("Killing worker %d: %s", worker.pid, why)
            worker.killed = True
            self.send(worker, signal.SIGKILL)

    def reap(self) -> list[tuple[Worker, int]]:
        """Collect every exited child; return the workers among them with their status."""
        exited = []
        while True:
            try:
                pid, status = os.waitpid(-1, os.WNOHANG)
            except ChildProcessError:
                break
            if pid == 0:
                break
            worker = self._workers.pop(pid, None)
            if worker is not None:
                worker.leaving = worker.leaving or worker.channel.leaving()  # before close
                worker.channel.close()
                exited.append((worker, status))
        return exited

    def kill_all(self) -> None:
        """SIGKILL every worker left and forget them (the master is leaving after an error)."""
        for worker in self._workers.values():
            self.send(worker, signal.SIGKILL)
            worker.channel.close()
        self._workers.clear()
        self.reap()


def fork_worker(child_main: Callable[[], object], *, signals: Iterable[int]) -> int:
    """Fork; the child runs ``child_main`` and always ``_exit``\\ s. Returns the child's pid.

    ``signals`` (the master's handled signals) are blocked across the fork, so the
    child resets them to their defaults before any of them can reach the master's
    handlers in the child.
    """
    blocked = set(signals)
    old_mask = signal.pthread_sigmask(signal.SIG_BLOCK, blocked)
    try:
        pid = os.fork()
    except BaseException:
        signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
        raise
    if pid == 0:
        _run_child(child_main, blocked, old_mask)
    signal.pthread_sigmask(signal.SIG_SETMASK, old_mask)
    return pid


def _run_child(child_main: Callable[[], object], blocked: set[int], mask: set[int]) -> None:
    code: int = ExitCode.WORKER_BOOT_ERROR
    try:
        for signum in blocked:
            signal.signal(signum, signal.SIG_DFL)
        signal.pthread_sigmask(signal.SIG_SETMASK, mask)
        child_main()
        code = ExitCode.OK
    except SystemExit as exc:
        code = _system_exit_code(exc)
    except BaseException:
        logging.getLogger("porch.error").exception("Worker %d failed to boot", os.getpid())
    finally:
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except Exception:
                pass
        os._exit(code)


def _system_exit_code(exc: SystemExit) -> int:
    if exc.code is None:
        return ExitCode.OK
    if isinstance(exc.code, int):
        return exc.code
    print(exc.code, file=sys.stderr)
    return ExitCode.ERROR


def describe_status(status: int) -> str:
    """``exit code 4`` or ``signal SIGKILL`` for a ``waitpid`` status."""
    code = os.waitstatus_to_exitcode(status)
    if code >= 0:
        return f"exit code {code}"
    try:
        return f"signal {signal.Signals(-code).name}"
    except ValueError:
        return f"signal {-code}"


def read_rss_bytes(pid: int) -> int | None:
    """Resident set size of ``pid`` from ``/proc/PID/statm``; ``None`` if unknown."""
    try:
        with open(f"/proc/{pid}/statm", "rb") as statm:
            fields = statm.read().split()
        return int(fields[1]) * _PAGE_BYTES
    except (OSError, IndexError, ValueError):
        return None
