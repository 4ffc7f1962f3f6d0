"""Logging setup (error and access logs) and log-file reopening.

Two loggers: ``porch.error`` (the error log, ``[time] [pid] [LEVEL] message``) and
``porch.access`` (one pre-formatted line per request, no prefix, formatted by
``porch.access_log``). Only the I/O layers (cli, supervisor, worker) log;
``protocol/`` and ``wsgi/`` never do.
"""

from __future__ import annotations

import json
import logging
import os
import stat
import sys
from typing import Any, TextIO

from porch.config.settings import Config
from porch.errors import ConfigError

__all__ = [
    "ACCESS_LOGGER",
    "ERROR_LOGGER",
    "JSON_FORMAT",
    "chown_log_files",
    "reopen_log_files",
    "setup_logging",
]

ERROR_LOGGER = "porch.error"
ACCESS_LOGGER = "porch.access"
ERROR_LOG_FORMAT = "[%(asctime)s] [%(process)d] [%(levelname)s] %(message)s"
ERROR_LOG_DATE_FORMAT = "%Y-%m-%d %H:%M:%S %z"
JSON_FORMAT = "json"

# Every handler setup_logging() installed, so that a second call (the master after
# HUP, a re-exec) replaces them instead of adding duplicates and closes only the
# files porch opened.
_installed: list[tuple[logging.Logger, logging.Handler]] = []


# --- setup ---------------------------------------------------------------------


def setup_logging(config: Config) -> None:
    """Configure ``porch.error`` and ``porch.access`` from ``config``; safe to call again.

    With ``--log-config`` the dictConfig file replaces porch's own setup. Raises
    :class:`ConfigError` (naming the flag) when a file cannot be opened or the
    dictConfig file is invalid, and then leaves the current setup as it was: a HUP
    naming an unusable file must not silence the master or the workers it forks later.
    """
    if config.log_config is not None:
        _apply_dict_config(config.log_config, _load_dict_config(config.log_config))
        return

    level = _log_level(config.log_level)
    # Open every new file before letting go of the old handlers.
    error_handler = _open_handler(config.error_logfile, sys.stderr, "--error-logfile")
    access_handler = None
    if config.access_logfile is not None:
        try:
            access_handler = _open_handler(config.access_logfile, sys.stdout, "--access-logfile")
        except ConfigError:
            _close_handler(error_handler)
            raise

    _remove_installed_handlers()
    error_handler.setFormatter(logging.Formatter(ERROR_LOG_FORMAT, ERROR_LOG_DATE_FORMAT))
    _install(logging.getLogger(ERROR_LOGGER), error_handler, level)
    access_logger = logging.getLogger(ACCESS_LOGGER)
    access_logger.propagate = False
    access_logger.disabled = access_handler is None
    if access_handler is not None:
        access_handler.setFormatter(logging.Formatter("%(message)s"))
        _install(access_logger, access_handler, logging.INFO)


def reopen_log_files() -> None:
    """Reopen every log file by name (SIGUSR1, after logrotate moved them away).

    Not only the files porch opened: every ``logging.FileHandler`` attached to the
    root logger or any named logger, so files a ``--log-config`` file (or the app)
    set up follow the rotation too, as gunicorn does.
    """
    for handler in _file_handlers():
        if handler.stream is None:
            continue  # not opened yet (delay=True) or closed: opens by name on use
        try:
            # Append even for mode "w": a reopen must never truncate a file.
            stream = open(  # noqa: SIM115 - the handler owns and closes it
                handler.baseFilename, "a", encoding=handler.encoding, errors=handler.errors
            )
        except OSError as exc:
            # Keep writing to the old (moved) file rather than losing records.
            logging.getLogger(ERROR_LOGGER).error(
                "cannot reopen log file %s: %s", handler.baseFilename, exc
            )
            continue
        old = handler.setStream(stream)
        if old is not None:
            old.close()


def chown_log_files(uid: int | None, gid: int | None) -> None:
    """Give the log files to the workers' ``--user``/``--group`` (master, as root).

    On USR1 every worker reopens the files by name; as another user it could not
    open one the master created (or found) owned by root, and would keep writing
    to the rotated file. Only regular files change owner, never ``/dev/null`` or a tty.
    """
    if (uid is None and gid is None) or os.geteuid() != 0:
        return
    for handler in _file_handlers():
        if handler.stream is None:
            continue
        try:
            fd = handler.stream.fileno()
            if stat.S_ISREG(os.fstat(fd).st_mode):
                os.fchown(fd, -1 if uid is None else uid, -1 if gid is None else gid)
        except OSError as exc:
            logging.getLogger(ERROR_LOGGER).warning(
                "cannot give log file %s to the workers' user: %s; they cannot reopen it",
                handler.baseFilename, exc,
            )  # fmt: skip


def _file_handlers() -> list[logging.FileHandler]:
    """Each file handler attached to the root or a named logger, once.

    A ``WatchedFileHandler`` (it has ``reopenIfNeeded``) is left out: it notices a
    moved file itself, and a stream swapped behind its back would only make it
    reopen once more. Checked by attribute so that ``logging.handlers`` is not
    imported by a run that does not use it.
    """
    loggers: list[logging.Logger] = [logging.getLogger()]
    loggers += [
        logger
        # A copy (one C call): app threads may create loggers meanwhile.
        for logger in logging.Logger.manager.loggerDict.copy().values()
        if isinstance(logger, logging.Logger)  # not a PlaceHolder
    ]
    found: dict[int, logging.FileHandler] = {}
    for logger in loggers:
        for handler in list(logger.handlers):
            if isinstance(handler, logging.FileHandler) and not hasattr(handler, "reopenIfNeeded"):
                found.setdefault(id(handler), handler)
    return list(found.values())


def _install(logger: logging.Logger, handler: logging.Handler, level: int) -> None:
    handler.setLevel(level)
    logger.addHandler(handler)
    logger.setLevel(level)
    logger.propagate = False
    logger.disabled = False
    _installed.append((logger, handler))


def _remove_installed_handlers() -> None:
    while _installed:
        logger, handler = _installed.pop()
        logger.removeHandler(handler)
        _close_handler(handler)


def _close_handler(handler: logging.Handler) -> None:
    # Never close the process's own stdout/stderr, only files we opened.
    if isinstance(handler, logging.FileHandler):
        handler.close()


def _open_handler(target: str, dash_stream: TextIO, flag: str) -> logging.Handler:
    if target == "-":
        return logging.StreamHandler(dash_stream)
    try:
        return logging.FileHandler(target, mode="a", encoding="utf-8")
    except OSError as exc:
        raise ConfigError(f"{flag}: cannot open {target!r}: {exc.strerror or exc}") from exc


def _log_level(name: str) -> int:
    level = logging.getLevelNamesMapping().get(name.upper())
    if level is None:
        raise ConfigError(
            f"--log-level: unknown level {name!r} (use debug, info, warning, error or critical)"
        )
    return level


def _apply_dict_config(path: str, data: dict[str, Any]) -> None:
    # Put porch's loggers back as they were if the file cannot be applied (a handler
    # whose file cannot be opened, an unknown class): dictConfig fails part way.
    loggers = [logging.getLogger(name) for name in (ERROR_LOGGER, ACCESS_LOGGER)]
    saved = [(lg.level, lg.propagate, lg.disabled, list(lg.handlers)) for lg in loggers]
    # The file replaces porch's setup: forget what an earlier setup_logging() set
    # (level, propagate=False, a disabled access logger) so that only the file counts.
    installed = list(_installed)
    for logger, handler in installed:
        logger.removeHandler(handler)
    for logger in loggers:
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
        logger.disabled = False
    # Unlike the stdlib default, keep loggers created before this call (porch's
    # own modules and the app's) working unless the file says otherwise.
    data.setdefault("disable_existing_loggers", False)
    # Imported here: only --log-config pays for logging.config (and logging.handlers).
    from logging.config import dictConfig

    try:
        dictConfig(data)
    except (ValueError, TypeError, AttributeError, ImportError, KeyError) as exc:
        for logger, (level, propagate, disabled, handlers) in zip(loggers, saved, strict=True):
            logger.setLevel(level)
            logger.propagate = propagate
            logger.disabled = disabled
            logger.handlers[:] = handlers  # dictConfig closed the files; they reopen on use
        cause = f": {exc.__cause__}" if exc.__cause__ is not None else ""
        raise ConfigError(f"--log-config {path!r}: {exc}{cause}") from exc
    _remove_installed_handlers()  # already detached above: this closes their files


def _load_dict_config(path: str) -> dict[str, Any]:
    """Read a dictConfig from JSON or TOML (chosen by suffix, else whichever parses)."""
    try:
        with open(path, encoding="utf-8") as file:
            text = file.read()
    except (OSError, UnicodeDecodeError) as exc:
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
        raise ConfigError(f"--log-config: cannot read {path!r}: {reason}") from exc

    suffix = os.path.splitext(path)[1].lower()
    data: object
    if suffix == ".toml":
        data = _parse_toml(path, text)
    elif suffix == ".json":
        data = _parse_json(path, text)
    else:
        try:
            data = json.loads(text)
        except ValueError:
            import tomllib

            try:
                data = tomllib.loads(text)
            except tomllib.TOMLDecodeError as exc:
                raise ConfigError(
                    f"--log-config {path!r}: neither valid JSON nor valid TOML ({exc})"
                ) from exc

    if not isinstance(data, dict):
        raise ConfigError(f"--log-config {path!r}: the top level must be a JSON object")
    config: dict[str, Any] = data
    # A porch.toml-style file may keep the dictConfig under a [logging] table.
    nested = config.get("logging")
    if "version" not in config and isinstance(nested, dict):
        config = nested
    if "version" not in config:
        raise ConfigError(f"--log-config {path!r}: missing 'version' key (dictConfig needs 1)")
    return config


def _parse_json(path: str, text: str) -> object:
    try:
        return json.loads(text)
    except ValueError as exc:
        raise ConfigError(f"--log-config {path!r}: invalid JSON: {exc}") from exc


def _parse_toml(path: str, text: str) -> object:
    import tomllib  # here: only a TOML --log-config file pays for the parser

    try:
        return tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"--log-config {path!r}: invalid TOML: {exc}") from exc
