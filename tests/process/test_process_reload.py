"""The real porch command: what a HUP reload keeps, and what a failed one puts back."""

from __future__ import annotations

import os
import shutil
import signal
from collections.abc import Callable
from pathlib import Path

from conftest import APPS, Porch

StartPorch = Callable[..., Porch]

CWD_APP = """\
import os


def app(environ, start_response):
    body = os.getcwd().encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]
"""


def test_relative_paths_keep_their_meaning_with_preload_and_chdir(
    start_porch: StartPorch, tmp_path: Path
) -> None:
    """--preload imports the app in --chdir; the master then goes back to where it was
    started, so that HUP re-reads the same -c file and the --pid file stays put.
    Before, the master stayed in --chdir: the pid file went there, and HUP failed."""
    app_dir = tmp_path / "app"
    app_dir.mkdir()
    (app_dir / "cwdapp.py").write_text(CWD_APP)
    config = tmp_path / "porch.toml"
    config.write_text("workers = 1\n")
    porch = start_porch("cwdapp:app", "-b", "127.0.0.1:0", "-c", "porch.toml", "--pid", "porch.pid",
                        "--access-logfile", "access.log", "--chdir", "app", "--preload",
                        cwd=tmp_path)  # fmt: skip
    porch.wait_ready()
    pidfile = tmp_path / "porch.pid"
    assert pidfile.read_text() == f"{porch.pid}\n"
    with porch.client() as client:
        assert client.get("/").text == str(app_dir)  # the workers run in --chdir
    config.write_text("workers = 2\n")
    mark = porch.mark()
    porch.signal(signal.SIGHUP)
    porch.wait_for("reload complete: 2 new workers serving, stopping 1 old", after=mark)
    assert pidfile.read_text() == f"{porch.pid}\n"
    with porch.client() as client:
        assert client.get("/after-hup").text == str(app_dir)
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0
    assert not pidfile.exists()
    assert "GET /after-hup " in (tmp_path / "access.log").read_text()
    assert not (app_dir / "access.log").exists()


def _broken_on_reload(tmp_path: Path) -> Path:
    """An app module that serves now and fails to import once :func:`_break` ran."""
    shutil.copy(APPS / "procapp.py", tmp_path / "hupapp.py")
    return tmp_path / "hupapp.py"


def _break(module: Path) -> None:
    module.write_text("raise RuntimeError('broken by the deploy')\n")


def test_a_failed_reload_keeps_the_worker_count_ttin_set(
    start_porch: StartPorch, tmp_path: Path
) -> None:
    """The rollback went back to the count of the last generation that booted (1),
    stopping the worker TTIN had added."""
    module = _broken_on_reload(tmp_path)
    porch = start_porch("hupapp:app", "-b", "127.0.0.1:0", "-w", "1")
    porch.wait_ready()
    mark = porch.mark()
    porch.signal(signal.SIGTTIN)
    porch.wait_for("Number of workers: 2", after=mark)
    porch.wait_for(r"Booting worker with pid: \d+", after=mark)
    _break(module)
    mark = porch.mark()
    porch.signal(signal.SIGHUP)
    porch.wait_for(r"reload failed: the application could not be loaded", after=mark)
    porch.signal(signal.SIGTTIN)  # handled after the rollback: counts from what it left
    porch.wait_for("Number of workers: 3", after=mark)
    assert porch.count(r"Stopping worker \d+") == 0, porch.log()


def test_a_failed_reload_puts_the_previous_logging_back(
    start_porch: StartPorch, tmp_path: Path
) -> None:
    """Workers forked after a failed reload log as before it (the new access log file
    and log level stayed in force before)."""
    module = _broken_on_reload(tmp_path)
    before, after = tmp_path / "before.log", tmp_path / "after.log"
    config = tmp_path / "porch.toml"
    config.write_text(f'access_logfile = "{before}"\n')
    porch = start_porch("hupapp:app", "-b", "127.0.0.1:0", "-w", "1", "-c", str(config))
    porch.wait_ready()
    [old] = porch.worker_pids()
    config.write_text(f'access_logfile = "{after}"\nlog_level = "warning"\n')
    _break(module)
    mark = porch.mark()
    porch.signal(signal.SIGHUP)
    porch.wait_for(r"reload failed: the application could not be loaded", after=mark)
    shutil.copy(APPS / "procapp.py", module)  # the next worker can import it again
    mark = porch.mark()
    os.kill(old, signal.SIGKILL)
    new = int(porch.wait_for(r"\[INFO\] Booting worker with pid: (\d+)", after=mark).group(1))
    with porch.client() as client:
        assert int(client.get("/pid", params={"after": "rollback"}).text) == new
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0
    assert "GET /pid?after=rollback " in before.read_text()
    assert not after.exists() or "rollback" not in after.read_text()
