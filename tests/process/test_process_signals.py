"""The real porch command: HUP reload under load, failed reload, TTIN/TTOU and their limit,
USR1, kill -9, TERM while forking."""

from __future__ import annotations

import grp
import os
import pwd
import shutil
import signal
import sys
import tempfile
import threading
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conftest import APPS, Porch

StartPorch = Callable[..., Porch]
APP = "procapp:app"


class LoadClient:
    """A thread doing keep-alive requests to /pid in a loop; records failures and pids seen."""

    def __init__(self, porch: Porch) -> None:
        self.client = porch.client()
        self.pids: list[int] = []
        self.failures: list[str] = []
        self._cond = threading.Condition()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def __enter__(self) -> LoadClient:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._stop.set()
        self._thread.join(30)
        self.client.close()

    def _run(self) -> None:
        for _ in range(1_000_000):  # bounded; stopped by __exit__ long before
            if self._stop.is_set():
                return
            try:
                response = self.client.get("/pid")
                ok = response.status_code == 200
                outcome = int(response.text) if ok else f"status {response.status_code}"
            except httpx.HTTPError as exc:
                outcome = repr(exc)
            with self._cond:
                if isinstance(outcome, int):
                    self.pids.append(outcome)
                else:
                    self.failures.append(outcome)
                self._cond.notify_all()

    def wait_served_by(self, pids: set[int], timeout: float = 20.0) -> None:
        """Wait until one of ``pids`` answered this client."""
        with self._cond:
            found = self._cond.wait_for(lambda: bool(pids & set(self.pids[-50:])), timeout)
        assert found, f"no answer from {pids} (failures: {self.failures[:3]})"


def test_hup_under_load_has_no_failed_request(start_porch: StartPorch) -> None:
    """A keep-alive client loops through two HUP reloads: no failure, all pids change."""
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "2")
    porch.wait_ready()
    generation = set(porch.worker_pids())
    seen = set(generation)
    with LoadClient(porch) as load:
        load.wait_served_by(generation)
        for _ in range(2):
            mark = porch.mark()
            porch.signal(signal.SIGHUP)
            porch.wait_for("reload complete: 2 new workers serving, stopping 2 old", after=mark)
            for old in generation:
                porch.wait_for(rf"Worker {old} stopped \(exit code 0\)", after=mark)
            generation = set(porch.worker_pids(after=mark))
            assert len(generation) == 2 and not generation & seen
            seen |= generation
            load.wait_served_by(generation)
    assert load.failures == [], load.failures[:5]
    assert len(load.pids) > 20
    with porch.client() as client:
        assert {int(client.get("/pid").text) for _ in range(20)} <= generation


def test_hup_with_broken_app_keeps_old_workers(start_porch: StartPorch, tmp_path: Path) -> None:
    shutil.copy(APPS / "procapp.py", tmp_path / "hupapp.py")
    porch = start_porch("hupapp:app", "-b", "127.0.0.1:0", "-w", "2")
    porch.wait_ready()
    old = set(porch.worker_pids())
    (tmp_path / "hupapp.py").write_text("raise RuntimeError('broken by the deploy')\n")
    mark = porch.mark()
    porch.signal(signal.SIGHUP)
    porch.wait_for(r"reload failed: the application could not be loaded", after=mark)
    assert porch.count("Failed to load the application: .*broken by the deploy") == 1
    assert porch.count(r"Traceback \(most recent call last\)") == 1
    assert len(porch.worker_pids()) == 3  # one canary, no fork loop
    with porch.client() as client:
        assert {int(client.get("/pid").text) for _ in range(20)} <= old
    # Fix the app: the next HUP succeeds.
    shutil.copy(APPS / "procapp.py", tmp_path / "hupapp.py")
    mark = porch.mark()
    porch.signal(signal.SIGHUP)
    porch.wait_for("reload complete", after=mark)
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0


def test_ttin_and_ttou(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "1")
    porch.wait_ready()
    mark = porch.mark()
    porch.signal(signal.SIGTTIN)
    porch.wait_for("Number of workers: 2", after=mark)
    porch.wait_for(r"Booting worker with pid: \d+", after=mark)
    assert len(porch.worker_pids()) == 2
    mark = porch.mark()
    porch.signal(signal.SIGTTOU)
    porch.wait_for("Number of workers: 1", after=mark)
    stopped = porch.wait_for(r"Stopping worker (\d+) \(1 wanted\)", after=mark).group(1)
    porch.wait_for(rf"Worker {stopped} stopped \(exit code 0\)", after=mark)
    # Never below one: TTOU at 1 is ignored, so the TTIN after it gives 2 (not 1).
    mark = porch.mark()
    porch.signal(signal.SIGTTOU)
    porch.wait_for("Handling signal: ttou", after=mark)
    porch.signal(signal.SIGTTIN)
    porch.wait_for("Number of workers: 2", after=mark)
    assert porch.count("Number of workers: 0") == 0
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0


def test_killed_worker_is_replaced(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "2")
    porch.wait_ready()
    with porch.client() as client:
        victim = int(client.get("/pid").text)
    mark = porch.mark()
    os.kill(victim, signal.SIGKILL)
    porch.wait_for(rf"Worker {victim} was killed by SIGKILL", after=mark)
    new = int(porch.wait_for(r"Booting worker with pid: (\d+)", after=mark).group(1))
    assert new != victim
    with porch.client() as client:
        assert victim not in {int(client.get("/pid").text) for _ in range(20)}
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0


def test_crashing_worker_exit_code_is_logged(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0")
    porch.wait_ready()
    with porch.client() as client:
        victim = int(client.get("/pid").text)
    mark = porch.mark()
    os.kill(victim, signal.SIGSEGV)
    porch.wait_for(rf"Worker {victim} died \(signal SIGSEGV\); replacing it", after=mark)
    porch.wait_for(r"Booting worker with pid: \d+", after=mark)


def test_usr1_reopens_log_files(start_porch: StartPorch, tmp_path: Path) -> None:
    access = tmp_path / "access.log"
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "2", "--access-logfile", str(access))
    porch.wait_ready()
    with porch.client() as client:
        client.get("/before")
    rotated = tmp_path / "access.log.1"
    access.rename(rotated)
    mark = porch.mark()
    porch.signal(signal.SIGUSR1)
    porch.wait_for(r"Log files reopened; USR1 sent to 2 workers", after=mark)
    with porch.client() as client:
        client.get("/after")
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0
    assert "/before" in rotated.read_text()
    assert "/after" in access.read_text()
    assert "/after" not in rotated.read_text()


def test_hup_naming_unopenable_log_files_keeps_the_old_logging(
    start_porch: StartPorch, tmp_path: Path
) -> None:
    """A reload whose log file cannot be opened fails as a whole, in the error log.

    The master's lines keep their format, and a worker forked afterwards writes
    its access records to the old file (before, both went silent).
    """
    access = tmp_path / "access.log"
    config = tmp_path / "porch.toml"
    config.write_text(f'access_logfile = "{access}"\n')
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "1", "-c", str(config))
    porch.wait_ready()
    [old] = porch.worker_pids()
    missing = "/nonexistent/porch-test/x.log"
    for key in ("error_logfile", "access_logfile"):
        settings = {"access_logfile": str(access), key: missing}
        config.write_text("".join(f'{name} = "{value}"\n' for name, value in settings.items()))
        mark = porch.mark()
        porch.signal(signal.SIGHUP)
        flag = "--" + key.replace("_", "-")
        porch.wait_for(rf"\] \[ERROR\] reload failed: {flag}: cannot open '{missing}': "
                       "No such file or directory", after=mark)  # fmt: skip
    mark = porch.mark()
    os.kill(old, signal.SIGKILL)
    porch.wait_for(rf"\] \[ERROR\] Worker {old} was killed by SIGKILL", after=mark)
    new = int(porch.wait_for(r"\] \[INFO\] Booting worker with pid: (\d+)", after=mark).group(1))
    with porch.client() as client:
        assert int(client.get("/pid", params={"after": "reload"}).text) == new
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0
    assert porch.count(r"^reload failed") == 0  # no bare line from logging's last resort
    assert "GET /pid?after=reload HTTP/1.1" in access.read_text()


@pytest.mark.skipif(os.getuid() != 0, reason="switching users needs root")
def test_usr1_reopens_in_workers_running_as_another_user(start_porch: StartPorch) -> None:
    """Started as root with --user: the workers reopen the file they had, and the one the
    master creates after a move (it gives both to the workers' user; before, the workers
    could not open them and kept writing to the moved file)."""
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    with tempfile.TemporaryDirectory(prefix="porch-usr1-") as logs:
        os.chmod(logs, 0o755)  # root's, as /var/log/porch: workers may enter, not write
        access, rotated = Path(logs) / "access.log", Path(logs) / "access.log.1"
        porch = start_porch(APP, "-b", "127.0.0.1:0", "--user", "nobody", "--group", "nogroup",
                            "--access-logfile", str(access), cwd=APPS)  # fmt: skip
        porch.wait_ready()
        for moved in (False, True):
            with porch.client() as client:
                client.get(f"/before/{moved}")
            if moved:
                access.rename(rotated)
            mark = porch.mark()
            porch.signal(signal.SIGUSR1)
            porch.wait_for(r"Log files reopened; USR1 sent to 1 workers", after=mark)
            assert (access.stat().st_uid, access.stat().st_gid) == (nobody, nogroup)
            with porch.client() as client:
                client.get(f"/after/{moved}")
        porch.signal(signal.SIGTERM)
        assert porch.wait_exit() == 0
        assert porch.count("cannot reopen log file") == 0, porch.log()
        assert "/before/True" in rotated.read_text()
        assert "/after/True" in access.read_text()
        assert "/after/True" not in rotated.read_text()


def test_hup_rereads_the_config_file(start_porch: StartPorch, tmp_path: Path) -> None:
    config = tmp_path / "porch.toml"
    config.write_text("workers = 1\n")
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-c", str(config))
    porch.wait_ready()
    config.write_text("workers = 3\n")
    mark = porch.mark()
    porch.signal(signal.SIGHUP)
    porch.wait_for("reload complete: 3 new workers serving, stopping 1 old", after=mark)
    config.write_text("workers = 'many'\n")
    mark = porch.mark()
    porch.signal(signal.SIGHUP)
    porch.wait_for(r"reload failed: .*workers", after=mark)
    with porch.client() as client:
        assert client.get("/").text == "ok"
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0


def test_hup_with_preload_reuses_the_master_app(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "2", "--preload")
    porch.wait_ready()
    first = set(porch.worker_pids())
    mark = porch.mark()
    porch.signal(signal.SIGHUP)
    porch.wait_for("reload complete: 2 new workers serving, stopping 2 old", after=mark)
    assert set(porch.worker_pids(after=mark)).isdisjoint(first)
    with porch.client() as client:
        assert client.get("/").text == "ok"
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0


def _shim(setup: str) -> list[str]:
    """A ``porch`` command that runs ``setup`` (Python source) in the master first."""
    code = f"import sys\n{setup}\nfrom porch.cli import main\nsys.exit(main(sys.argv[1:]))\n"
    return [sys.executable, "-c", code]


def test_ttin_stops_at_the_worker_limit(start_porch: StartPorch) -> None:
    """TTIN cannot take the count past the most --workers accepts (lowered to 2 here:
    a test must not fork 1024 workers)."""
    command = _shim("import porch.supervisor.arbiter as arbiter\narbiter.MAX_WORKERS = 2")
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "1", command=command)
    porch.wait_ready()
    mark = porch.mark()
    porch.signal(signal.SIGTTIN)
    porch.wait_for("Number of workers: 2", after=mark)
    porch.wait_for("Booting worker with pid", after=mark)  # before TERM can preempt it
    mark = porch.mark()
    porch.signal(signal.SIGTTIN)
    porch.wait_for(r"TTIN ignored: already 2 workers, the most porch runs", after=mark)
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0
    assert porch.count("Number of workers: 3") == 0
    assert len(porch.worker_pids()) == 2


def test_term_while_forking_workers_is_handled_between_forks(start_porch: StartPorch) -> None:
    """The master checks its signals between two forks: it used to fork every worker
    first, so TERM waited (and a huge -w never let it run at all)."""
    # The third fork (the canary, then two of the other seven) sends the master TERM.
    setup = (
        "import os, signal\n"
        "forks = []\n"
        "def forked():\n"
        "    forks.append(1)\n"
        "    if len(forks) == 3:\n"
        "        os.kill(os.getpid(), signal.SIGTERM)\n"
        "os.register_at_fork(after_in_parent=forked)"
    )
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "8", command=_shim(setup))
    assert porch.wait_exit() == 0
    assert porch.count("Handling signal: term") == 1
    assert len(porch.worker_pids()) == 3, porch.log()
    assert porch.count("porch ready") == 0
