"""The ``porch`` command: load and check the configuration, then hand it to the arbiter."""

from __future__ import annotations

import errno
import os
import stat
import sys
from collections.abc import Sequence

from porch.config import Config, dump_config_toml, load_config
from porch.config.loaders import NO_APP_MESSAGE
from porch.errors import AppLoadError, ConfigError, ExitCode

__all__ = ["main"]


def main(argv: Sequence[str] | None = None) -> int:
    """Run porch with ``argv`` (default ``sys.argv[1:]``); return the process exit code."""
    args = sys.argv[1:] if argv is None else list(argv)
    try:
        result = load_config(args, os.environ)
        check_settings(result.config)
    except ConfigError as exc:
        return _error(str(exc), ExitCode.USAGE)
    except SystemExit as exc:  # --help and --version have printed their text
        return exc.code if isinstance(exc.code, int) else ExitCode.USAGE
    if result.print_config:
        sys.stdout.write(dump_config_toml(result.config))
    if result.check_config:
        return _check_app(result.config)
    if result.print_config:
        return ExitCode.OK
    return _serve(result.config, args)


def check_settings(config: Config) -> None:
    """What only other layers can judge, before anything binds or forks (ConfigError)."""
    from porch.access_log import check_access_format

    check_access_format(config.access_logformat)


def _error(message: str, code: ExitCode) -> int:
    print(f"porch: error: {message}", file=sys.stderr)
    return code


def _prepare_to_run(config: Config) -> None:
    """What a start needs from this system, checked as --check-config does (ConfigError).

    Opens the log files (a bad path is a usage error, not a worker's app error) and
    checks that ``--chdir`` exists. At start only: on HUP the arbiter opens the new log
    files, and a bad ``--chdir`` fails the new workers. Relative paths mean the same
    then: the master never leaves the directory it was started in (``Arbiter._preload``).
    """
    from porch.log import setup_logging

    if config.chdir:  # the loader's own test: an empty value means "stay"
        try:
            if not stat.S_ISDIR(os.stat(config.chdir).st_mode):
                raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR))
        except OSError as exc:
            raise ConfigError(
                f"--chdir: cannot change directory to {config.chdir!r}: {exc.strerror}"
            ) from None
    setup_logging(config)


def _check_app(config: Config) -> int:
    """--check-config: open the logs and import the app exactly as a start would, then exit."""
    from porch.wsgi.loader import load_app  # imported here: plain config work needs no app code

    if not config.app:
        return _error(NO_APP_MESSAGE, ExitCode.USAGE)
    try:
        _prepare_to_run(config)
    except ConfigError as exc:
        return _error(str(exc), ExitCode.USAGE)
    try:
        load_app(config.app, chdir=config.chdir, pythonpath=config.pythonpath)
    except AppLoadError as exc:
        if exc.user_traceback:
            sys.stderr.write(exc.user_traceback.rstrip("\n") + "\n")
        return _error(str(exc), ExitCode.APP_LOAD_ERROR)
    print(f"porch: configuration OK, application {config.app!r} loaded", file=sys.stderr)
    return ExitCode.OK


def _serve(config: Config, args: Sequence[str]) -> int:
    try:
        _prepare_to_run(config)
    except ConfigError as exc:
        return _error(str(exc), ExitCode.USAGE)
    from porch.supervisor.arbiter import Arbiter
    from porch.worker.malloc import tune_malloc

    # Before forking, as root if started as root: workers inherit the settings
    # (after --user, the interpreter's files may not be readable to import ctypes).
    tune_malloc()

    def reload_config() -> Config:
        """HUP: the same command line over the file and environment as they are now."""
        config = load_config(args, os.environ).config
        check_settings(config)
        return config

    return Arbiter(config, reload_config=reload_config).run()
