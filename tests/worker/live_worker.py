"""A real porch worker in a forked child and a raw HTTP/1.1 client, for socket-level tests.

The worker runs as it does under the master: ``Worker(...).run()`` in its own
process (forked, so the test app can be any Python object), serving a TCP
listener on 127.0.0.1 and a UNIX socket, so that signals, ``os._exit`` and the
watchdog behave as in production. The test waits for readiness on a pipe the
worker's ``notify_ready()`` writes to (never sleep-and-poll), waits for the
exit with a pidfd, and kills the child by PID at teardown.

The child's stdout, stderr, ``porch.error`` and the root logger all go to one
log file the test can read (``LiveWorker.log()``).

The pytest fixtures at the end (``serve``, ``mode``, ``probe``, ``make_gate``) are
re-exported by ``tests/worker/conftest.py`` and ``tests/integration/conftest.py``.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import re
import select
import signal
import socket
import sys
import time
import traceback
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from wsgiref.validate import validator

import pytest

from porch.config.settings import Config
from porch.log import setup_logging
from porch.worker.process import Worker

READY_TIMEOUT_S = 10.0
IO_TIMEOUT_S = 5.0
CHILD_CRASHED = 99  # the bootstrap itself failed (not an ExitCode of porch)

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

# Lines in the worker's log that mean something went wrong that no test asked for.
UNEXPECTED_LOG = re.compile(
    r"Traceback|Exception in callback|Fatal error|Exception ignored|Error on reading|"
    r"WSGIWarning|Unhandled|Task exception|never retrieved|Error handling request"
)


def validated(app: WSGIApp) -> WSGIApp:
    """``wsgiref.validate.validator``: checks the app *and* what the server hands it."""
    return validator(app)


def validated_passthrough(app: WSGIApp) -> WSGIApp:
    """Validate environ, ``start_response`` and headers, but return the app's own result object.

    The validator wraps every result in an iterator, which hides what the server
    must see for the tests about result types (a list gets a Content-Length, a
    ``wsgi.file_wrapper`` goes out with ``os.sendfile``).
    """
    checked = validator(app)

    def app_with_own_result(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        wrapper = checked(environ, start_response)
        wrapper.closed = True  # the server closes the original; silence the wrapper's __del__
        return wrapper.original_iterator  # type: ignore[no-any-return]

    return app_with_own_result


def validated_framework(app: WSGIApp) -> WSGIApp:
    """The validator, except that ``wsgi.input`` reaches the app unwrapped.

    Frameworks (werkzeug, Django) rely on ``wsgi.input_terminated``, which porch
    sets, and call ``read()`` without a size; the validator predates that
    extension and refuses it. Everything else stays checked.
    """

    def input_unwrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        stream = environ["wsgi.input"]
        environ["wsgi.input"] = getattr(stream, "input", stream)
        return app(environ, start_response)

    return validator(input_unwrapped)


class ReadyChannel:
    """Worker side of the master's channel: readiness is one byte on a pipe."""

    def __init__(self, fd: int) -> None:
        self.fd = fd
        self.beats = 0

    def beat(self) -> None:
        self.beats += 1

    def notify_ready(self) -> None:
        os.write(self.fd, b"R")
        os.close(self.fd)

    def notify_leaving(self) -> None:
        pass


class Probe:
    """Lines the app emits inside the worker process; the test waits for them with a deadline."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()
        self._partial = b""
        self.seen: list[str] = []

    def emit(self, line: str) -> None:
        """Called in the worker (any thread): one atomic pipe write per line."""
        os.write(self._w, line.encode() + b"\n")

    def expect(self, line: str, timeout: float = IO_TIMEOUT_S) -> None:
        """Wait until the worker emitted ``line``."""
        deadline = time.monotonic() + timeout
        while line not in self.seen:
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._r], [], [], remaining)[0]:
                raise AssertionError(f"the worker never emitted {line!r}; it emitted {self.seen}")
            self._read()

    def expect_prefix(self, prefix: str, timeout: float = IO_TIMEOUT_S) -> str:
        """Wait until the worker emitted a line starting with ``prefix``; return the first."""
        deadline = time.monotonic() + timeout
        while True:
            for line in self.seen:
                if line.startswith(prefix):
                    return line
            remaining = deadline - time.monotonic()
            if remaining <= 0 or not select.select([self._r], [], [], remaining)[0]:
                raise AssertionError(
                    f"the worker never emitted {prefix!r}...; it emitted {self.seen}"
                )
            self._read()

    def drain(self) -> list[str]:
        """Everything emitted so far (without waiting)."""
        while select.select([self._r], [], [], 0)[0]:
            self._read()
        return self.seen

    def _read(self) -> None:
        data = self._partial + os.read(self._r, 65536)
        *lines, self._partial = data.split(b"\n")
        self.seen.extend(line.decode() for line in lines)

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


class Gate:
    """Opened by the test, waited on by the app inside the worker (stays open once opened)."""

    def __init__(self) -> None:
        self._r, self._w = os.pipe()

    def wait(self, timeout: float = IO_TIMEOUT_S) -> bool:
        return bool(select.select([self._r], [], [], timeout)[0])

    def open(self) -> None:
        os.write(self._w, b"o")

    def close(self) -> None:
        os.close(self._r)
        os.close(self._w)


# --- raw HTTP/1.1 client ------------------------------------------------------------


@dataclass
class Response:
    """One response as it came off the wire."""

    version: str
    status: int
    reason: str
    headers: list[tuple[str, str]]
    body: bytes = b""
    chunks: list[bytes] = field(default_factory=list)  # chunk payloads when chunked
    trailers: list[tuple[str, str]] = field(default_factory=list)

    def header(self, name: str) -> str | None:
        values = self.all(name)
        return ",".join(values) if values else None

    def all(self, name: str) -> list[str]:
        lower = name.lower()
        return [v for n, v in self.headers if n.lower() == lower]

    @property
    def header_names(self) -> list[str]:
        return [n.lower() for n, _ in self.headers]


class PeerClosed(Exception):
    """The server closed the connection before a complete response."""


class RawConnection:
    """A blocking client socket with a read buffer and a response reader."""

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.buf = b""

    def send(self, data: bytes) -> None:
        self.sock.sendall(data)

    def _fill(self) -> None:
        data = self.sock.recv(65536)
        if not data:
            raise PeerClosed(f"connection closed by the server; unread: {self.buf[:200]!r}")
        self.buf += data

    def read_until(self, marker: bytes) -> bytes:
        while marker not in self.buf:
            self._fill()
        out, _, self.buf = self.buf.partition(marker)
        return out + marker

    def read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            self._fill()
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def read_to_eof(self) -> tuple[bytes, bool]:
        """All bytes until the server closes; the flag is True when it reset the connection."""
        reset = False
        try:
            while True:
                data = self.sock.recv(65536)
                if not data:
                    break
                self.buf += data
        except ConnectionResetError:
            reset = True
        out, self.buf = self.buf, b""
        return out, reset

    def at_eof(self, timeout: float = IO_TIMEOUT_S) -> bool:
        """True when the server closes (or resets) within ``timeout`` without sending more."""
        self.sock.settimeout(timeout)
        try:
            data = self.sock.recv(65536)
        except ConnectionResetError:
            return True
        except TimeoutError:
            return False
        finally:
            self.sock.settimeout(IO_TIMEOUT_S)
        self.buf += data
        return not data

    def read_head(self) -> Response:
        head = self.read_until(b"\r\n\r\n").decode("latin-1")
        status_line, *lines = head[:-4].split("\r\n")
        version, status, reason = [*status_line.split(" ", 2), ""][:3]
        headers = []
        for line in lines:
            name, _, value = line.partition(":")
            assert name and name == name.strip(), f"malformed header line {line!r}"
            headers.append((name, value.strip(" \t")))
        return Response(version=version, status=int(status), reason=reason, headers=headers)

    def read_response(self, *, method: str = "GET") -> Response:
        """Read one response (an interim 1xx is returned as is: call again for the final one)."""
        response = self.read_head()
        if method == "HEAD" or response.status < 200 or response.status in (204, 304):
            return response
        te = response.header("Transfer-Encoding")
        length = response.header("Content-Length")
        if te is not None:
            assert te.lower() == "chunked", te
            self._read_chunked(response)
        elif length is not None:
            response.body = self.read_exact(int(length))
        else:
            response.body, _ = self.read_to_eof()
        return response

    def _read_chunked(self, response: Response) -> None:
        while True:
            size_line = self.read_until(b"\r\n")[:-2]
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            data = self.read_exact(size + 2)
            assert data.endswith(b"\r\n"), data[-10:]
            response.chunks.append(data[:-2])
        while True:
            line = self.read_until(b"\r\n")[:-2].decode("latin-1")
            if not line:
                break
            name, _, value = line.partition(":")
            response.trailers.append((name, value.strip()))
        response.body = b"".join(response.chunks)

    def close(self) -> None:
        self.sock.close()

    def __enter__(self) -> RawConnection:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def get(path: str = "/", *, host: str = "test", headers: str = "", version: str = "1.1") -> bytes:
    """A bodiless request head; ``headers`` are extra raw lines, each ending in CRLF."""
    return f"GET {path} HTTP/{version}\r\nHost: {host}\r\n{headers}\r\n".encode()


# --- the worker process --------------------------------------------------------------


class LiveWorker:
    """One worker process serving ``app`` on a TCP and a UNIX listener."""

    def __init__(
        self, *, app: WSGIApp, config: Config, loop: str, directory: Path, probe: Probe
    ) -> None:
        self.app = app
        self.config = config
        self.loop = loop
        self.probe = probe
        self.unix_path = str(directory / "porch.sock")
        self.log_path = directory / f"worker-{id(self)}.log"
        self.pid = 0
        self.port = 0
        self.expect_errors = False
        self._pidfd = -1
        self.exit_code: int | None = None

    # --- life cycle ----------------------------------------------------------------

    def start(self) -> LiveWorker:
        backlog = self.config.backlog
        tcp = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        tcp.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        tcp.bind(("127.0.0.1", 0))
        tcp.listen(backlog)
        self.port = tcp.getsockname()[1]
        with contextlib.suppress(FileNotFoundError):
            os.unlink(self.unix_path)
        unix = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        unix.bind(self.unix_path)
        unix.listen(backlog)
        ready_r, ready_w = os.pipe()
        sys.stdout.flush()
        sys.stderr.flush()
        pid = os.fork()
        if pid == 0:  # pragma: no cover - the worker process
            os.close(ready_r)
            self._child([tcp, unix], ready_w)
        os.close(ready_w)
        tcp.close()
        unix.close()
        self.pid = pid
        self._pidfd = os.pidfd_open(pid)
        try:
            ready = select.select([ready_r], [], [], READY_TIMEOUT_S)[0] and os.read(ready_r, 1)
        finally:
            os.close(ready_r)
        if ready != b"R":
            self.kill()
            raise AssertionError(f"the worker never became ready; its log:\n{self.log()}")
        return self

    def _child(self, listeners: list[socket.socket], ready_w: int) -> None:  # pragma: no cover
        code = CHILD_CRASHED
        try:
            _die_with_parent()
            fd = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o644)
            os.dup2(fd, 1)
            os.dup2(fd, 2)
            os.close(fd)
            sys.stdout = open(1, "w", buffering=1, closefd=False)  # noqa: SIM115
            sys.stderr = open(2, "w", buffering=1, closefd=False)  # noqa: SIM115
            os.environ["PORCH_LOOP"] = self.loop
            # Whatever pytest installed (log capture) stays in the parent.
            logging.root.handlers = [logging.StreamHandler(sys.stderr)]
            setup_logging(self.config)
            worker = Worker(
                config=self.config,
                listeners=listeners,
                app=self.app,
                channel=ReadyChannel(ready_w),
            )
            code = worker.run()
        except BaseException:
            traceback.print_exc()
        finally:
            logging.shutdown()
            with contextlib.suppress(Exception):
                sys.stdout.flush()
                sys.stderr.flush()
            os._exit(code)

    def alive(self) -> bool:
        return self.exit_code is None and not select.select([self._pidfd], [], [], 0)[0]

    def wait_exit(self, timeout: float = IO_TIMEOUT_S) -> int:
        """Wait for the worker to exit; return its exit code (negative: killed by a signal)."""
        if self.exit_code is not None:
            return self.exit_code
        if not select.select([self._pidfd], [], [], timeout)[0]:
            raise AssertionError(f"the worker did not exit within {timeout}s; log:\n{self.log()}")
        _, status = os.waitpid(self.pid, 0)
        self.exit_code = os.waitstatus_to_exitcode(status)
        os.close(self._pidfd)
        return self.exit_code

    def send_signal(self, sig: int) -> None:
        os.kill(self.pid, sig)

    def stop(self, sig: int = signal.SIGTERM, timeout: float = IO_TIMEOUT_S) -> int:
        self.send_signal(sig)
        return self.wait_exit(timeout)

    def kill(self) -> None:
        if self.pid and self.exit_code is None:
            with contextlib.suppress(ProcessLookupError):
                os.kill(self.pid, signal.SIGKILL)
            self.wait_exit(READY_TIMEOUT_S)

    def log(self) -> str:
        try:
            return self.log_path.read_text(errors="replace")
        except FileNotFoundError:
            return ""

    def unexpected_log_lines(self) -> list[str]:
        return [line for line in self.log().splitlines() if UNEXPECTED_LOG.search(line)]

    # --- clients -----------------------------------------------------------------------

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def connect(
        self, kind: str = "tcp", *, rcvbuf: int | None = None, timeout: float = IO_TIMEOUT_S
    ) -> RawConnection:
        if kind == "tcp":
            sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            target: Any = ("127.0.0.1", self.port)
        else:
            sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            target = self.unix_path
        if rcvbuf is not None:  # before connect, so the TCP window starts small
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
        sock.settimeout(timeout)
        sock.connect(target)
        return RawConnection(sock)

    def request(self, raw: bytes, *, kind: str = "tcp", method: str = "GET") -> Response:
        """Send ``raw`` on a new connection and read one response."""
        with self.connect(kind) as conn:
            conn.send(raw)
            return conn.read_response(method=method)


def _die_with_parent() -> None:  # pragma: no cover - the worker process
    """Linux PR_SET_PDEATHSIG: an interrupted test run leaves no worker behind."""
    with contextlib.suppress(OSError, AttributeError):
        libc = ctypes.CDLL(None, use_errno=True)
        libc.prctl(1, signal.SIGKILL)  # PR_SET_PDEATHSIG = 1


# --- pytest fixtures (re-exported by the conftest of each directory using them) --------
#
# ``serve(app, **settings)`` starts a worker with test-sized timeouts and returns a
# :class:`LiveWorker`. Every test using it runs in the modes of the ``mode``
# fixture: inline (``threads=1``) and a pool (``threads=4``), on uvloop and on the
# stdlib asyncio loop. A test limits the modes with
# ``@pytest.mark.parametrize("mode", [...], indirect=True)``.
#
# At teardown the worker is killed by PID, and its log must hold no traceback or
# warning unless the test said it expects errors (``serve(..., expect_errors=True)``).


@dataclass(frozen=True)
class Mode:
    threads: int
    loop: str


MODES = {
    "inline-uvloop": Mode(threads=1, loop="uvloop"),
    "threads-uvloop": Mode(threads=4, loop="uvloop"),
    "inline-asyncio": Mode(threads=1, loop="asyncio"),
    "threads-asyncio": Mode(threads=4, loop="asyncio"),
}

# Short enough that a stuck test fails fast, long enough for a loaded CI machine.
TEST_SETTINGS: dict[str, Any] = {
    "keep_alive": 5.0,
    "header_timeout": 5.0,
    "body_timeout": 5.0,
    "write_timeout": 5.0,
    "graceful_timeout": 5.0,
    "timeout": 10.0,
    "backlog": 64,
}

Serve = Callable[..., LiveWorker]


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> Mode:
    return MODES[request.param]


@pytest.fixture
def probe() -> Iterator[Probe]:
    """A pipe the app writes event lines to from inside the worker."""
    p = Probe()
    yield p
    p.close()


@pytest.fixture
def make_gate() -> Iterator[Callable[[], Gate]]:
    """Gates the test opens to release an app blocked inside the worker (create before serve)."""
    gates: list[Gate] = []

    def make() -> Gate:
        gates.append(Gate())
        return gates[-1]

    yield make
    for gate in gates:
        gate.close()


@pytest.fixture
def serve(mode: Mode, tmp_path: Path, probe: Probe) -> Iterator[Serve]:
    started: list[LiveWorker] = []

    def start(app: WSGIApp, *, expect_errors: bool = False, **settings: Any) -> LiveWorker:
        values = {**TEST_SETTINGS, "threads": mode.threads, **settings}
        directory = tmp_path / f"w{len(started)}"
        directory.mkdir()
        worker = LiveWorker(
            app=app, config=Config(**values), loop=mode.loop, directory=directory, probe=probe
        )
        worker.expect_errors = expect_errors
        started.append(worker)
        return worker.start()

    yield start
    problems = []
    for worker in started:
        worker.kill()
        if not worker.expect_errors and worker.unexpected_log_lines():
            problems.append(worker.log())
    if problems:
        pytest.fail("unexpected errors in the worker log:\n" + "\n---\n".join(problems))


@pytest.fixture
def sendfile_calls(monkeypatch: pytest.MonkeyPatch, probe: Probe) -> None:
    """Report os.sendfile calls in the worker as ``sendfile OFFSET SENT`` probe lines.

    The worker is forked after the patch, so it inherits it.
    """
    real = os.sendfile

    def reporting_sendfile(out_fd: int, in_fd: int, offset: int | None, count: int) -> int:
        sent = real(out_fd, in_fd, offset, count)
        probe.emit(f"sendfile {offset} {sent}")
        return sent

    monkeypatch.setattr(os, "sendfile", reporting_sendfile)
