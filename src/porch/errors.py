"""The porch exception tree and the process exit codes.

    PorchError
    ├── ConfigError            bad setting value or config file (names the flag)
    ├── AppLoadError           the WSGI app cannot be imported or built
    ├── AppResponseError       the app broke PEP 3333 (bad status/headers, write misuse)
    ├── BindError              a listening socket cannot be created
    └── ProtocolError          a peer sent bytes we refuse (carries the HTTP status)
        └── (status 400, 413, 414, 431, 501, 505, ...)

    OSError
    └── BodyUnavailable        a wsgi.input read found no body: the client stopped sending

Errors raised by the application are not wrapped: the worker catches them in one
place, logs them once and answers 500 (or aborts the connection when the
response head has already been sent).
"""

from __future__ import annotations

from enum import IntEnum


class ExitCode(IntEnum):
    """Exit codes of the master and worker processes."""

    OK = 0
    ERROR = 1  # generic failure of the master
    USAGE = 2  # bad command line / configuration (argparse uses 2 as well)
    WORKER_BOOT_ERROR = 3  # a worker failed before serving (not the app's fault)
    APP_LOAD_ERROR = 4  # the app cannot be imported: stop, never fork-loop
    WORKER_TIMEOUT = 5  # a worker left after a request hung past --timeout


class PorchError(Exception):
    """Base of every error porch raises on purpose."""


class ConfigError(PorchError):
    """A setting has an invalid value; the message names the flag and the accepted form."""


class AppLoadError(PorchError):
    """The application could not be loaded.

    ``user_traceback`` holds the formatted traceback of the user's code (without
    porch's own frames) when the failure came from an exception during import.
    """

    def __init__(self, message: str, *, user_traceback: str = "") -> None:
        super().__init__(message)
        self.user_traceback = user_traceback


class AppResponseError(PorchError):
    """The application misused ``start_response`` or ``write`` (PEP 3333).

    Raised into the app's own call stack, so the worker handles it like any
    other application error: logged once, answered with a 500 (or an aborted
    connection once the head has been sent).
    """


class BindError(PorchError):
    """A listening socket could not be created or inherited."""


class ProtocolError(PorchError):
    """The peer violated the protocol; answer ``status`` and close the connection."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class BodyUnavailable(OSError):
    """The app asked for a request body the client never finished sending (a peer error).

    Raised from ``wsgi.input`` reads (Expect: 100-continue and streamed bodies are
    read while the app runs). An ``OSError``, as apps expect from a failing read.
    Unless the app handles it, the client gets a 408, not a 500.
    """
