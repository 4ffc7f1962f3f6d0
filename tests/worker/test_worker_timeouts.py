"""Deadlines and back-pressure through a real worker: slow clients never hold the worker."""

from __future__ import annotations

import select
import threading
import time
from collections.abc import Iterator
from typing import Any

import pytest
from live_worker import Probe, Serve, get, validated

# Deadline logic is loop-independent: cover each loop and each mode once.
TIMING_MODES = pytest.mark.parametrize("mode", ["inline-uvloop", "threads-asyncio"], indirect=True)
TIMEOUT_S = 0.5
# A deadline may fire up to one sweep interval (TIMEOUT_S / 4) late; generous for
# loaded machines.
LATE_S = 1.0


def _hello(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    while environ["wsgi.input"].read(65536):
        pass
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"hello"]


hello = validated(_hello)


def assert_cut_in_time(started: float, timeout: float = TIMEOUT_S) -> None:
    elapsed = time.monotonic() - started
    assert timeout * 0.7 <= elapsed <= timeout + LATE_S, f"cut after {elapsed:.2f}s"


@TIMING_MODES
def test_half_a_head_then_silence_gets_408(serve: Serve) -> None:
    worker = serve(hello, header_timeout=TIMEOUT_S)
    with worker.connect() as conn:
        started = time.monotonic()
        conn.send(b"GET / HTTP/1.1\r\nHost: t\r\nX-Half: ")
        response = conn.read_response()
        assert response.status == 408
        assert conn.at_eof()
        assert_cut_in_time(started)


@TIMING_MODES
def test_a_stalled_body_gets_408(serve: Serve) -> None:
    worker = serve(hello, body_timeout=TIMEOUT_S)
    with worker.connect() as conn:
        conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        started = time.monotonic()
        response = conn.read_response()
        assert response.status == 408
        assert conn.at_eof()
        assert_cut_in_time(started)


@TIMING_MODES
def test_a_slow_but_steady_body_is_not_cut(serve: Serve) -> None:
    # body_timeout is about silence, not total time (a slow upload is legitimate).
    worker = serve(hello, body_timeout=1.0)
    with worker.connect() as conn:
        conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 3\r\n\r\n")
        for byte in b"abc":  # 1.2 s in all, never more than 0.4 s of silence
            time.sleep(0.4)
            conn.send(bytes([byte]))
        assert conn.read_response().body == b"hello"


@TIMING_MODES
def test_an_idle_keep_alive_connection_is_closed(serve: Serve) -> None:
    worker = serve(hello, keep_alive=TIMEOUT_S)
    with worker.connect() as conn:
        conn.send(get())
        assert conn.read_response().status == 200
        started = time.monotonic()
        assert conn.at_eof(timeout=TIMEOUT_S + LATE_S + 1)
        assert conn.buf == b""  # closed silently: no 408 to an idle connection
        assert_cut_in_time(started)


@TIMING_MODES
def test_each_request_renews_the_keep_alive_time(serve: Serve) -> None:
    worker = serve(hello, keep_alive=0.6, header_timeout=0.6)
    with worker.connect() as conn:
        for _ in range(3):  # 1.05 s in all, 0.35 s idle each time
            conn.send(get())
            assert conn.read_response().status == 200
            time.sleep(0.35)


def test_keep_alive_0_closes_after_each_response(serve: Serve) -> None:
    worker = serve(hello, keep_alive=0)
    with worker.connect() as conn:
        conn.send(get())
        response = conn.read_response()
        assert response.header("Connection") == "close"
        assert conn.at_eof()


@TIMING_MODES
def test_slowloris_is_cut_at_the_header_timeout(serve: Serve) -> None:
    # One header byte every 0.1 s: the header deadline is not renewed per byte.
    worker = serve(hello, header_timeout=TIMEOUT_S)
    head = b"GET / HTTP/1.1\r\nHost: t\r\nX-Slow: " + b"s" * 100
    with worker.connect() as conn:
        started = time.monotonic()
        for byte in head:
            try:
                conn.send(bytes([byte]))
            except (BrokenPipeError, ConnectionResetError):
                break
            if select.select([conn.sock], [], [], 0.1)[0]:
                break  # the server answered
            assert time.monotonic() - started < TIMEOUT_S + LATE_S + 1, "never cut"
        assert conn.read_response().status == 408
        assert_cut_in_time(started)


@TIMING_MODES
def test_a_client_that_stops_reading_is_dropped_after_write_timeout(
    serve: Serve, probe: Probe
) -> None:
    class Endless:
        def __iter__(self) -> Iterator[bytes]:
            block = b"w" * 65536
            while True:
                yield block

        def close(self) -> None:
            probe.emit("closed")

    def app(environ: dict[str, Any], start_response: Any) -> Endless:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return Endless()

    worker = serve(validated(app), write_timeout=TIMEOUT_S)
    with worker.connect(rcvbuf=16384) as conn:
        conn.send(get())
        assert conn.read_head().status == 200
        started = time.monotonic()
        probe.expect("closed", timeout=TIMEOUT_S + LATE_S + 2)
        assert time.monotonic() - started <= TIMEOUT_S + LATE_S
        _, _ = conn.read_to_eof()  # the server dropped us mid-body
    assert "write timeout" in worker.log()


@TIMING_MODES
def test_a_closing_connection_whose_client_reads_nothing_is_dropped(serve: Serve) -> None:
    # The whole response is handed to the transport and the connection closes
    # gracefully: the close must not wait forever for a client that never reads.
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"c" * (16 << 20)]

    worker = serve(validated(app), write_timeout=TIMEOUT_S)
    with worker.connect(rcvbuf=16384) as conn:
        conn.send(get(headers="Connection: close\r\n"))
        assert conn.read_head().status == 200
        time.sleep(TIMEOUT_S + LATE_S)
        data, _ = conn.read_to_eof()  # the server gave up: EOF or reset long before 16 MiB
        assert len(conn.buf) + len(data) < 16 << 20
    assert "write timeout" in worker.log()


# --- back-pressure -------------------------------------------------------------------------

CHUNK = 65536
CHUNKS = 512  # 32 MiB if nothing paused the producer


def streaming_app(probe: Probe) -> Any:
    produced = [0]

    def stream() -> Iterator[bytes]:
        block = b"z" * CHUNK
        for _ in range(CHUNKS):
            produced[0] += 1
            yield block

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/count":
            return [b"%d" % produced[0]]
        probe.emit("streaming")
        return stream()

    return validated(app)


def test_a_slow_reader_pauses_the_app_and_blocks_no_one(serve: Serve, probe: Probe) -> None:
    worker = serve(streaming_app(probe))
    with worker.connect(rcvbuf=65536) as slow:
        slow.send(get("/big"))
        assert slow.read_head().status == 200
        probe.expect("streaming")
        time.sleep(0.5)  # time for an unpaused producer to run far ahead
        # Other clients are served while the slow one reads nothing (also inline),
        # and the producer is paused: at most the kernel's socket buffers (which
        # autotune up to tcp_wmem's 4 MiB) plus the high-water marks, not 32 MiB.
        produced = int(worker.request(get("/count")).body)
        assert produced < CHUNKS // 4, f"{produced} chunks produced for a client reading nothing"
        received = len(slow.buf)
        while received < CHUNK * CHUNKS:
            data = slow.sock.recv(1 << 20)
            assert data
            received += len(data)  # (chunk framing included, so it ends a bit later)
        assert int(worker.request(get("/count")).body) == CHUNKS


@pytest.mark.parametrize("mode", ["threads-uvloop", "threads-asyncio"], indirect=True)
def test_a_slow_app_does_not_block_other_requests_in_threads_mode(
    serve: Serve, probe: Probe
) -> None:
    release = threading.Event()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/slow":
            probe.emit("slow started")
            release.wait(10)
        elif path == "/release":
            release.set()
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [path.encode()]

    worker = serve(validated(app))
    with worker.connect() as slow:
        slow.send(get("/slow"))
        probe.expect("slow started")
        for _ in range(3):
            assert worker.request(get("/fast")).body == b"/fast"
        slow.sock.settimeout(0.2)
        with pytest.raises(TimeoutError):
            slow.sock.recv(1)  # still running
        slow.sock.settimeout(5)
        assert worker.request(get("/release")).body == b"/release"
        assert slow.read_response().body == b"/slow"
