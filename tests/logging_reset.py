"""Undo what a test configured on loggers (shared by the logging tests' fixtures)."""

from __future__ import annotations

import logging

from porch import log


def reset_loggers(*names: str) -> None:
    """Drop the handlers setup_logging() installed, then give each named logger back
    its defaults: no handlers (closed), level NOTSET, propagating, enabled."""
    log._remove_installed_handlers()
    for name in names:
        logger = logging.getLogger(name)
        for handler in list(logger.handlers):
            logger.removeHandler(handler)
            handler.close()
        logger.setLevel(logging.NOTSET)
        logger.propagate = True
        logger.disabled = False
