"""The real porch command: --max-requests, hung and frozen workers, memory limit, --reload."""

from __future__ import annotations

import os
import re
import select
import shutil
import signal
import socket
from collections.abc import Callable
from pathlib import Path

import httpx
from tests.under_test import PORCH_PATH

from conftest import APPS, Porch
from porch.errors import ExitCode

StartPorch = Callable[..., Porch]
APP = "procapp:app"


def test_max_requests_recycles_without_failed_requests(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "2", "--max-requests", "10")
    porch.wait_ready()
    failures, pids = [], set()
    with porch.client() as client:
        for _ in range(100):
            try:
                response = client.get("/pid")
                assert response.status_code == 200
                pids.add(int(response.text))
            except httpx.HTTPError as exc:
                failures.append(repr(exc))
    assert failures == []
    assert len(pids) >= 5  # 100 requests, 10 per worker life
    porch.wait_for(r"Worker \d+ exited \(recycled\); replacing it")
    assert porch.count("Killing worker") == 0
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0


def test_frozen_worker_is_aborted_then_killed_and_replaced(start_porch: StartPorch) -> None:
    """A worker that stops beating (SIGSTOP: not even its watchdog runs) is killed by the master."""
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "2", "--timeout", "1")
    url = porch.wait_ready()
    mark = porch.mark()
    try:
        httpx.get(f"{url}/freeze", timeout=0.5)
    except httpx.TimeoutException:
        pass
    frozen = porch.wait_for(r"procapp: freezing (\d+)", after=mark).group(1)
    match = porch.wait_for(rf"worker {frozen} silent for (\d+\.\d)s, killed", after=mark)
    assert float(match.group(1)) >= 3.0  # --timeout 1 + the 2 s margin (rounded)
    porch.wait_for(rf"Killing worker {frozen}: still there after SIGABRT", after=mark)
    porch.wait_for(rf"Silent worker {frozen} is gone \(signal SIGKILL\); replacing it", after=mark)
    porch.wait_for(r"Booting worker with pid: \d+", after=mark)
    with porch.client() as client:
        assert client.get("/").text == "ok"


def test_hung_request_worker_is_replaced(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "--timeout", "1")
    url = porch.wait_ready()
    mark = porch.mark()
    try:
        httpx.get(f"{url}/sleep?s=30", timeout=15)
    except httpx.HTTPError:
        pass  # the worker gives up on the request
    porch.wait_for(r"Worker \d+ left after a request timed out; replacing it", after=mark)
    porch.wait_for(r"Booting worker with pid: \d+", after=mark)
    with porch.client() as client:
        assert client.get("/").text == "ok"
    assert porch.count(f"Stopping: .*exit code {int(ExitCode.WORKER_TIMEOUT)}") == 0


def test_max_worker_memory_recycles_the_big_worker(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "--max-worker-memory", "100M")
    porch.wait_ready()
    with porch.client() as client:
        big = int(client.get("/pid").text)
        assert client.get("/big").text == "big"  # +64 MiB
        assert client.get("/big").text == "big"  # +128 MiB: above 100M
    mark = porch.mark()
    porch.wait_for(rf"Worker {big} uses \d+\.\d MiB \(RSS\), above --max-worker-memory 100\.0 MiB")
    porch.wait_for(rf"Worker {big} stopped \(exit code 0\)", after=mark)
    porch.wait_for(r"Booting worker with pid: \d+")
    with porch.client() as client:
        assert int(client.get("/pid").text) != big


def test_reload_on_source_change(start_porch: StartPorch, tmp_path: Path) -> None:
    shutil.copy(APPS / "procapp.py", tmp_path / "devapp.py")
    porch = start_porch("devapp:app", "-b", "127.0.0.1:0", "--reload", "--chdir", str(tmp_path))
    porch.wait_ready()
    porch.wait_for(rf"--reload: watching {re.escape(str(tmp_path))} for \.py changes")
    first = porch.worker_pids()
    mark = porch.mark()
    source = (tmp_path / "devapp.py").read_text().replace('body = b"ok"', 'body = b"changed"')
    (tmp_path / "devapp.py").write_text(source)
    porch.wait_for(r"Source changed \(.*devapp\.py\); reloading", after=mark)
    porch.wait_for("reload complete", after=mark)
    assert set(porch.worker_pids(after=mark)).isdisjoint(first)
    with porch.client() as client:
        assert client.get("/").text == "changed"


_FLAKY = """
import os
if os.path.exists(os.path.join(os.path.dirname(os.path.abspath(__file__)), "crash")):
    os._exit(1)  # dies while importing, without an AppLoadError
from procapp import app
"""


def test_worker_crashing_at_boot_stops_startup_with_code_3(
    start_porch: StartPorch, tmp_path: Path
) -> None:
    (tmp_path / "flaky.py").write_text(_FLAKY)
    (tmp_path / "crash").touch()
    porch = start_porch("flaky:app", "-b", "127.0.0.1:0", "-w", "2")
    assert porch.wait_exit() == ExitCode.WORKER_BOOT_ERROR
    assert len(porch.worker_pids()) == 5  # the canary, 5 times with back-off, then stop
    assert porch.count(r"Workers keep dying before serving; next spawn in 0\.25s") == 1
    assert porch.count(r"Stopping: worker \d+ failed to boot \(exit code 1\)") == 1


def test_respawn_backs_off_then_recovers(start_porch: StartPorch, tmp_path: Path) -> None:
    (tmp_path / "flaky.py").write_text(_FLAKY)
    porch = start_porch("flaky:app", "-b", "127.0.0.1:0", "-w", "1")
    porch.wait_ready()
    (tmp_path / "crash").touch()
    mark = porch.mark()
    victim = porch.worker_pids()[0]
    os.kill(victim, signal.SIGKILL)
    porch.wait_for(r"next spawn in 0\.50s", after=mark)
    (tmp_path / "crash").unlink()
    with porch.client() as client:
        assert client.get("/").text == "ok"  # waits in the backlog for the replacement
    assert porch.count("Stopping:") == 0


def test_reload_without_watchfiles_says_what_to_install(
    start_porch: StartPorch, tmp_path: Path
) -> None:
    blocker = tmp_path / "blocker" / "watchfiles"
    blocker.mkdir(parents=True)
    (blocker / "__init__.py").write_text("raise ImportError('watchfiles is not installed')\n")
    pythonpath = os.pathsep.join([str(tmp_path / "blocker"), str(APPS), PORCH_PATH])
    porch = start_porch(APP, "-b", "127.0.0.1:0", "--reload", env={"PYTHONPATH": pythonpath})
    assert porch.wait_exit() == ExitCode.USAGE
    assert porch.count(r"--reload needs the watchfiles package: pip install 'porch\[reload\]'") == 1
    assert porch.worker_pids() == []


def test_an_app_calling_os_exit_0_is_not_taken_for_a_recycle(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "1")
    url = porch.wait_ready()
    [victim] = porch.worker_pids()
    mark = porch.mark()
    try:
        httpx.get(f"{url}/exit0", timeout=10)
    except httpx.HTTPError:
        pass  # the worker is gone without an answer
    porch.wait_for(rf"Worker {victim} exited unexpectedly \(exit code 0\); replacing it",
                   after=mark)  # fmt: skip
    porch.wait_for(r"Booting worker with pid: \d+", after=mark)
    assert porch.count(r"exited \(recycled\)") == 0


def test_a_recycling_worker_is_replaced_while_it_drains(start_porch: StartPorch) -> None:
    """With -w 1, the replacement of a worker past --max-requests is forked as soon as
    the worker says it is leaving, not after it finished its last requests: new
    connections used to wait for the whole drain."""
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "1", "--threads", "2",
                        "--max-requests", "1", "--graceful-timeout", "1")  # fmt: skip
    url = porch.wait_ready()
    [old] = porch.worker_pids()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=30) as slow:
        slow.sendall(b"GET /sleep?s=30 HTTP/1.1\r\nHost: x\r\n\r\n")  # request 1, in flight
        porch.wait_for(r"procapp: sleeping 30 ")
        mark = porch.mark()
        with porch.client() as client:
            assert int(client.get("/pid").text) == old  # the first to complete: the limit
        porch.wait_for(rf"worker {old} reached --max-requests: recycling", after=mark)
        with porch.client() as client:
            new = int(client.get("/pid").text)  # while the old one still drains
        assert new != old
        assert select.select([slow], [], [], 0)[0] == []  # request 1 is still running
    porch.wait_for(rf"Worker {old} exited \(recycled\); replacing it", after=mark)
