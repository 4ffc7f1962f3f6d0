"""Accepting connections: what the kernel queued is taken at once, even while the loop is busy.

uvloop's own server accepted about one connection per loop iteration while the
loop was busy serving others, so a burst of new clients waited in the accept
queue for dozens of iterations (p99 of 100-300 ms for a Flask app, 1.5 s with
1,000 connections). These tests fail with that behaviour.
"""

from __future__ import annotations

import fcntl
import os
import socket
import threading
import time
from typing import Any

import pytest
from live_worker import IO_TIMEOUT_S, Serve, get

# The loop is busy only when the app runs on it; both loops must behave.
pytestmark = pytest.mark.parametrize("mode", ["inline-uvloop", "inline-asyncio"], indirect=True)

APP_SECONDS = 0.004  # loop time per request
BUSY_CLIENTS = 16
NEW_CLIENTS = 32


def busy_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    end = time.perf_counter() + APP_SECONDS
    while time.perf_counter() < end:  # CPU, as a real app's work: the loop is held
        pass
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "2")])
    return [b"ok"]


def read_response(sock: socket.socket) -> None:
    data = b""
    while not data.endswith(b"\r\n\r\nok"):
        chunk = sock.recv(4096)
        assert chunk, f"connection closed after {data!r}"
        data += chunk


def test_a_burst_of_new_connections_is_accepted_while_the_loop_is_busy(serve: Serve) -> None:
    worker = serve(busy_app)
    stop = threading.Event()

    def keep_busy() -> None:
        with socket.create_connection(("127.0.0.1", worker.port), timeout=IO_TIMEOUT_S) as sock:
            while not stop.is_set():
                sock.sendall(get())
                read_response(sock)

    busy = [threading.Thread(target=keep_busy) for _ in range(BUSY_CLIENTS)]
    for thread in busy:
        thread.start()
    try:
        time.sleep(0.3)  # every busy client is being served: each loop pass takes ~64 ms
        started = time.monotonic()
        burst = [
            socket.create_connection(("127.0.0.1", worker.port), timeout=IO_TIMEOUT_S)
            for _ in range(NEW_CLIENTS)
        ]
        for sock in burst:
            sock.sendall(get())
        for sock in burst:
            read_response(sock)
        elapsed = time.monotonic() - started
        for sock in burst:
            sock.close()
    finally:
        stop.set()
        for thread in busy:
            thread.join()
    # Accepted in one pass, served in the next: ~0.2 s. One accept per pass
    # would need NEW_CLIENTS passes of ~64 ms each (2 s and more).
    assert elapsed < 1.2, f"the burst took {elapsed:.2f}s"


def accepted_socket_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    """Report the options of this request's socket, found among the worker's fds by its peer."""
    port, found = int(environ["REMOTE_PORT"]), "not found"
    for name in os.listdir("/proc/self/fd"):
        fd = int(name)
        try:
            probe = socket.socket(fileno=os.dup(fd))
        except OSError:  # not a socket
            continue
        with probe:
            try:
                if probe.type != socket.SOCK_STREAM or probe.getpeername()[1] != port:
                    continue
            except (OSError, IndexError, TypeError):  # unconnected, or not an INET socket
                continue
            nodelay = probe.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
            nonblocking = fcntl.fcntl(fd, fcntl.F_GETFL) & os.O_NONBLOCK
            found = f"nodelay={int(bool(nodelay))} nonblocking={int(bool(nonblocking))}"
    body = found.encode()
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
    return [body]


def test_an_accepted_socket_is_non_blocking_and_sends_without_delay(serve: Serve) -> None:
    # The acceptor leaves both to the loop's transport (libuv's uv_tcp_open and
    # uvloop's TCPTransport; asyncio's socket transport): checked on the real socket.
    worker = serve(accepted_socket_app)
    response = worker.request(get())
    assert response.body == b"nodelay=1 nonblocking=1"
