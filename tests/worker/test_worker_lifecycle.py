"""A worker's life through real signals: graceful stop, backlog drain, recycling, watchdog."""

from __future__ import annotations

import signal
import socket
import time
from collections.abc import Callable
from typing import Any

import pytest
from live_worker import Gate, LiveWorker, Mode, Probe, Serve, get, validated

from porch.errors import ExitCode

INLINE = pytest.mark.parametrize("mode", ["inline-uvloop", "inline-asyncio"], indirect=True)
THREADS = pytest.mark.parametrize("mode", ["threads-uvloop", "threads-asyncio"], indirect=True)


def gated_app(probe: Probe, gate: Gate) -> Any:
    """``/block`` waits for the gate; everything else answers at once."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/block":
            probe.emit("blocking")
            assert gate.wait(10), "the test never opened the gate"
        while environ["wsgi.input"].read(65536):
            pass
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [path.encode()]

    return validated(app)


def connection_refused(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    except ConnectionRefusedError:
        return True
    return False


def test_sigterm_finishes_in_flight_requests_and_closes_idle_ones(
    serve: Serve, probe: Probe, make_gate: Callable[[], Gate], mode: Mode
) -> None:
    gate = make_gate()
    worker = serve(gated_app(probe, gate))
    with worker.connect() as idle, worker.connect() as busy:
        idle.send(get("/idle"))
        assert idle.read_response().body == b"/idle"
        busy.send(get("/block"))
        probe.expect("blocking")
        started = time.monotonic()
        worker.send_signal(signal.SIGTERM)
        if mode.threads > 1:  # the loop is free: idle connections go while /block runs
            assert idle.at_eof(timeout=3)
        gate.open()
        assert idle.at_eof(timeout=3)
        response = busy.read_response()
        assert (response.status, response.body) == (200, b"/block")
        # Said in the response, also inline, where the loop waits for the app.
        assert response.header("Connection") == "close"
        assert busy.at_eof(timeout=3)
    assert worker.wait_exit() == ExitCode.OK
    assert time.monotonic() - started < 3
    assert connection_refused(worker.port)


def test_sigterm_with_nothing_to_do_exits_at_once(serve: Serve, probe: Probe) -> None:
    worker = serve(gated_app(probe, Gate()))
    started = time.monotonic()
    assert worker.stop(signal.SIGTERM) == ExitCode.OK
    assert time.monotonic() - started < 1


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGQUIT])
def test_fast_stop_signals(serve: Serve, probe: Probe, sig: int) -> None:
    worker = serve(gated_app(probe, Gate()))
    with worker.connect() as idle:
        idle.send(get("/x"))
        idle.read_response()
        started = time.monotonic()
        assert worker.stop(sig) == ExitCode.OK
        assert time.monotonic() - started < 1  # no grace for the idle connection


@INLINE
@pytest.mark.parametrize("trigger", ["sigterm", "max-requests"])
def test_connections_queued_in_the_backlog_are_served(
    serve: Serve, probe: Probe, make_gate: Callable[[], Gate], trigger: str
) -> None:
    # Inline: while the app blocks the loop, new connections wait in the kernel's
    # listen queue. Stopping must serve them, not drop them.
    gate = make_gate()
    settings = {"max_requests": 1} if trigger == "max-requests" else {}
    worker = serve(gated_app(probe, gate), **settings)
    first = worker.connect()
    first.send(get("/block"))
    probe.expect("blocking")
    queued = [worker.connect(kind) for kind in ("tcp", "unix", "tcp")]
    for i, conn in enumerate(queued):
        conn.send(get(f"/queued{i}"))
    if trigger == "sigterm":
        worker.send_signal(signal.SIGTERM)  # the stop runs once the app returns
    gate.open()
    assert first.read_response().body == b"/block"
    for i, conn in enumerate(queued):
        response = conn.read_response()
        assert (response.status, response.body) == (200, f"/queued{i}".encode())
        assert response.header("Connection") == "close"
        conn.close()
    first.close()
    assert worker.wait_exit() == ExitCode.OK


def test_max_requests_recycles_the_worker(serve: Serve, probe: Probe) -> None:
    worker = serve(gated_app(probe, Gate()), max_requests=3, max_requests_jitter=0)
    with worker.connect() as conn:
        for i in range(2):
            conn.send(get(f"/r{i}"))
            assert conn.read_response().status == 200
        assert worker.alive()
        conn.send(get("/r2", headers="Connection: close\r\n"))
        assert conn.read_response().status == 200
        assert conn.at_eof(timeout=3)
    assert worker.wait_exit() == ExitCode.OK
    assert "reached --max-requests" in worker.log()


# --- the hung-request watchdog ---------------------------------------------------------


def hanging_app(probe: Probe, gate: Gate) -> Any:
    def hanging_view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        path = environ["PATH_INFO"]
        if path == "/hang":
            probe.emit("hanging")
            gate.wait(10)  # the test never opens it: "hangs" past --timeout
        while environ["wsgi.input"].read(65536):
            pass
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [path.encode()]

    return validated(hanging_view)


@THREADS
def test_watchdog_in_threads_mode_answers_503_and_lets_others_finish(
    serve: Serve, probe: Probe, make_gate: Callable[[], Gate]
) -> None:
    worker = serve(hanging_app(probe, make_gate()), timeout=1.0)
    with worker.connect() as uploading, worker.connect() as hung:
        # A request still in flight (its body is on the way) when the watchdog fires.
        uploading.send(b"POST /upload HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345")
        hung.send(get("/hang"))
        probe.expect("hanging")
        response = hung.read_response()
        assert response.status == 503
        assert hung.at_eof()
        uploading.send(b"67890")
        response = uploading.read_response()
        assert (response.status, response.body) == (200, b"/upload")
    assert worker.wait_exit() == ExitCode.WORKER_TIMEOUT
    log = worker.log()
    assert "Request timeout: GET /hang" in log
    assert "in hanging_view" in log  # the app's frame in the reported stack
    assert "gate.wait(10)" in log


@INLINE
def test_watchdog_in_inline_mode_exits_the_worker(
    serve: Serve, probe: Probe, make_gate: Callable[[], Gate]
) -> None:
    worker = serve(hanging_app(probe, make_gate()), timeout=1.0)
    with worker.connect() as hung:
        hung.send(get("/hang?x=1"))
        probe.expect("hanging")
        assert worker.wait_exit(timeout=5) == ExitCode.WORKER_TIMEOUT
        data, _ = hung.read_to_eof()
        assert data == b""  # nothing could be sent: the loop was stuck in the app
    log = worker.log()
    assert "Request timeout: GET /hang" in log
    assert "the event loop thread" in log
    assert "in hanging_view" in log
    assert "gate.wait(10)" in log


@pytest.mark.parametrize("mode", ["inline-asyncio", "threads-uvloop"], indirect=True)
def test_watchdog_ignores_a_response_paused_on_a_slow_reader(serve: Serve, probe: Probe) -> None:
    # Waiting for the client to read is not the app hanging.
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return iter([b"s" * 65536] * 128)

    worker = serve(validated(app), timeout=0.5)
    with worker.connect(rcvbuf=16384) as slow:
        slow.send(get("/"))
        assert slow.read_head().status == 200
        time.sleep(0.8)
        received = len(slow.buf)
        while received < 65536 * 128:
            data = slow.sock.recv(1 << 20)
            assert data
            received += len(data)
    assert worker.alive()
    assert "Request timeout" not in worker.log()


@pytest.mark.parametrize("mode", ["inline-uvloop", "threads-asyncio"], indirect=True)
def test_watchdog_does_not_count_the_wait_when_a_response_resumes(
    serve: Serve, probe: Probe
) -> None:
    # The client reads nothing for 2 s (past --timeout 1), then everything. The
    # app works 0.5 s in all, most of it after the pause: measured from the
    # request's start, the resumed iteration would be 2.5 s old and reported.
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])

        def body() -> Any:
            yield from [b"f" * (1 << 20)] * 8  # more than the socket buffers take
            for _ in range(10):
                time.sleep(0.05)  # the app's own work, 0.5 s in all
                yield b"s" * 65536

        return body()

    read_after_a_pause(serve(validated(app), timeout=1.0))


@pytest.mark.parametrize("mode", ["threads-uvloop"], indirect=True)
def test_watchdog_does_not_count_a_write_blocked_on_a_slow_reader(serve: Serve) -> None:
    # The legacy write() blocks its app thread while the client is behind; the
    # 2 s it waits are not the app's time once it goes on.
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "application/octet-stream")])
        for _ in range(8):
            write(b"f" * (1 << 20))
        for _ in range(10):
            time.sleep(0.05)
            write(b"s" * 65536)
        return []

    read_after_a_pause(serve(validated(app), timeout=1.0))


def read_after_a_pause(worker: LiveWorker) -> None:
    """Read a 8 MiB + 640 KiB response, leaving it unread for 2 s after its head."""
    with worker.connect(rcvbuf=16384) as slow:
        slow.send(get("/"))
        assert slow.read_head().status == 200
        time.sleep(2.0)
        received = len(slow.buf)
        while received < 8 * (1 << 20) + 10 * 65536:
            data = slow.sock.recv(1 << 20)
            assert data
            received += len(data)
    assert worker.alive()
    assert "Request timeout" not in worker.log()
