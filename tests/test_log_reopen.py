"""Tests of porch.log's reopening of log files (USR1, after logrotate moved them)."""

from __future__ import annotations

import json
import logging
import logging.handlers
import os
import pwd
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from porch import log
from porch.access_log import AccessLog
from porch.config.settings import Config
from porch.log import ACCESS_LOGGER, ERROR_LOGGER, reopen_log_files, setup_logging
from tests.logging_reset import reset_loggers

APP_LOGGER = "porch_test_reopen.app"


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo whatever a test configured on porch's, the app's and the root logger."""
    root = logging.getLogger()
    root_handlers, root_level = list(root.handlers), root.level
    yield
    reset_loggers(ERROR_LOGGER, ACCESS_LOGGER, APP_LOGGER)
    for handler in list(root.handlers):
        if handler not in root_handlers:
            root.removeHandler(handler)
            handler.close()
    root.setLevel(root_level)


def environ(path: str) -> dict[str, Any]:
    return {"REQUEST_METHOD": "GET", "PATH_INFO": path, "QUERY_STRING": "",
            "SERVER_PROTOCOL": "HTTP/1.1", "REMOTE_ADDR": "192.0.2.7"}  # fmt: skip


# --- porch's own files (--error-logfile, --access-logfile) --------------------------


def test_reopen_after_rename(tmp_path: Path) -> None:
    error_path = tmp_path / "error.log"
    access_path = tmp_path / "access.log"
    config = Config(
        error_logfile=str(error_path), access_logfile=str(access_path), access_logformat="%(U)s"
    )
    setup_logging(config)
    access_log = AccessLog(config)
    error_logger = logging.getLogger(ERROR_LOGGER)

    error_logger.warning("before rotation")
    access_log.log(environ("/before"), "200 OK", [], 0, 0.0)
    error_path.rename(tmp_path / "error.log.1")
    access_path.rename(tmp_path / "access.log.1")
    # Until reopened, records still go to the moved files.
    access_log.log(environ("/moved"), "200 OK", [], 0, 0.0)

    reopen_log_files()
    error_logger.warning("after rotation")
    access_log.log(environ("/after"), "200 OK", [], 0, 0.0)

    assert (tmp_path / "access.log.1").read_text() == "/before\n/moved\n"
    assert access_path.read_text() == "/after\n"
    assert "before rotation" in (tmp_path / "error.log.1").read_text()
    assert "after rotation" not in (tmp_path / "error.log.1").read_text()
    assert "after rotation" in error_path.read_text()


def test_reopen_leaves_stderr_alone(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(Config())
    reopen_log_files()
    logging.getLogger(ERROR_LOGGER).warning("still on stderr")
    assert "still on stderr" in capsys.readouterr().err


def test_reopen_failure_keeps_the_old_file(tmp_path: Path) -> None:
    logs = tmp_path / "logs"
    logs.mkdir()
    error_path = logs / "error.log"
    setup_logging(Config(error_logfile=str(error_path)))
    error_path.rename(tmp_path / "error.log.1")
    logs.rmdir()  # the directory is gone: the file cannot be recreated
    reopen_log_files()
    logging.getLogger(ERROR_LOGGER).warning("still written")
    moved = (tmp_path / "error.log.1").read_text()
    assert "cannot reopen log file" in moved
    assert "still written" in moved


# --- files a --log-config file (or the app) set up ----------------------------------


def file_handler(target: Path, **extra: Any) -> dict[str, Any]:
    return {"class": "logging.FileHandler", "filename": str(target), "formatter": "plain",
            **extra}  # fmt: skip


def setup_dict_config(tmp_path: Path, handlers: dict[str, Any], **sections: Any) -> Config:
    data = {"version": 1, "formatters": {"plain": {"format": "%(name)s|%(message)s"}},
            "handlers": handlers, **sections}  # fmt: skip
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(data))
    config = Config(log_config=str(path), access_logformat="%(U)s")
    setup_logging(config)
    return config


def test_reopen_reaches_log_config_handlers_on_porch_app_and_root_loggers(
    tmp_path: Path,
) -> None:
    """Before, USR1 reopened only --error-logfile/--access-logfile: the files of a
    --log-config kept being written after logrotate had moved them."""
    names = ("access", "app", "root")
    config = setup_dict_config(
        tmp_path,
        {name: file_handler(tmp_path / f"{name}.log") for name in names},
        loggers={ACCESS_LOGGER: {"handlers": ["access"], "level": "INFO", "propagate": False},
                 APP_LOGGER: {"handlers": ["app"], "level": "INFO", "propagate": False}},
        root={"handlers": ["root"], "level": "INFO"},
    )  # fmt: skip
    access_log = AccessLog(config)
    app_logger, error_logger = logging.getLogger(APP_LOGGER), logging.getLogger(ERROR_LOGGER)

    def write(tag: str) -> None:
        access_log.log(environ(f"/{tag}"), "200 OK", [], 0, 0.0)
        app_logger.info(tag)
        error_logger.info(tag)  # no handler of its own: propagates to root's file

    write("before")
    for name in names:
        (tmp_path / f"{name}.log").rename(tmp_path / f"{name}.log.1")
    reopen_log_files()
    write("after")

    assert (tmp_path / "access.log.1").read_text() == "porch.access|/before\n"
    assert (tmp_path / "access.log").read_text() == "porch.access|/after\n"
    assert (tmp_path / "app.log.1").read_text() == f"{APP_LOGGER}|before\n"
    assert (tmp_path / "app.log").read_text() == f"{APP_LOGGER}|after\n"
    assert (tmp_path / "root.log.1").read_text() == "porch.error|before\n"
    assert (tmp_path / "root.log").read_text() == "porch.error|after\n"


def test_reopen_appends_even_to_a_handler_opened_with_mode_w(tmp_path: Path) -> None:
    """A reopen without a move (USR1 sent twice, copytruncate) must not empty the file."""
    target = tmp_path / "app.log"
    setup_dict_config(tmp_path, {"app": file_handler(target, mode="w")},
                      loggers={APP_LOGGER: {"handlers": ["app"], "level": "INFO"}})  # fmt: skip
    logger = logging.getLogger(APP_LOGGER)
    logger.info("one")
    reopen_log_files()
    logger.info("two")
    assert target.read_text() == f"{APP_LOGGER}|one\n{APP_LOGGER}|two\n"


def test_reopen_leaves_watched_and_unopened_handlers_alone(tmp_path: Path) -> None:
    """A WatchedFileHandler follows a move by itself; a delay=True handler opens on use."""
    watched_path, delayed_path = tmp_path / "watched.log", tmp_path / "delayed.log"
    setup_dict_config(
        tmp_path,
        {"watched": {**file_handler(watched_path), "class": "logging.handlers.WatchedFileHandler"},
         "delayed": file_handler(delayed_path, delay=True)},
        loggers={APP_LOGGER: {"handlers": ["watched", "delayed"], "level": "INFO"}},
    )  # fmt: skip
    watched, delayed = logging.getLogger(APP_LOGGER).handlers
    assert isinstance(watched, logging.handlers.WatchedFileHandler)
    assert isinstance(delayed, logging.FileHandler)
    stream = watched.stream
    reopen_log_files()
    assert watched.stream is stream
    assert delayed.stream is None
    assert not delayed_path.exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="giving files away needs root")
def test_chown_reaches_log_config_files(tmp_path: Path) -> None:
    """The workers' --user must be able to reopen a --log-config file the master created."""
    target = tmp_path / "app.log"
    setup_dict_config(tmp_path, {"app": file_handler(target)},
                      root={"handlers": ["app"], "level": "INFO"})  # fmt: skip
    nobody = pwd.getpwnam("nobody").pw_uid
    log.chown_log_files(nobody, None)
    assert target.stat().st_uid == nobody
