"""Workers that are still importing the app: the master dying, USR1 (logrotate) arriving,
an import slower than --timeout; and the graceful stop's deadline, kept to the second
and logged."""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import time
from collections.abc import Callable
from pathlib import Path

from conftest import Porch
from porch.errors import ExitCode

StartPorch = Callable[..., Porch]

SLOW_IMPORT = """\
import sys, time
print("slowboot: importing", flush=True, file=sys.stderr)
time.sleep({seconds})


def app(environ, start_response):
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]
"""


def _booting(start_porch: StartPorch, tmp_path: Path, seconds: float) -> tuple[Porch, int]:
    """One worker importing an app that takes ``seconds``: porch, and the worker's pid."""
    (tmp_path / "slowboot.py").write_text(SLOW_IMPORT.format(seconds=seconds))
    porch = start_porch("slowboot:app", "-b", "127.0.0.1:0", "-w", "1")
    porch.wait_for("slowboot: importing")
    (worker,) = porch.worker_pids()
    return porch, worker


def _gone(pid: int) -> bool:
    """Exited (a zombie waiting for init counts as exited)."""
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


def test_a_worker_whose_master_dies_while_it_boots_stops(
    start_porch: StartPorch, tmp_path: Path
) -> None:
    porch, worker = _booting(start_porch, tmp_path, 1.5)
    try:
        porch.proc.kill()  # SIGKILL: the master cannot tell its worker anything
        porch.proc.wait(5)
        deadline = time.monotonic() + 15
        while not _gone(worker) and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _gone(worker), "the orphaned worker kept serving"
        assert porch.count(r"the master is gone; stopping") == 1
    finally:
        with contextlib.suppress(ProcessLookupError):
            os.kill(worker, signal.SIGKILL)


def test_usr1_does_not_end_a_worker_importing_the_app(
    start_porch: StartPorch, tmp_path: Path
) -> None:
    porch, worker = _booting(start_porch, tmp_path, 1.0)
    porch.signal(signal.SIGUSR1)  # logrotate, while the worker imports
    porch.wait_ready()
    with porch.client() as client:
        assert client.get("/").text == "ok"
    assert porch.worker_pids() == [worker]
    assert porch.count("died") == 0


def test_the_graceful_timeout_is_kept_and_what_it_cuts_is_logged(
    start_porch: StartPorch,
) -> None:
    porch = start_porch("procapp:app", "-b", "127.0.0.1:0", "--threads", "2",
                        "--graceful-timeout", "2")  # fmt: skip
    url = porch.wait_ready()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as slow:
        slow.sendall(b"GET /sleep?s=30 HTTP/1.1\r\nHost: x\r\n\r\n")
        porch.wait_for(r"procapp: sleeping 30 ")
        started = time.monotonic()
        porch.signal(signal.SIGTERM)
        assert slow.recv(65536) == b""  # cut, not answered
        cut_after = time.monotonic() - started
    assert porch.wait_exit() == 0
    assert 1.9 <= cut_after < 4, cut_after
    assert (
        porch.count(
            r"--graceful-timeout 2s passed; closing 1 connections \(1 with a request in progress\)"
        )
        == 1
    ), porch.log()
    assert porch.count("Killing worker") == 0


def test_an_app_import_slower_than_the_timeout_is_a_failed_boot(
    start_porch: StartPorch, tmp_path: Path
) -> None:
    """A canary still importing after --timeout + 2 s is aborted (its stack dumped) and
    counts as a failed boot: respawned with back-off, then porch stops with exit 3.
    It used to be respawned at once, forever."""
    (tmp_path / "slowboot.py").write_text(SLOW_IMPORT.format(seconds=60))
    porch = start_porch("slowboot:app", "-b", "127.0.0.1:0", "-w", "2", "--timeout", "0.2")
    assert porch.wait_exit(timeout=60) == ExitCode.WORKER_BOOT_ERROR
    assert len(porch.worker_pids()) == 5  # the canary, 5 times with back-off, then stop
    assert porch.count(r"silent for \d+\.\ds while booting \(the app import may take at most "
                       r"--timeout \+ 2s\), killed") == 5  # fmt: skip
    assert porch.count(r"Workers keep dying before serving; next spawn in 0\.25s") == 1
    assert porch.count(r"next spawn in 1\.00s") == 1
    assert porch.count(r"Stopping: worker \d+ failed to boot \(still booting after") == 1
    assert porch.count(r'File ".*slowboot\.py", line 3') >= 1  # faulthandler's stack dump
