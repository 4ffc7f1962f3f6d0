"""The ``--pid`` file: written atomically at start, removed at exit only if it is still ours."""

from __future__ import annotations

import os

from porch.errors import ConfigError

__all__ = ["remove_pidfile", "write_pidfile"]


def write_pidfile(path: str, pid: int) -> None:
    """Write ``pid`` to ``path`` via a temporary file and a rename.

    A file naming another porch that is still running is not taken over (as
    gunicorn refuses): that master would lose its file, and then see it removed.
    A stale file (its process gone, or not a porch) is replaced.
    """
    holder = _read_pid(path)
    if holder is not None and holder != pid and _is_running_porch(holder):
        raise ConfigError(
            f"--pid: {path} names process {holder}, a porch that is still running; "
            "stop it first, or give this one another --pid file"
        )
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


def _read_pid(path: str) -> int | None:
    try:
        with open(path, encoding="ascii") as handle:
            content = handle.read().strip()
    except (OSError, UnicodeDecodeError):
        return None
    return int(content) if content.isdigit() and int(content) > 0 else None


def _is_running_porch(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        pass  # alive, someone else's
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            return b"porch" in handle.read()
    except OSError:
        return True  # alive and no /proc to tell: assume it is


def remove_pidfile(path: str, pid: int) -> None:
    """Remove ``path`` if it holds ``pid`` (another master may have replaced it)."""
    if _read_pid(path) == pid:
        try:
            os.unlink(path)
        except OSError:
            pass
