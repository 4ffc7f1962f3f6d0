"""The ``--pid`` file: written atomically at start, removed at exit only if it is still ours."""

from __future__ import annotations

import os

from porch.errors import ConfigError

__all__ = ["remove_pidfile", "write_pidfile"]


def write_pidfile(path: str, pid: int) -> None:
    """Write ``pid`` to ``path`` via a temporary file and a rename."""
    tmp = f"{path}.{pid}.tmp"
    try:
        with open(tmp, "w", encoding="ascii") as handle:
            handle.write(f"{pid}\n")
        os.replace(tmp, path)
    except OSError as exc:
        try:
            os.unlink(tmp)
        except OSError:
            pass
        raise ConfigError(f"--pid: cannot write {path}: {exc.strerror or exc}") from exc


def remove_pidfile(path: str, pid: int) -> None:
    """Remove ``path`` if it holds ``pid`` (another master may have replaced it)."""
    try:
        with open(path, encoding="ascii") as handle:
            content = handle.read().strip()
        if content == str(pid):
            os.unlink(path)
    except (OSError, UnicodeDecodeError):
        pass
