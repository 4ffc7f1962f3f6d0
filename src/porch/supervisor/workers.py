"""Worker processes as the master sees them: the record, fork, exit status, RSS, privileges."""

from __future__ import annotations

import grp
import logging
import os
import pwd
import signal
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass

from porch.errors import ConfigError, ExitCode
from porch.ipc import WorkerChannel

__all__ = [
    "Worker",
    "describe_status",
    "drop_privileges",
    "fork_worker",
    "read_rss_bytes",
    "resolve_ids",
]

_PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


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

    @property
    def stopping(self) -> bool:
        """Whether the master asked this worker to stop (or killed it)."""
        return self.stop_signal is not None or self.aborted_at is not None or self.killed


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


def resolve_ids(user: str | None, group: str | None) -> tuple[int | None, int | None]:
    """The uid and gid the workers switch to (names or numbers); ``ConfigError`` if unknown.

    A user name also selects that user's primary group unless ``group`` is given.
    """
    uid = gid = None
    if user is not None:
        try:
            entry = pwd.getpwuid(int(user)) if user.isdigit() else pwd.getpwnam(user)
            uid, gid = entry.pw_uid, entry.pw_gid
        except KeyError:
            if not user.isdigit():
                raise ConfigError(f"--user: no such user {user!r}") from None
            uid = int(user)
    if group is not None:
        try:
            gid = int(group) if group.isdigit() else grp.getgrnam(group).gr_gid
        except KeyError:
            raise ConfigError(f"--group: no such group {group!r}") from None
    return uid, gid


def drop_privileges(uid: int | None, gid: int | None) -> None:
    """Switch the current (worker) process to ``gid`` and ``uid``: groups first, then the user."""
    if uid is None and gid is None:
        return
    if os.getuid() == 0:
        target_gid = gid if gid is not None else os.getgid()
        try:
            name = pwd.getpwuid(uid).pw_name if uid is not None else None
        except KeyError:
            name = None
        if name is not None:
            os.initgroups(name, target_gid)
        else:
            os.setgroups([target_gid])
    if gid is not None and gid != os.getgid():
        os.setgid(gid)
    if uid is not None and uid != os.getuid():
        os.setuid(uid)
