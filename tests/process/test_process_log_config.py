"""The real porch command with --log-config: USR1 (logrotate) reopens the files it names."""

from __future__ import annotations

import json
import signal
from collections.abc import Callable
from pathlib import Path

from conftest import Porch

StartPorch = Callable[..., Porch]
APP = "procapp:app"


def write_log_config(path: Path, access: Path, everything: Path) -> None:
    """porch.error on stderr (the lines tests wait on) and, through root, in ``everything``;
    porch.access in ``access`` and, through root, in ``everything`` too."""
    path.write_text(json.dumps({
        "version": 1,
        "formatters": {"plain": {"format": "[%(process)d] [%(levelname)s] %(message)s"}},
        "handlers": {
            "stderr": {"class": "logging.StreamHandler", "stream": "ext://sys.stderr",
                       "formatter": "plain"},
            "access": {"class": "logging.FileHandler", "filename": str(access),
                       "formatter": "plain"},
            "everything": {"class": "logging.FileHandler", "filename": str(everything),
                           "formatter": "plain"},
        },
        "loggers": {
            "porch.error": {"handlers": ["stderr"], "level": "INFO"},
            "porch.access": {"handlers": ["access"], "level": "INFO"},
        },
        "root": {"handlers": ["everything"], "level": "INFO"},
    }))  # fmt: skip


def test_usr1_reopens_the_files_of_a_log_config(start_porch: StartPorch, tmp_path: Path) -> None:
    """Before, only --error-logfile/--access-logfile were reopened: the master and the
    workers kept writing a --log-config's files after logrotate had moved them."""
    access, everything = tmp_path / "access.log", tmp_path / "all.log"
    config = tmp_path / "logging.json"
    write_log_config(config, access, everything)
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "2", "--log-config", str(config))
    porch.wait_ready()
    with porch.client() as client:
        client.get("/before")
    access.rename(tmp_path / "access.log.1")
    everything.rename(tmp_path / "all.log.1")
    mark = porch.mark()
    porch.signal(signal.SIGUSR1)
    porch.wait_for(r"Log files reopened; USR1 sent to 2 workers", after=mark)
    for _ in range(4):  # a connection each: both workers may answer
        with porch.client() as client:
            client.get("/after")
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0
    assert porch.count("cannot reopen log file") == 0, porch.log()

    moved_access = (tmp_path / "access.log.1").read_text()
    moved_everything = (tmp_path / "all.log.1").read_text()
    assert "GET /before " in moved_access
    assert "GET /before " in moved_everything
    assert "/after" not in moved_access
    assert "/after" not in moved_everything
    assert "Log files reopened" not in moved_everything  # the master's own line
    assert "GET /after " in access.read_text()
    new_everything = everything.read_text()
    assert "Log files reopened; USR1 sent to 2 workers" in new_everything  # master
    assert "GET /after " in new_everything  # a worker, through the root logger
    assert "Shutting down: Master" in new_everything
