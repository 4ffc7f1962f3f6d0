"""PEP 3333 behaviour that needs a server: write(), exc_info, close(), errors, file_wrapper."""

from __future__ import annotations

import hashlib
import io
import os
import socket
import struct
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from live_worker import Probe, Serve, get, validated, validated_passthrough

TEXT = [("Content-Type", "text/plain")]


class Tracked:
    """A response iterable that reports its close() through the probe."""

    def __init__(self, probe: Probe, name: str, pieces: Iterator[bytes]) -> None:
        self.probe, self.name, self.pieces = probe, name, pieces

    def __iter__(self) -> Iterator[bytes]:
        return self.pieces

    def close(self) -> None:
        self.probe.emit(f"closed {self.name}")


def test_write_callable_then_iterable(serve: Serve) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"first,")
        write(b"second,")
        return [b"third"]

    worker = serve(validated(app))
    with worker.connect() as conn:
        conn.send(get() + get())
        for _ in range(2):
            response = conn.read_response()
            assert response.header("Transfer-Encoding") == "chunked"
            assert response.body == b"first,second,third"


def test_write_callable_with_content_length(serve: Serve) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [*TEXT, ("Content-Length", "10")])
        write(b"01234")
        write(b"56789")
        return []

    worker = serve(validated(app))
    with worker.connect() as conn:
        conn.send(get() + get())
        assert [conn.read_response().body for _ in range(2)] == [b"0123456789"] * 2


def test_exc_info_replaces_the_status_before_headers_are_sent(serve: Serve) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK", TEXT)
        try:
            raise ValueError("computing the body failed")
        except ValueError:
            start_response("503 Service Unavailable", TEXT, sys.exc_info())
        return [b"sorry"]

    worker = serve(validated(app))
    with worker.connect() as conn:
        conn.send(get())
        response = conn.read_response()
        assert (response.status, response.body) == (503, b"sorry")
        conn.send(get())  # the connection survives
        assert conn.read_response().status == 503


def test_exc_info_after_headers_were_sent_aborts_the_response(serve: Serve, probe: Probe) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        write = start_response("200 OK", TEXT)
        write(b"partial")
        try:
            raise KeyError("late failure")
        except KeyError:
            # PEP 3333: too late to change the head, start_response re-raises.
            start_response("500 Internal Server Error", TEXT, sys.exc_info())
        yield b"never"

    worker = serve(validated(app), expect_errors=True)
    with worker.connect() as conn:
        conn.send(get("/late"))
        data, _ = conn.read_to_eof()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert b"7\r\npartial\r\n" in data
    assert not data.endswith(b"0\r\n\r\n")  # no last chunk: the client knows it is truncated
    assert "KeyError: 'late failure'" in worker.log()


def test_app_exception_is_a_500_and_a_logged_traceback(serve: Serve) -> None:
    def failing_view(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/boom":
            raise ZeroDivisionError("the app divided by zero")
        start_response("200 OK", TEXT)
        return [b"fine"]

    worker = serve(validated(failing_view), expect_errors=True)
    with worker.connect() as conn:
        conn.send(get("/boom"))
        response = conn.read_response()
        assert response.status == 500
        assert b"Traceback" not in response.body  # nothing about the app leaks
        conn.send(get("/ok"))  # keep-alive survives an app error before the head
        assert conn.read_response().body == b"fine"
    log = worker.log()
    assert "Error handling request GET /boom" in log
    assert "Traceback (most recent call last)" in log
    assert "in failing_view" in log
    assert "ZeroDivisionError: the app divided by zero" in log
    assert log.count("ZeroDivisionError: the app divided by zero") == 1  # logged once


@pytest.mark.parametrize("raised", [SystemExit(3), KeyboardInterrupt()], ids=["exit", "interrupt"])
def test_an_app_that_exits_gets_a_500_and_the_worker_serves_on(
    serve: Serve, probe: Probe, raised: BaseException, make_gate: Any
) -> None:
    # sys.exit() in a view (argparse or click on bad input) is one request's error:
    # inline, it must not end the worker and its other clients' requests; on a pool
    # thread, it must not leave its client waiting forever.
    gate = make_gate()

    def app(environ: dict[str, Any], start_response: Any) -> Any:
        path = environ["PATH_INFO"]
        if path == "/exit":
            raise raised
        if path == "/exit-mid":

            def pieces() -> Iterator[bytes]:
                yield b"first"
                raise raised

            start_response("200 OK", TEXT)
            return pieces()
        if path == "/slow":
            probe.emit("slow started")
            gate.wait()
        start_response("200 OK", TEXT)
        return [path.encode()]

    worker = serve(validated(app), expect_errors=True)
    slow = worker.connect()
    if worker.config.threads > 1:  # inline, the loop would wait for the slow app first
        slow.send(get("/slow"))
        probe.expect("slow started")
    with worker.connect() as conn:
        conn.send(get("/exit"))
        assert conn.read_response().status == 500
        conn.send(get("/after"))
        assert conn.read_response().body == b"/after"
    with worker.connect() as conn:
        conn.send(get("/exit-mid"))
        data, _ = conn.read_to_eof()
        assert data.startswith(b"HTTP/1.1 200 OK\r\n") and not data.endswith(b"0\r\n\r\n")
    gate.open()
    if worker.config.threads > 1:
        assert slow.read_response().body == b"/slow"  # the other client was not lost
    slow.close()
    assert worker.request(get("/again")).body == b"/again"
    assert "Error handling request GET /exit" in worker.log()
    assert f"{type(raised).__name__}" in worker.log()


def test_500_to_http10_closes(serve: Serve) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        raise RuntimeError("boom")

    worker = serve(validated(app), expect_errors=True)
    with worker.connect() as conn:
        conn.send(b"GET / HTTP/1.0\r\n\r\n")
        response = conn.read_response()
        assert response.status == 500
        assert response.header("Connection") == "close"
        assert conn.at_eof()


def test_exception_mid_iteration_aborts_and_closes(serve: Serve, probe: Probe) -> None:
    def pieces() -> Iterator[bytes]:
        yield b"first"
        raise OSError("the data source went away")

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)
        return Tracked(probe, "mid", pieces())

    worker = serve(validated(app), expect_errors=True)
    with worker.connect() as conn:
        conn.send(get("/mid") + get("/pipelined"))
        data, _ = conn.read_to_eof()
    assert data.startswith(b"HTTP/1.1 200 OK\r\n")
    assert data.endswith(b"5\r\nfirst\r\n")  # incomplete chunked body, then the connection dies
    assert data.count(b"HTTP/1.1") == 1  # the pipelined request was not answered
    probe.expect("closed mid")
    assert "OSError: the data source went away" in worker.log()


def test_close_is_called_for_every_result_kind(serve: Serve, probe: Probe) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        path = environ["PATH_INFO"]
        start_response("200 OK", TEXT)
        if path == "/empty":
            return Tracked(probe, path, iter(()))
        return Tracked(probe, path, iter([b"a", b"b"]))

    worker = serve(validated(app))
    with worker.connect() as conn:
        conn.send(get("/full") + get("/empty"))
        assert conn.read_response().body == b"ab"
        assert conn.read_response().body == b""
    probe.expect("closed /full")
    probe.expect("closed /empty")
    assert probe.drain().count("closed /full") == 1  # exactly once


def test_close_is_called_when_the_client_disconnects_mid_stream(serve: Serve, probe: Probe) -> None:
    def endless() -> Iterator[bytes]:
        block = b"x" * 65536
        while True:
            yield block

    def app(environ: dict[str, Any], start_response: Any) -> Tracked:
        start_response("200 OK", TEXT)
        if environ["PATH_INFO"] != "/endless":
            return Tracked(probe, "short", iter([b"short"]))
        probe.emit("streaming")
        return Tracked(probe, "endless", endless())

    worker = serve(validated(app))
    conn = worker.connect(rcvbuf=16384)
    conn.send(get("/endless"))
    assert conn.read_head().status == 200
    probe.expect("streaming")
    conn.close()  # with unread data: the kernel resets the connection
    probe.expect("closed endless")
    assert worker.request(get("/again")).body == b"short"  # the worker serves on


def test_header_injection_is_refused_with_a_500(serve: Serve) -> None:
    # Not validated: the validator itself would refuse the header; the server must too.
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response(
            "200 OK", [("Content-Type", "text/plain"), ("X-Next", "a\r\nSet-Cookie: evil=1")]
        )
        return [b"injected"]

    worker = serve(app, expect_errors=True)
    with worker.connect() as conn:
        conn.send(get())
        response = conn.read_response()
        assert response.status == 500
        assert "set-cookie" not in response.header_names
        assert b"injected" not in response.body
        conn.send(get())  # still framed correctly: the next response parses
        assert conn.read_response().status == 500
    assert "invalid value for response header 'X-Next'" in worker.log()


def test_invalid_status_from_the_app_is_a_500(serve: Serve) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        start_response("200 OK\r\nX-Evil: 1", [("Content-Type", "text/plain")])
        return [b"x"]

    worker = serve(app, expect_errors=True)
    response = worker.request(get())
    assert response.status == 500
    assert "x-evil" not in response.header_names


@pytest.mark.parametrize("kind", ["one-item list", "list", "iterator", "after bytes"])
def test_a_str_body_is_a_500_naming_the_mistake(serve: Serve, kind: str) -> None:
    # PEP 3333: bodies are bytes. A str is the app's error, answered like any other:
    # a 500 while nothing was sent (not a silently closed connection).
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if kind == "one-item list":
            return ["text"]
        if kind == "list":
            return [b"bytes, then ", "text"]
        if kind == "iterator":
            return iter(["text"])
        return iter([b"bytes first", "text"])

    worker = serve(app, expect_errors=True)
    with worker.connect() as conn:
        conn.send(get())
        if kind == "after bytes":  # the head is out: the response can only be cut
            head = conn.read_head()
            assert head.status == 200
            assert conn.at_eof()
        else:
            response = conn.read_response()
            assert response.status == 500
            assert b"text" not in response.body
            conn.send(get())  # the connection is still in step
            assert conn.read_response().status == 500
    assert "the response iterable yielded str, not bytes" in worker.log()


def test_a_bytearray_body_is_sent(serve: Serve) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["PATH_INFO"] == "/one":
            return [bytearray(b"one")]
        return iter([bytearray(b"it"), b"er"])

    worker = serve(app)
    assert worker.request(get("/one")).body == b"one"
    assert worker.request(get("/iter")).body == b"iter"


def test_body_before_start_response_is_a_500(serve: Serve) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        yield b"too early"

    worker = serve(app, expect_errors=True)
    response = worker.request(get())
    assert response.status == 500


# --- wsgi.file_wrapper ------------------------------------------------------------------


@pytest.fixture
def big_file(tmp_path: Path) -> Path:
    path = tmp_path / "data.bin"
    path.write_bytes(os.urandom(300_000))
    return path


def file_app(path: Path, probe: Probe) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        f = open(path, "rb")  # noqa: SIM115 - the server closes it through the wrapper
        query = environ["QUERY_STRING"]
        headers = [("Content-Type", "application/octet-stream")]
        if query.startswith("seek="):
            f.seek(int(query[5:]))
        elif query.startswith("read="):
            f.read(int(query[5:]))  # buffered: the OS offset is past what was consumed
        elif query.startswith("length="):
            headers.append(("Content-Length", query[7:]))
        start_response("200 OK", headers)
        return environ["wsgi.file_wrapper"](f, 8192)

    return validated_passthrough(app)


@pytest.mark.usefixtures("sendfile_calls")
@pytest.mark.parametrize(
    ("query", "start", "end"),
    [
        ("", 0, 300_000),
        ("seek=1000", 1000, 300_000),
        ("read=10", 10, 300_000),
        ("length=5000", 0, 5000),
    ],
)
def test_file_wrapper_goes_out_with_sendfile(
    serve: Serve, probe: Probe, big_file: Path, query: str, start: int, end: int
) -> None:
    worker = serve(file_app(big_file, probe))
    with worker.connect() as conn:
        conn.send(get(f"/file?{query}") + get("/file?"))
        response = conn.read_response()
        assert response.header("Content-Length") == str(end - start)
        assert response.body == big_file.read_bytes()[start:end]
        assert conn.read_response().body == big_file.read_bytes()  # keep-alive in sync
    # The first os.sendfile call starts at the offset (reported after the bytes went out).
    assert probe.expect_prefix("sendfile ").startswith(f"sendfile {start} ")


def test_a_download_cut_by_the_client_is_logged_with_its_bytes(
    serve: Serve, probe: Probe, tmp_path: Path
) -> None:
    # nginx logs an interrupted download too, with what was sent: so does porch.
    path = tmp_path / "huge.bin"
    size = 32 << 20  # more than the socket buffers hold: sendfile is still at work
    with path.open("wb") as f:
        f.truncate(size)
    access_log = tmp_path / "access.log"
    worker = serve(
        file_app(path, probe), access_logfile=str(access_log), access_logformat="%(s)s %(B)s"
    )
    conn = worker.connect(rcvbuf=4096)
    conn.send(get("/file"))
    assert conn.read_head().status == 200
    conn.read_exact(1000)
    conn.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    conn.close()  # a reset, mid-body
    assert worker.stop() == 0  # flushes the log
    status, sent = access_log.read_text().split()
    assert status == "200"
    assert 1000 <= int(sent) < size


@pytest.mark.usefixtures("sendfile_calls")
def test_file_wrapper_for_head_sends_no_body(serve: Serve, probe: Probe, big_file: Path) -> None:
    worker = serve(file_app(big_file, probe))
    with worker.connect() as conn:
        conn.send(b"HEAD /file HTTP/1.1\r\nHost: t\r\n\r\n" + get("/file?length=3"))
        head = conn.read_response(method="HEAD")
        assert head.status == 200
        assert conn.read_response().body == big_file.read_bytes()[:3]


def test_file_wrapper_over_a_non_file_is_iterated(serve: Serve) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", TEXT)
        return environ["wsgi.file_wrapper"](io.BytesIO(b"in memory " * 1000), 4096)

    worker = serve(validated(app))
    assert worker.request(get()).body == b"in memory " * 1000


# --- request bodies ----------------------------------------------------------------------


def test_large_body_spills_to_a_temp_file(serve: Serve) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        stream = environ["wsgi.input"]
        digest = hashlib.sha256()
        while chunk := stream.read(10_000):
            digest.update(chunk)
        spilled = getattr(stream, "input", stream).spilled  # under the validator's wrapper
        start_response("200 OK", TEXT)
        return [f"{digest.hexdigest()} {spilled}".encode()]

    worker = serve(validated(app), body_buffer_size=4096)
    small, large = b"s" * 1000, os.urandom(200_000)
    with worker.connect() as conn:
        for body in (small, large):
            conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: %d\r\n\r\n" % len(body))
            conn.send(body)
            assert conn.read_response().body.decode() == (
                f"{hashlib.sha256(body).hexdigest()} {body is large}"
            )
        conn.send(b"POST / HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        for i in range(0, len(large), 30_000):
            piece = large[i : i + 30_000]
            conn.send(b"%x\r\n%b\r\n" % (len(piece), piece))
        conn.send(b"0\r\n\r\n")
        assert conn.read_response().body.decode() == f"{hashlib.sha256(large).hexdigest()} True"


def test_file_wrapper_with_a_304_sends_no_body(serve: Serve, big_file: Path) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("304 Not Modified", [])
        return environ["wsgi.file_wrapper"](open(big_file, "rb"))

    worker = serve(validated_passthrough(app))
    with worker.connect() as conn:
        conn.send(get() + get())
        for _ in range(2):  # the second response parses only if the first sent no bytes
            response = conn.read_response()
            assert response.status == 304
            assert response.header("Content-Length") is None
