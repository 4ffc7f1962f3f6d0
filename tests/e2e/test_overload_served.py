"""Overload protection through the real porch command: rate limit (429), per-client
connection limit (503) and load shedding when every app thread is busy (503)."""

from __future__ import annotations

import socket
import time
from pathlib import Path

import pytest

from tests.e2e.conftest import PorchProcess
from tests.e2e.raw_http import parse_url, raw_request, status_of

pytestmark = pytest.mark.timeout(60)

GET = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"


def test_rate_limit_answers_429_with_retry_after(porch: type[PorchProcess]) -> None:
    server = porch(
        [
            *("examples/hello.py", "-b", "127.0.0.1:0", "--access-logfile", "-"),
            *("--rate-limit", "1", "--rate-limit-burst", "3"),
        ]
    )
    answers = [raw_request(server.url, GET) for _ in range(5)]
    statuses = [status_of(a) for a in answers]
    assert statuses[:3] == [200, 200, 200], statuses
    assert 429 in statuses[3:], statuses
    refused = answers[statuses.index(429)]
    assert b"\r\nRetry-After: 1\r\n" in refused
    assert server.logged("--rate-limit exceeded")
    assert sum("--rate-limit exceeded" in line for line in server.lines) == 1  # logged once
    # Each refusal is in the access log, as nginx logs its limit_req refusals.
    assert server.logged('"GET / HTTP/1.1" 429 ')
    refusals = sum('"GET / HTTP/1.1" 429 ' in line for line in server.lines)
    assert refusals == statuses.count(429)


def test_client_connection_limit(porch: type[PorchProcess]) -> None:
    server = porch(["examples/hello.py", "-b", "127.0.0.1:0", "--max-client-connections", "2"])
    host, port = parse_url(server.url)
    held = [socket.create_connection((host, port), timeout=10) for _ in range(2)]
    for sock in held:  # both are really established and served
        sock.sendall(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    assert status_of(raw_request(server.url, GET)) == 503
    held[0].close()
    # The slot frees once the server has seen the close; bounded retries, no sleeps.
    deadline = time.monotonic() + 10
    while status_of(raw_request(server.url, GET)) != 200:
        assert time.monotonic() < deadline, "slot never freed"
    held[1].close()


def test_load_shedding_when_threads_and_queue_are_full(porch: type[PorchProcess]) -> None:
    server = porch(
        ["examples/hello.py", "-b", "127.0.0.1:0", "--threads", "2", "--request-queue", "1"]
    )
    host, port = parse_url(server.url)
    slow = []
    for _ in range(3):  # two run on the app threads, one waits in the queue
        sock = socket.create_connection((host, port), timeout=10)
        sock.sendall(b"GET /sleep?s=3 HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
        slow.append(sock)
    started = time.monotonic()
    shed = None
    for _ in range(20):
        answer = raw_request(server.url, GET)
        if status_of(answer) == 503:
            shed = answer
            break
    assert shed is not None, "no request was shed"
    assert time.monotonic() - started < 2.0  # quick, not after the sleeps
    assert b"Retry-After: 1" in shed
    for sock in slow:  # the admitted requests still complete
        data = b""
        while chunk := sock.recv(65536):
            data += chunk
        assert data.startswith(b"HTTP/1.1 200"), data[:100]
        sock.close()
    assert server.logged("shedding load")


def test_shedding_counts_requests_holding_an_app_thread_only(
    porch: type[PorchProcess], tmp_path: Path
) -> None:
    # Slow downloads of a static file hold no app thread while sendfile sends it: they
    # must not make the worker shed everyone else while its threads sit idle.
    # (Streamed bodies parked for a slow client: tests/worker/test_worker_limits.py.)
    (tmp_path / "big.bin").write_bytes(b"x" * (16 << 20))
    server = porch(
        [
            "examples/hello.py",
            "-b",
            "127.0.0.1:0",
            "--threads",
            "2",
            "--request-queue",
            "1",
            "--static",
            f"/s={tmp_path}",
        ]
    )
    host, port = parse_url(server.url)
    held = []
    for path in ["/s/big.bin"] * 3:  # as many as --threads 2 --request-queue 1 admits
        sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)  # a slow reader
        sock.settimeout(10)
        sock.connect((host, port))
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\n\r\n".encode())
        assert sock.recv(1, socket.MSG_PEEK)  # its response has begun
        held.append(sock)
    deadline = time.monotonic() + 10
    while status_of(raw_request(server.url, GET)) != 200:
        assert time.monotonic() < deadline, "shed while the app threads were idle"
    assert [status_of(raw_request(server.url, GET)) for _ in range(5)] == [200] * 5
    for sock in held:
        sock.close()


def test_request_queue_without_threads_is_warned_about(porch: type[PorchProcess]) -> None:
    # Load shedding counts requests waiting for an app thread; inline there is none.
    server = porch(["examples/hello.py", "-b", "127.0.0.1:0", "--request-queue", "4"])
    assert server.logged("--request-queue has no effect with --threads 1")
    assert status_of(raw_request(server.url, GET)) == 200
    assert server.stop() == 0
    threaded = porch(
        ["examples/hello.py", "-b", "127.0.0.1:0", "--request-queue", "4", "--threads", "2"]
    )
    assert status_of(raw_request(threaded.url, GET)) == 200
    assert not any("--request-queue has no effect" in line for line in threaded.lines)
    assert threaded.stop() == 0
