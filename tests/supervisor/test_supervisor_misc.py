"""Pid file, --user/--group resolution, RSS reading and the master's signal queue."""

from __future__ import annotations

import os
import pwd
import signal
import subprocess
import sys
from pathlib import Path

import pytest

from porch.errors import ConfigError
from porch.supervisor.pidfile import remove_pidfile, write_pidfile
from porch.supervisor.privileges import resolve_ids
from porch.supervisor.reloader import watch_roots
from porch.supervisor.signals import SignalQueue
from porch.supervisor.workers import read_rss_bytes


def test_pidfile_written_and_removed_only_when_ours(tmp_path: Path) -> None:
    path = str(tmp_path / "porch.pid")
    write_pidfile(path, 1234)
    assert Path(path).read_text() == "1234\n"
    remove_pidfile(path, 999)  # somebody else's: kept
    assert Path(path).exists()
    remove_pidfile(path, 1234)
    assert not Path(path).exists()
    remove_pidfile(path, 1234)  # already gone: no error


def test_pidfile_of_a_running_porch_is_not_taken_over(tmp_path: Path) -> None:
    path = tmp_path / "porch.pid"
    # A live process whose command line names porch (as `porch app:app` does).
    code = "import time; print('up', flush=True); time.sleep(30)"
    other = subprocess.Popen([sys.executable, "-c", code, "porch"], stdout=subprocess.PIPE)
    try:
        assert other.stdout is not None
        other.stdout.readline()  # exec'd: its /proc cmdline is its own, not pytest's
        path.write_text(f"{other.pid}\n")
        with pytest.raises(ConfigError, match=f"names process {other.pid}, a porch"):
            write_pidfile(str(path), os.getpid())
        assert path.read_text() == f"{other.pid}\n"  # left as it was
    finally:
        other.kill()
        other.wait()
        if other.stdout is not None:
            other.stdout.close()
    # Its process gone: the file is stale and replaced.
    write_pidfile(str(path), os.getpid())
    assert path.read_text() == f"{os.getpid()}\n"


def test_pidfile_naming_an_unrelated_process_is_stale(tmp_path: Path) -> None:
    path = tmp_path / "porch.pid"
    unrelated = subprocess.Popen(["sleep", "30"])  # a reused pid: not a porch
    try:
        path.write_text(f"{unrelated.pid}\n")
        write_pidfile(str(path), os.getpid())
        assert path.read_text() == f"{os.getpid()}\n"
    finally:
        unrelated.kill()
        unrelated.wait()


def test_pidfile_unwritable(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="--pid: cannot write"):
        write_pidfile(str(tmp_path / "missing" / "porch.pid"), 1)


def test_resolve_ids() -> None:
    me = pwd.getpwuid(os.getuid())
    assert resolve_ids(None, None) == (None, None)
    assert resolve_ids(me.pw_name, None) == (me.pw_uid, me.pw_gid)
    assert resolve_ids(str(me.pw_uid), "0") == (me.pw_uid, 0)
    assert resolve_ids("4242424", None) == (4242424, None)  # numeric without passwd entry
    with pytest.raises(ConfigError, match="--user: no such user 'no-such-user-x'"):
        resolve_ids("no-such-user-x", None)
    with pytest.raises(ConfigError, match="--group: no such group 'no-such-group-x'"):
        resolve_ids(None, "no-such-group-x")


def test_read_rss_bytes() -> None:
    rss = read_rss_bytes(os.getpid())
    assert rss is not None and rss > 1024 * 1024
    assert read_rss_bytes(2**22 + 12345) is None


def test_signal_queue_orders_signals_and_coalesces_sigchld() -> None:
    queue = SignalQueue([signal.SIGUSR2, signal.SIGCHLD])
    queue.install()
    try:
        os.kill(os.getpid(), signal.SIGUSR2)
        os.kill(os.getpid(), signal.SIGCHLD)
        os.kill(os.getpid(), signal.SIGCHLD)
        assert queue.pending()
        assert queue.child_exited
        assert queue.pop() == signal.SIGUSR2
        assert queue.pop() is None
        assert os.read(queue.fileno(), 100)  # the self-pipe woke
        queue.drain()
        queue.push(signal.SIGHUP)  # as the reloader thread does
        assert queue.pop() == signal.SIGHUP
    finally:
        queue.restore()
    assert signal.getsignal(signal.SIGUSR2) == signal.SIG_DFL
    assert queue.fileno() == -1


def test_watch_roots(tmp_path: Path) -> None:
    base = str(tmp_path)
    assert watch_roots("app:app", base) == [base]
    assert watch_roots("sub/app.py", base) == [base]
    outside = str(tmp_path.parent / "elsewhere" / "app.py")
    assert watch_roots(f"{outside}:application", base) == [base, str(tmp_path.parent / "elsewhere")]
    assert watch_roots(None, None) == [os.getcwd()]
    # --pythonpath folders too (relative ones from the app directory), once each.
    libs = str(tmp_path.parent / "libs")
    assert watch_roots("app:app", base, [libs, "sub", libs]) == [base, libs]
    assert watch_roots("app:app", str(tmp_path / "sub"), [base]) == [base]
