"""``--reload``: a watchfiles thread in the master that triggers a HUP reload on ``.py`` changes."""

from __future__ import annotations

import logging
import os
import threading
from collections.abc import Callable, Sequence
from typing import Any

from porch.errors import ConfigError

__all__ = ["SourceReloader", "require_watchfiles", "watch_roots"]

_DEBOUNCE_MS = 300
_IDLE_MS = 500  # the watcher yields (nothing) when idle this long
_log = logging.getLogger("porch.error")


def require_watchfiles() -> None:
    """Fail with an actionable message when the optional dependency is missing."""
    try:
        import watchfiles  # noqa: F401
    except ImportError:
        raise ConfigError(
            "--reload needs the watchfiles package: pip install 'porch[reload]'"
        ) from None


def watch_roots(app: str | None, chdir: str | None, pythonpath: Sequence[str] = ()) -> list[str]:
    """Directories to watch: the app directory (``--chdir`` or cwd), a file app's
    folder, and the ``--pythonpath`` entries (relative ones from the app directory,
    as the loader resolves them); none twice, none inside another."""
    base = os.path.abspath(chdir or os.getcwd())
    candidates = [base]
    target = (app or "").split(":", 1)[0]
    if target.endswith(".py"):
        candidates.append(os.path.dirname(os.path.abspath(os.path.join(base, target))))
    candidates.extend(os.path.abspath(os.path.join(base, entry)) for entry in pythonpath)
    roots: list[str] = []
    for folder in candidates:
        if not any((folder + os.sep).startswith(root + os.sep) for root in roots):
            roots = [r for r in roots if not (r + os.sep).startswith(folder + os.sep)]
            roots.append(folder)
    return roots


class SourceReloader:
    """Watch ``roots`` for ``.py`` changes on a daemon thread; call ``on_change`` for each batch."""

    def __init__(self, *, roots: Sequence[str], on_change: Callable[[list[str]], None]) -> None:
        self._roots = list(roots)
        self._on_change = on_change
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="porch-reloader", daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread.is_alive():
            self._thread.join(timeout=2.0)

    def _run(self) -> None:
        import watchfiles

        watch_filter: Any = watchfiles.PythonFilter(extra_extensions=())
        announced = False
        try:
            for changes in watchfiles.watch(
                *self._roots,
                watch_filter=lambda change, path: (
                    path.endswith(".py") and watch_filter(change, path)
                ),
                debounce=_DEBOUNCE_MS,
                stop_event=self._stop,
                raise_interrupt=False,
                rust_timeout=_IDLE_MS,
                yield_on_timeout=True,  # the first idle yield proves the watches are in place
            ):
                if not announced:
                    announced = True
                    _log.info("--reload: watching %s for .py changes", ", ".join(self._roots))
                paths = sorted({path for _, path in changes})
                if paths and not self._stop.is_set():
                    self._on_change(paths)
        except Exception:
            _log.exception("--reload: the file watcher stopped")
