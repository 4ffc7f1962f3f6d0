"""The real porch command: start, graceful and fast stop, pid file, UNIX socket, bad apps."""

from __future__ import annotations

import grp
import os
import pwd
import signal
import socket
import sys
import time
from collections.abc import Callable
from pathlib import Path

import httpx
import pytest

from conftest import APPS, Porch
from porch.errors import ExitCode

StartPorch = Callable[..., Porch]
APP = "procapp:app"


def test_start_serve_and_stop(start_porch: StartPorch, tmp_path: Path) -> None:
    pidfile = tmp_path / "porch.pid"
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "2", "--pid", str(pidfile))
    url = porch.wait_ready()
    assert porch.count(r"Starting porch 0\.1\.0") == 1
    assert porch.count(rf"Listening at: {url} \({porch.pid}\)") == 1
    assert len(porch.worker_pids()) == 2
    assert pidfile.read_text().strip() == str(porch.pid)
    with porch.client() as client:
        assert client.get("/").text == "ok"
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0
    assert porch.count("Handling signal: term") == 1
    assert porch.count("Shutting down: Master") == 1
    assert not pidfile.exists()


def _raw_get(url: str, path: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    sock = socket.create_connection((host, int(port)), timeout=30)
    sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
    return sock


def _read_all(sock: socket.socket) -> bytes:
    chunks = []
    with sock:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def test_term_finishes_in_flight_and_backlog(start_porch: StartPorch) -> None:
    """One inline worker busy for 1 s, five more connections queued, then TERM: all get 200."""
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "1", "--threads", "1")
    url = porch.wait_ready()
    slow = _raw_get(url, "/sleep?s=1")
    porch.wait_for(r"procapp: sleeping 1 ")
    queued = [_raw_get(url, "/") for _ in range(5)]
    porch.signal(signal.SIGTERM)
    replies = [_read_all(slow)] + [_read_all(sock) for sock in queued]
    assert porch.wait_exit() == 0
    for reply in replies:
        assert reply.startswith(b"HTTP/1.1 200 "), reply
    assert replies[0].endswith(b"slept 1")


def test_unix_socket_serves_and_is_removed(start_porch: StartPorch, tmp_path: Path) -> None:
    path = tmp_path / "porch.sock"
    porch = start_porch(APP, "-b", f"unix:{path}", "--socket-mode", "600")
    assert porch.wait_ready() == f"unix:{path}"
    assert (path.stat().st_mode & 0o777) == 0o600
    transport = httpx.HTTPTransport(uds=str(path))
    with httpx.Client(transport=transport, base_url="http://porch", timeout=10) as client:
        assert client.get("/").text == "ok"
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0
    assert not path.exists()


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGQUIT])
def test_fast_stop_does_not_wait_for_requests(start_porch: StartPorch, signum: int) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "--graceful-timeout", "60")
    url = porch.wait_ready()
    slow = _raw_get(url, "/sleep?s=30")
    porch.wait_for(r"procapp: sleeping 30 ")
    started = time.monotonic()
    porch.signal(signum)
    assert porch.wait_exit(timeout=15) == 0
    assert time.monotonic() - started < 10
    assert b"slept" not in _read_all(slow)


def test_graceful_timeout_kills_late_workers(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "--graceful-timeout", "1", "-t", "0")
    url = porch.wait_ready()
    slow = _raw_get(url, "/sleep?s=30")
    porch.wait_for(r"procapp: sleeping 30 ")
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit(timeout=15) == 0
    assert porch.count(r"Killing worker \d+: it did not stop in time") == 1
    slow.close()


def _write_app(tmp_path: Path, name: str, source: str) -> None:
    (tmp_path / f"{name}.py").write_text(source)


@pytest.mark.parametrize(
    ("spec", "source", "message"),
    [
        ("nosuchmodule:app", None, "module 'nosuchmodule' not found"),
        ("noattr:app", "x = 1\n", "has no attribute 'app'"),
        ("boom:app", "raise RuntimeError('boom at import')\n", "importing 'boom': RuntimeError"),
        # Not an Exception: the worker used to die of it with exit 3, "failed to boot".
        ("stop:app", "raise KeyboardInterrupt\n", "importing 'stop:app' was interrupted"),
    ],
)
def test_bad_app_exits_4_once_without_fork_loop(
    start_porch: StartPorch, tmp_path: Path, spec: str, source: str | None, message: str
) -> None:
    if source is not None:
        _write_app(tmp_path, spec.split(":")[0], source)
    porch = start_porch(spec, "-b", "127.0.0.1:0", "-w", "3")
    assert porch.wait_exit(timeout=15) == ExitCode.APP_LOAD_ERROR
    assert porch.count(message) == 1, porch.log()
    assert porch.count("Failed to load the application") == 1
    assert len(porch.worker_pids()) == 1  # the canary only: no fork loop
    assert porch.count(r"Stopping: the application could not be loaded") == 1
    if "boom" in spec:
        assert porch.count(r"Traceback \(most recent call last\)") == 1
        assert porch.count(r'File ".*boom\.py", line 1') == 1


def test_bad_app_with_preload_fails_in_the_master(start_porch: StartPorch, tmp_path: Path) -> None:
    _write_app(tmp_path, "boom", "raise RuntimeError('boom at import')\n")
    porch = start_porch("boom:app", "-b", "127.0.0.1:0", "--preload")
    assert porch.wait_exit(timeout=15) == ExitCode.APP_LOAD_ERROR
    assert porch.count("Failed to load the application: .*RuntimeError: boom at import") == 1
    assert porch.count(r"Traceback \(most recent call last\)") == 1
    assert porch.worker_pids() == []


def test_keyboard_interrupt_while_preloading_is_an_app_load_error(
    start_porch: StartPorch, tmp_path: Path
) -> None:
    # Ctrl-C during a slow --preload import, or an app raising it: was a traceback, exit 1.
    _write_app(tmp_path, "stop", "raise KeyboardInterrupt\n")
    porch = start_porch("stop:app", "-b", "127.0.0.1:0", "--preload")
    assert porch.wait_exit(timeout=15) == ExitCode.APP_LOAD_ERROR
    assert porch.count(r"Failed to load the application: importing 'stop:app' was interrupted "
                       r"\(KeyboardInterrupt\)") == 1  # fmt: skip
    assert porch.count("Traceback") == 0
    assert porch.worker_pids() == []


def test_bind_error_is_reported(start_porch: StartPorch) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        port = taken.getsockname()[1]
        porch = start_porch(APP, "-b", f"127.0.0.1:{port}")
        assert porch.wait_exit(timeout=15) == ExitCode.ERROR
    assert porch.count(rf"cannot bind 127\.0\.0\.1:{port}: address already in use") == 1
    assert porch.worker_pids() == []


def test_systemd_socket_activation(start_porch: StartPorch) -> None:
    """LISTEN_FDS: porch serves on the inherited fd 3 (a shim sets LISTEN_PID, then execs)."""
    with socket.socket() as passed:
        passed.bind(("127.0.0.1", 0))
        passed.listen(16)
        port = passed.getsockname()[1]
        fd = passed.fileno()
        shim = (
            f"import os, sys; os.dup2({fd}, 3); os.close({fd}); "
            "os.environ.update(LISTEN_PID=str(os.getpid()), LISTEN_FDS='1'); "
            "os.execv(sys.executable, [sys.executable, '-m', 'porch', *sys.argv[1:]])"
        )
        porch = start_porch(APP, "-b", "127.0.0.1:1", pass_fds=(fd,),
                            command=[sys.executable, "-c", shim])  # fmt: skip
    assert porch.wait_ready() == f"http://127.0.0.1:{port}"
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=10).text == "ok"
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0


@pytest.mark.skipif(os.getuid() != 0, reason="switching users needs root")
def test_workers_drop_privileges(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "--user", "nobody", "--group", "nogroup",
                        cwd=APPS)  # fmt: skip
    porch.wait_ready()
    with porch.client() as client:
        worker = int(client.get("/pid").text)
    status = Path(f"/proc/{worker}/status").read_text()
    nobody, nogroup = pwd.getpwnam("nobody").pw_uid, grp.getgrnam("nogroup").gr_gid
    assert f"\nUid:\t{nobody}\t{nobody}\t{nobody}\t{nobody}\n" in status
    assert f"\nGid:\t{nogroup}\t{nogroup}\t{nogroup}\t{nogroup}\n" in status
    assert os.stat(f"/proc/{porch.pid}").st_uid == 0  # the master keeps its user
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0


def test_a_unix_socket_file_belongs_to_the_workers_user_and_group(
    start_porch: StartPorch, tmp_path: Path
) -> None:
    path = tmp_path / "porch.sock"
    porch = start_porch(APP, "-b", f"unix:{path}", "--socket-mode", "660", "--user", "nobody",
                        "--group", "nogroup", cwd=APPS)  # fmt: skip
    porch.wait_ready()
    info = path.stat()
    assert (info.st_uid, info.st_gid) == (pwd.getpwnam("nobody").pw_uid,
                                          grp.getgrnam("nogroup").gr_gid)  # fmt: skip
    assert info.st_mode & 0o777 == 0o660
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0
    assert not path.exists()


def test_unknown_user_is_a_usage_error(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "--user", "no-such-user-porch")
    assert porch.wait_exit() == ExitCode.USAGE
    assert porch.count("--user: .*'no-such-user-porch'") == 1


def test_the_worker_connections_warning_is_not_said_per_pause(start_porch: StartPorch) -> None:
    # One idle connection held, then requests one after another on new connections:
    # the worker pauses accepting after each one (two open) and resumes at its close.
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "1", "--worker-connections", "2")
    url = porch.wait_ready()
    host, port = url.removeprefix("http://").rsplit(":", 1)
    with socket.create_connection((host, int(port)), timeout=10):
        for _ in range(20):
            assert _read_all(_raw_get(url, "/")).endswith(b"ok")
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0
    assert porch.count(r"reached --worker-connections 2") == 1, porch.log()


def test_an_abstract_unix_socket_serves_and_leaves_no_file(
    start_porch: StartPorch, tmp_path: Path
) -> None:
    name = f"porch-test-{os.getpid()}-{time.monotonic_ns()}"
    porch = start_porch(APP, "-b", f"unix:@{name}", cwd=tmp_path)
    assert porch.wait_ready() == f"unix:@{name}"
    with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as sock:
        sock.settimeout(10)
        sock.connect("\0" + name)
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        assert _read_all(sock).endswith(b"\r\n\r\nok")
    assert list(tmp_path.iterdir()) == []  # no socket file named "@..."
    porch.signal(signal.SIGTERM)
    assert porch.wait_exit() == 0


def test_an_abstract_unix_socket_has_no_mode_to_set(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "unix:@porch-test-mode", "--socket-mode", "600")
    assert porch.wait_exit() == ExitCode.ERROR  # as every bind error
    assert porch.count(r"--socket-mode needs a socket file") == 1


def _connect(address: str) -> socket.socket:
    """A connection to ``http://HOST:PORT`` or ``unix:PATH``."""
    if address.startswith("unix:"):
        sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
        sock.settimeout(30)
        try:
            sock.connect(address.removeprefix("unix:"))
        except OSError:
            sock.close()
            raise
        return sock
    host, port = address.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=30)


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_term_refuses_new_connections_while_in_flight_requests_finish(
    start_porch: StartPorch, tmp_path: Path, kind: str
) -> None:
    """After TERM the master closes its listening sockets and each worker closes its own
    once it has drained the backlog: a new client is refused at once (a UNIX socket file
    is gone) instead of waiting in a backlog nobody reads, to be reset at exit."""
    bind = "127.0.0.1:0" if kind == "tcp" else f"unix:{tmp_path / 'porch.sock'}"
    porch = start_porch(APP, "-b", bind, "-w", "2", "--threads", "2")
    address = porch.wait_ready()
    slow = _connect(address)
    slow.sendall(b"GET /sleep?s=2 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
    porch.wait_for(r"procapp: sleeping 2 ")
    mark = porch.mark()
    porch.signal(signal.SIGTERM)
    first = porch.wait_for(r"worker (\d+) stopping: not accepting", after=mark).group(1)
    porch.wait_for(rf"worker (?!{first}\b)\d+ stopping: not accepting", after=mark)
    refused = ConnectionRefusedError if kind == "tcp" else FileNotFoundError
    with pytest.raises(refused):
        _connect(address).close()
    assert _read_all(slow).endswith(b"\r\n\r\nslept 2")  # the request in flight completes
    assert porch.wait_exit() == 0
