"""--no-request-buffering: the app runs while its request body arrives (real sockets, all modes)."""

from __future__ import annotations

import hashlib
import os
import socket
import threading
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from live_worker import Gate, Probe, Serve, get, validated

import porch
from porch.errors import BodyUnavailable
from porch.worker.body_stream import BodyStream
from porch.worker.connection import HTTPConnection

STREAMING = {"request_buffering": False}
CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
ONE_SOCKET_READ = 256 * 1024  # the most uvloop or asyncio hand to data_received at once
MAX_QUEUED = 256 * 1024 + ONE_SOCKET_READ  # docs/deployment.md: at most 256K unread, one read more


def post(path: str = "/", *, length: int | None = None, headers: str = "") -> bytes:
    """A POST head: Content-Length ``length``, or chunked when None."""
    framing = "Transfer-Encoding: chunked" if length is None else f"Content-Length: {length}"
    return f"POST {path} HTTP/1.1\r\nHost: t\r\n{framing}\r\n{headers}\r\n".encode()


def chunk(data: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(data), data)


def read_all(stream: Any, size: int = 4096) -> bytes:
    body = b""
    while part := stream.read(size):
        body += part
    return body


def echo_app(probe: Probe) -> Any:
    """Reads the body in two steps (reporting the first) and answers with what it got."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        first = stream.read(int(environ.get("HTTP_X_FIRST", "0")))
        probe.emit(f"first {first.decode()}")
        rest = read_all(stream)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got " + first + rest]

    return validated(app)


def failing_reader_app(probe: Probe) -> Any:
    """Reads until the body fails, reports the error, and lets it propagate (a 408)."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        received = 0
        try:
            while part := stream.read(1024):
                received += len(part)
                probe.emit(f"received {received}")
        except BodyUnavailable as exc:
            probe.emit(f"error after {received}: {exc}")
            raise
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"complete"]

    return app


def ignoring_app(probe: Probe) -> Any:
    """Answers without reading the body (or only its first bytes, with X-Read)."""

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        read = environ["wsgi.input"].read(int(environ.get("HTTP_X_READ", "0")))
        probe.emit(f"answered {environ['PATH_INFO']} after reading {len(read)}")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    return validated(app)


# --- streaming: the app sees the body as it arrives --------------------------------------


def test_the_app_reads_the_first_half_before_the_client_sends_the_rest(
    serve: Serve, probe: Probe
) -> None:
    worker = serve(echo_app(probe), **STREAMING)
    with worker.connect() as conn:
        conn.send(post(length=11, headers="X-First: 5\r\n") + b"hello")
        probe.expect("first hello")  # the rest is not sent yet: nothing was buffered
        conn.send(b" world")
        response = conn.read_response()
        assert response.status == 200
        assert response.body == b"got hello world"
        conn.send(get("/next"))  # keep-alive goes on
        assert conn.read_response().status == 200


def test_a_chunked_body_streams_and_its_trailers_are_dropped(serve: Serve, probe: Probe) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        probe.emit(f"first {stream.read(5).decode()}")
        rest = read_all(stream)
        trailer = environ.get("HTTP_X_CHECKSUM", "none")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got hello" + rest + b" trailer " + trailer.encode()]

    worker = serve(validated(app), **STREAMING)
    with worker.connect() as conn:
        conn.send(post(headers="Trailer: X-Checksum\r\n") + chunk(b"hel") + chunk(b"lo"))
        probe.expect("first hello")
        conn.send(chunk(b" wor") + chunk(b"ld") + b"0\r\nX-Checksum: abc\r\n\r\n")
        assert conn.read_response().body == b"got hello world trailer none"
        conn.send(post(length=2) + b"ok")
        probe.expect("first ok")


def test_lines_and_iteration_across_pieces(serve: Serve, probe: Probe) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        first = stream.readline()
        probe.emit(f"line {first!r}")
        lines = [first, *stream]
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"|".join(lines)]

    worker = serve(validated(app), **STREAMING)
    with worker.connect() as conn:
        conn.send(post() + chunk(b"one\ntw"))
        probe.expect("line b'one\\n'")
        conn.send(chunk(b"o\nthr") + chunk(b"ee") + b"0\r\n\r\n")
        assert conn.read_response().body == b"one\n|two\n|three"


def test_a_streamed_response_can_echo_the_body_line_by_line(serve: Serve) -> None:
    # Full duplex: each echoed line arrives before the client sends the next one.
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for line in environ["wsgi.input"]:
            yield b"echo " + line

    worker = serve(validated(app), **STREAMING)
    with worker.connect() as conn:
        conn.send(post())
        conn.send(chunk(b"ping 1\n"))
        response = conn.read_head()
        assert response.header("Transfer-Encoding") == "chunked"
        for n in range(1, 4):
            size = int(conn.read_until(b"\r\n"), 16)
            assert conn.read_exact(size + 2) == b"echo ping %d\n\r\n" % n
            if n < 3:
                conn.send(chunk(b"ping %d\n" % (n + 1)))
        conn.send(b"0\r\n\r\n")
        assert conn.read_until(b"0\r\n\r\n") == b"0\r\n\r\n"
        conn.send(get("/after"))
        assert conn.read_response().status == 200


def test_expect_100_continue_is_sent_on_the_first_read(serve: Serve, probe: Probe) -> None:
    worker = serve(echo_app(probe), **STREAMING)
    with worker.connect() as conn:
        conn.send(post(length=11, headers="Expect: 100-continue\r\n"))
        assert conn.read_until(b"\r\n\r\n") == CONTINUE
        conn.send(b"hello world")
        assert conn.read_response().body == b"got hello world"


def test_no_100_and_a_close_when_the_app_does_not_read(serve: Serve, probe: Probe) -> None:
    worker = serve(ignoring_app(probe), **STREAMING)
    with worker.connect() as conn:
        conn.send(post("/refused", length=11, headers="Expect: 100-continue\r\n"))
        response = conn.read_response()
        assert response.status == 200 and response.body == b"/refused"
        # The client still waits for its 100: the body will not come, so no keep-alive.
        assert conn.at_eof()


# --- back-pressure: memory stays bounded ---------------------------------------------------


@pytest.fixture
def queue_watch(monkeypatch: pytest.MonkeyPatch) -> dict[str, int]:
    """Record, in the worker (forked after the patch), the most body bytes ever queued and
    how often the connection paused the socket for a streamed body."""
    seen = {"max_queued": 0, "pauses": 0}
    real_feed = BodyStream.feed
    real_pause = HTTPConnection.pause_body_reading

    def feed(self: BodyStream, data: bytes) -> None:
        real_feed(self, data)
        seen["max_queued"] = max(seen["max_queued"], self.queued_bytes)

    def pause_body_reading(self: HTTPConnection, pause: bool) -> None:
        seen["pauses"] += pause
        real_pause(self, pause)

    monkeypatch.setattr(BodyStream, "feed", feed)
    monkeypatch.setattr(HTTPConnection, "pause_body_reading", pause_body_reading)
    return seen


def peak_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1])
    raise AssertionError("no VmHWM in /proc/PID/status")


def test_a_large_upload_to_a_slow_app_is_held_back_not_buffered(
    serve: Serve, probe: Probe, queue_watch: dict[str, int], mode: Any
) -> None:
    size = 20 * 1024 * 1024

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        digest = hashlib.sha256()
        received = 0
        time.sleep(0.3)  # a slow consumer: busy before it reads, then slow to read
        while part := stream.read(64 * 1024):
            digest.update(part)
            received += len(part)
            time.sleep(0.001)
        if received == size:  # not the warm-up request
            probe.emit(f"max queued {queue_watch['max_queued']} pauses {queue_watch['pauses']}")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [f"{received} {digest.hexdigest()}".encode()]

    worker = serve(validated(app), **STREAMING)
    body = os.urandom(1024 * 1024) * 20
    assert len(body) == size
    worker.request(post(length=1) + b"x")  # warm up before taking the baseline
    baseline = peak_rss_kib(worker.pid)
    with worker.connect(timeout=30.0) as conn:
        sender = threading.Thread(target=conn.send, args=(post(length=size) + body,))
        sender.start()
        response = conn.read_response()
        sender.join()
    assert response.body == f"{size} {hashlib.sha256(body).hexdigest()}".encode()
    line = probe.expect_prefix("max queued ")
    max_queued, pauses = int(line.split()[2]), int(line.split()[4])
    print(f"max queued {max_queued}, socket paused {pauses} times")
    if not porch.compiled():  # compiled callers never see the patched methods: no counts
        assert max_queued <= MAX_QUEUED
        if mode.threads > 1:  # the loop reads the socket: it had to stop
            assert pauses > 0
    assert peak_rss_kib(worker.pid) - baseline < 8 * 1024  # far below the 20 MiB sent


# --- failures: client gone, timeout, too large -----------------------------------------------


def test_a_client_gone_mid_body_is_an_error_in_the_app_and_others_are_served(
    serve: Serve, probe: Probe
) -> None:
    worker = serve(failing_reader_app(probe), **STREAMING)
    conn = worker.connect()
    conn.send(post(length=100_000) + b"x" * 1024)
    probe.expect("received 1024")
    conn.close()
    line = probe.expect_prefix("error after 1024: ")
    assert "closed" in line or "failed" in line
    assert worker.request(post(length=3) + b"abc").body == b"complete"
    assert "Error handling request" not in worker.log()


def test_a_stalled_body_times_out_with_408(serve: Serve, probe: Probe) -> None:
    worker = serve(failing_reader_app(probe), body_timeout=0.5, **STREAMING)
    with worker.connect() as conn:
        conn.send(post(length=2000) + b"x" * 1024)  # then stall
        response = conn.read_response()
        assert response.status == 408
        assert conn.at_eof()
    assert probe.expect_prefix("error after 1024: ").endswith(
        "timed out waiting for the request body"
    )
    assert worker.request(post(length=3) + b"abc").body == b"complete"


def test_a_chunked_body_over_the_limit_gets_413_while_the_app_reads(
    serve: Serve, probe: Probe
) -> None:
    worker = serve(failing_reader_app(probe), limit_request_body=3000, **STREAMING)
    with worker.connect() as conn:
        conn.send(post() + chunk(b"a" * 1024))
        probe.expect("received 1024")
        conn.send(chunk(b"b" * 2500))
        response = conn.read_response()
        assert response.status == 413
        assert conn.at_eof()
    line = probe.expect_prefix("error after ")
    assert line == "error after 2048: request body too large"  # the app never saw more


def test_a_client_half_closing_mid_body_gets_408(serve: Serve, probe: Probe) -> None:
    worker = serve(failing_reader_app(probe), **STREAMING)
    with worker.connect() as conn:
        conn.send(post(length=5000) + b"x" * 1024)
        probe.expect("received 1024")
        conn.sock.shutdown(socket.SHUT_WR)  # the rest will never come
        assert conn.read_response().status == 408  # a half-closed client still reads
        assert conn.at_eof()
    assert probe.expect_prefix("error after 1024: ").endswith("closed the connection mid-body")


def test_a_malformed_chunked_body_gets_400_while_the_app_reads(serve: Serve, probe: Probe) -> None:
    worker = serve(failing_reader_app(probe), **STREAMING)
    with worker.connect() as conn:
        conn.send(post() + chunk(b"a" * 1024))
        probe.expect("received 1024")
        conn.send(b"zz\r\nbad\r\n")
        assert conn.read_response().status == 400
        assert conn.at_eof()
    probe.expect_prefix("error after 1024: ")


def test_a_body_error_after_the_response_began_aborts(serve: Serve, probe: Probe) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        for line in environ["wsgi.input"]:
            yield b"echo " + line

    worker = serve(validated(app), limit_request_body=100, **STREAMING)
    with worker.connect() as conn:
        conn.send(post() + chunk(b"ping\n"))
        assert conn.read_head().status == 200
        assert conn.read_until(b"echo ping\n\r\n").endswith(b"echo ping\n\r\n")
        conn.send(chunk(b"x" * 200))  # past the limit: no 413 can follow a 200
        data, _ = conn.read_to_eof()
        assert b"413" not in data
        assert not data.endswith(b"0\r\n\r\n")  # truncated, never "complete"


class _HeldClose:
    """A response of one empty item whose close() waits for the test: in threads mode the
    head is framed (``exchange.framing`` set) but not yet handed to the loop meanwhile."""

    def __init__(self, probe: Probe, gate: Gate) -> None:
        self.probe, self.gate = probe, gate

    def __iter__(self) -> Iterator[bytes]:
        return iter([b""])

    def close(self) -> None:
        self.probe.emit("closing")
        self.gate.wait()


@pytest.mark.parametrize("mode", ["threads-uvloop", "threads-asyncio"], indirect=True)
def test_a_body_error_before_the_framed_head_is_written_gets_its_error_response(
    serve: Serve, probe: Probe, make_gate: Callable[[], Gate]
) -> None:
    # The app thread has framed its head, which has not reached the transport, when the
    # loop refuses the body: nothing went out, so the 413 can (and must) be answered.
    gate = make_gate()

    def app(environ: dict[str, Any], start_response: Any) -> _HeldClose:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return _HeldClose(probe, gate)

    worker = serve(app, limit_request_body=100, **STREAMING)
    with worker.connect() as conn:
        conn.send(post() + chunk(b"a" * 10))
        probe.expect("closing")
        conn.send(chunk(b"x" * 200))
        response = conn.read_response()
        gate.open()
        assert response.status == 413
        assert conn.at_eof()
    assert worker.request(get("/")).status == 200


def test_a_content_length_over_the_limit_is_refused_before_the_app(
    serve: Serve, probe: Probe
) -> None:
    worker = serve(failing_reader_app(probe), limit_request_body=1000, **STREAMING)
    assert worker.request(post(length=1001) + b"x" * 1001).status == 413
    assert probe.drain() == []


# --- what the app does not read -----------------------------------------------------------------


@pytest.mark.parametrize("chunked", [False, True], ids=["content-length", "chunked"])
@pytest.mark.parametrize("read", [0, 3])
def test_an_unread_body_is_discarded_and_the_connection_kept(
    serve: Serve, probe: Probe, chunked: bool, read: int
) -> None:
    worker = serve(ignoring_app(probe), **STREAMING)
    body = b"0123456789" * 3000
    with worker.connect() as conn:
        extra = f"X-Read: {read}\r\n"
        if chunked:
            conn.send(post("/first", headers=extra) + chunk(body[:100]))
        else:
            conn.send(post("/first", length=len(body), headers=extra) + body[:100])
        assert conn.read_response().body == b"/first"  # answered before the body is sent
        probe.expect(f"answered /first after reading {read}")
        rest = body[100:]
        conn.send(chunk(rest) + b"0\r\n\r\n" if chunked else rest)
        conn.send(post("/second", length=5) + b"hello")
        assert conn.read_response().body == b"/second"
        conn.send(get("/third"))
        assert conn.read_response().body == b"/third"


def test_a_large_unread_body_is_discarded_without_holding_memory(
    serve: Serve, probe: Probe, queue_watch: dict[str, int]
) -> None:
    worker = serve(ignoring_app(probe), **STREAMING)
    size = 8 * 1024 * 1024
    with worker.connect(timeout=30.0) as conn:
        sender = threading.Thread(
            target=conn.send, args=(post("/big", length=size) + bytes(size) + get("/next"),)
        )
        sender.start()
        assert conn.read_response().body == b"/big"
        assert conn.read_response().body == b"/next"
        sender.join()
    assert worker.request(post("/report", length=0)).status == 200
    assert queue_watch["max_queued"] <= MAX_QUEUED


def test_a_client_that_stalls_the_unread_rest_is_dropped(serve: Serve, probe: Probe) -> None:
    worker = serve(ignoring_app(probe), body_timeout=0.5, **STREAMING)
    with worker.connect() as conn:
        conn.send(post("/stalled", length=100) + b"x" * 10)
        assert conn.read_response().body == b"/stalled"
        assert conn.at_eof()  # no 408 after the answer: the connection just ends
        assert conn.buf == b""


def test_a_pipelined_request_after_a_streamed_body(serve: Serve, probe: Probe) -> None:
    worker = serve(echo_app(probe), **STREAMING)
    with worker.connect() as conn:
        conn.send(
            post(length=5, headers="X-First: 2\r\n")
            + b"hello"
            + post("/chunked", headers="X-First: 1\r\n")
            + chunk(b"ab")
            + b"0\r\n\r\n"
            + get("/last")
        )
        assert conn.read_response().body == b"got hello"
        assert conn.read_response().body == b"got ab"
        assert conn.read_response().body == b"got "


def test_a_pipelined_request_after_an_unread_body(serve: Serve, probe: Probe) -> None:
    worker = serve(ignoring_app(probe), **STREAMING)
    with worker.connect() as conn:
        conn.send(post("/a", length=5) + b"hello" + post("/b") + chunk(b"xy") + b"0\r\n\r\n")
        conn.send(get("/c"))
        assert [conn.read_response().body for _ in range(3)] == [b"/a", b"/b", b"/c"]


def test_connection_close_after_an_unread_body_closes(serve: Serve, probe: Probe) -> None:
    worker = serve(ignoring_app(probe), **STREAMING)
    with worker.connect() as conn:
        conn.send(post("/bye", length=100, headers="Connection: close\r\n") + b"x" * 100)
        assert conn.read_response().body == b"/bye"
        assert conn.at_eof()


# --- the watchdog counts the app, not the client -----------------------------------------------


@pytest.mark.parametrize("mode", ["threads-uvloop", "threads-asyncio"], indirect=True)
def test_a_slow_upload_is_not_a_hung_request(serve: Serve, probe: Probe) -> None:
    worker = serve(failing_reader_app(probe), timeout=1.0, **STREAMING)
    with worker.connect() as conn:
        conn.send(post(length=8))
        for _ in range(8):  # 8 bytes over ~2 s, well past --timeout 1
            time.sleep(0.25)
            conn.send(b"x")
        assert conn.read_response().body == b"complete"
    assert worker.alive()
    assert "Request timeout" not in worker.log()


# --- the default stays buffered ---------------------------------------------------------------


def test_buffering_is_the_default(serve: Serve, probe: Probe) -> None:
    worker = serve(echo_app(probe))
    with worker.connect() as conn:
        conn.send(post(length=11, headers="X-First: 5\r\n") + b"hello")
        with pytest.raises(AssertionError):  # the app is not called before the body is complete
            probe.expect("first hello", timeout=0.3)
        conn.send(b" world")
        assert conn.read_response().body == b"got hello world"
    probe.expect("first hello")


@pytest.mark.parametrize("mode", ["threads-uvloop", "threads-asyncio"], indirect=True)
def test_parked_slow_downloads_do_not_count_for_load_shedding(serve: Serve) -> None:
    # --request-queue sheds when the app threads are all taken and N requests wait.
    # An iteration parked until its client reads holds no thread: however many
    # slow downloads there are, a new request is served.
    piece = b"d" * 65536

    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        if environ["PATH_INFO"] == "/big":
            for _ in range(512):  # 32 MiB: more than any socket buffer holds
                yield piece
        else:
            yield b"small"

    # A request may be shed while the iterations before it have not parked yet.
    # 4 threads: shed at 5. The write timeout must not free the slots meanwhile.
    worker = serve(validated(app), request_queue=1, write_timeout=30.0, expect_errors=True)
    slow = []
    for _ in range(6):
        conn = worker.connect(rcvbuf=4096)
        conn.send(get("/big"))
        assert conn.read_head().status == 200
        slow.append(conn)
        # Its iteration parks once the client falls behind: bounded retries, no sleeps.
        deadline = time.monotonic() + 3
        while worker.request(get("/small")).status != 200:
            assert time.monotonic() < deadline, "shed while the app threads were idle"
    assert [worker.request(get("/small")).status for _ in range(5)] == [200] * 5
    for conn in slow:
        conn.close()
