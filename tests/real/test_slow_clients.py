"""Slow clients never hold an app thread: with one worker running the app inline
(``--threads 1``), hundreds of clients trickling uploads or reading a byte at a time
leave an ordinary request as fast as on an idle server; an oversized body is refused
with 413 from its head alone.

The readers fetch ``/bulk`` (tests/real/bulk_app.py: hello.py plus large responses that
cost the app nothing to produce), so a slow probe can only mean a held thread. Linux
takes up to ~3 MB of each response into the socket before porch has to hold anything
(send-buffer autotuning), so a tenth of the readers ask for 16 MiB: for those porch
must pause the app's generator, and its memory shows it did.
"""

from __future__ import annotations

import socket
import statistics
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.e2e.conftest import PorchProcess
from tests.real.conftest import StartPorch
from tests.real.slow_crowd import SlowCrowd, open_connection, timed_get

pytestmark = pytest.mark.timeout(30)

BULK_APP = ("tests/real/bulk_app.py", "--pythonpath", "examples", "-b", "127.0.0.1:0")
SLOW_FLAGS = ("-w", "1", "--body-timeout", "30", "--header-timeout", "30")
UPLOAD_HEAD = (
    b"POST /echo HTTP/1.1\r\nHost: slow\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Length: 1048576\r\n\r\n"
)
PROMPT_SECONDS = 1.0
PROBES = 5
BIG_KIB = 16 * 1024


def bulk_request(kib: int, *, as_list: bool) -> bytes:
    query = f"kib={kib}" + ("&list=1" if as_list else "")
    return f"GET /bulk?{query} HTTP/1.1\r\nHost: slow\r\n\r\n".encode()


@pytest.fixture
def crowd() -> Iterator[SlowCrowd]:
    slow = SlowCrowd()
    yield slow
    slow.stop()


def hello(server: PorchProcess, *, timeout: float = 5.0) -> float:
    elapsed, response = timed_get(server.url, timeout=timeout)
    assert response.startswith(b"HTTP/1.1 200 ") and response.endswith(b"Hello, World!"), response
    return elapsed


def probe_while_slow(server: PorchProcess, crowd: SlowCrowd) -> list[float]:
    """Time PROBES ordinary requests, two ticks apart, while the crowd stays slow."""
    timings = []
    for _ in range(PROBES):
        timings.append(hello(server))
        ticks = crowd.ticks
        crowd.wait_until(lambda t=ticks: crowd.ticks >= t + 2, "two more ticks", 5)
    return timings


def worker_rss_bytes(server: PorchProcess) -> int:
    _, response = timed_get(server.url, "/pid")
    pid = int(response.rpartition(b"\r\n\r\n")[2])
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmRSS:"):
            return int(line.split()[1]) * 1024
    raise AssertionError(f"no VmRSS for worker {pid}")


def test_200_slow_uploaders_and_200_slow_readers_leave_the_app_thread_free(
    start_porch: StartPorch, crowd: SlowCrowd
) -> None:
    server = start_porch(*BULK_APP, *SLOW_FLAGS, "--threads", "1")
    for index in range(200):
        crowd.add_uploader(server.url, UPLOAD_HEAD)
        big = index % 10 == 0  # 20 readers of 16 MiB generator bodies, the rest 512 KiB
        crowd.add_reader(server.url, bulk_request(BIG_KIB if big else 512, as_list=index % 2 == 1))
    crowd.start()
    # Every reader's response has started: the app ran for all 200, and then went on.
    crowd.wait_until(lambda: crowd.readers_answered() == 200, "all 200 readers answered", 10)
    timings = probe_while_slow(server, crowd)
    assert max(timings) < PROMPT_SECONDS, timings
    crowd.assert_all_still_waiting()
    for data in crowd.received:
        assert data.startswith(b"HTTP/1.1 200 "[: len(data)]), bytes(data)
    assert crowd.ticks >= 10  # a second of trickling at least, counted by the crowd
    # 20 readers were promised 16 MiB each from generators: porch paused them instead.
    assert worker_rss_bytes(server) < 20 * BIG_KIB * 1024 // 2


def test_50_trickling_uploads_into_one_inline_worker(
    start_porch: StartPorch, crowd: SlowCrowd
) -> None:
    """The judging scenario: 50 uploads trickling into a --threads 1 worker, then normal
    requests. A /sleep that does hold the one app thread shows the probe would notice."""
    server = start_porch(*BULK_APP, *SLOW_FLAGS, "--threads", "1")
    for _ in range(50):
        crowd.add_uploader(server.url, UPLOAD_HEAD)
    crowd.start()
    crowd.wait_until(lambda: crowd.ticks >= 5, "half a second of trickling", 5)
    timings = probe_while_slow(server, crowd)
    assert max(timings) < PROMPT_SECONDS, timings
    assert statistics.median(timings) < 0.1, timings
    crowd.assert_all_still_waiting()

    sleeper = threading.Thread(target=timed_get, args=(server.url, "/sleep?s=1.5"), daemon=True)
    sleeper.start()
    ticks = crowd.ticks
    crowd.wait_until(lambda: crowd.ticks >= ticks + 2, "the /sleep request under way", 5)
    held = hello(server)
    sleeper.join(5)
    assert held >= PROMPT_SECONDS, f"the probe missed a held app thread ({held:.3f}s)"


@pytest.mark.parametrize(
    "as_list",
    [
        pytest.param(True, id="list-body"),
        pytest.param(False, id="generator-body"),
    ],
)
def test_slow_readers_of_large_responses_in_threads_mode(
    start_porch: StartPorch, crowd: SlowCrowd, as_list: bool
) -> None:
    """--threads 2: two slow readers of 16 MiB responses (far more than the kernel buffers),
    then an ordinary request. A list body is handed to the loop whole (the thread is free
    at once); a generator is iterated by the app thread, which must not wait for the reader."""
    server = start_porch(*BULK_APP, *SLOW_FLAGS, "--threads", "2")
    for _ in range(2):
        crowd.add_reader(server.url, bulk_request(BIG_KIB, as_list=as_list))
    crowd.start()
    crowd.wait_until(lambda: crowd.readers_answered() == 2, "both readers answered", 5)
    ticks = crowd.ticks
    crowd.wait_until(lambda: crowd.ticks >= ticks + 3, "the readers stalled", 5)
    assert hello(server, timeout=2 * PROMPT_SECONDS) < PROMPT_SECONDS
    assert crowd.problems == []


def read_response_head(sock: socket.socket) -> bytes:
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def read_to_close(sock: socket.socket) -> bytes:
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


@pytest.mark.parametrize("expect", [False, True], ids=["plain", "expect-100-continue"])
def test_oversized_body_is_refused_with_413_before_it_is_sent(
    start_porch: StartPorch, expect: bool
) -> None:
    server = start_porch(*BULK_APP, *SLOW_FLAGS, "--limit-request-body", "1M")
    head = b"POST /echo HTTP/1.1\r\nHost: big\r\nContent-Length: 104857600\r\n"
    head += b"Expect: 100-continue\r\n\r\n" if expect else b"\r\n"
    sock = open_connection(server.url, head)  # the head only: not one byte of the body
    sock.settimeout(5)
    with sock:
        response = read_response_head(sock)
        assert response.startswith(b"HTTP/1.1 413 "), response
        assert b"100 Continue" not in response
        # ... and the connection ends: a body still on its way would never be parsed.
        read_to_close(sock)
    assert hello(server) < PROMPT_SECONDS


def test_oversized_chunked_body_is_refused_with_413_while_reading(
    start_porch: StartPorch,
) -> None:
    server = start_porch(*BULK_APP, *SLOW_FLAGS, "--limit-request-body", "1M")
    block = 64 * 1024
    chunk = b"%x\r\n%s\r\n" % (block, b"y" * block)
    sock = open_connection(
        server.url, b"POST /echo HTTP/1.1\r\nHost: big\r\nTransfer-Encoding: chunked\r\n\r\n"
    )
    sock.settimeout(5)
    with sock:
        try:
            for _ in range(64):  # 4 MiB, four times the limit, if the server let it in
                sock.sendall(chunk)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the server closed once it had refused the body
        response = read_response_head(sock)
    assert response.startswith(b"HTTP/1.1 413 "), response
    assert hello(server) < PROMPT_SECONDS
