"""Expect: 100-continue (RFC 9110 §10.1.1).

Buffered (the default): the 100 goes out at once and the body is buffered like any
other before the app runs, so a slow upload holds no app thread and counts against
no --timeout. Streamed (--no-request-buffering): the app decides; the 100 goes out
only when it reads.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest
from live_worker import Probe, Serve, get, validated

CONTINUE = b"HTTP/1.1 100 Continue\r\n\r\n"
HEAD = b"POST /upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 11\r\n\r\n"
CHUNKED_HEAD = (
    b"POST /upload HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\n"
    b"Transfer-Encoding: chunked\r\n\r\n"
)


def make_app(probe: Probe) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/upload" and environ.get("HTTP_AUTHORIZATION") != "yes":
            probe.emit("refused")
            start_response("401 Unauthorized", [("Content-Type", "text/plain")])
            return [b"no"]
        body = b""
        while True:
            part = environ["wsgi.input"].read(4096)
            if not part:
                break
            body += part
        probe.emit(f"read {len(body)}")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got " + body]

    return validated(app)


BOTH = pytest.mark.parametrize("buffering", [True, False], ids=["buffered", "streamed"])


def authorized(head: bytes) -> bytes:
    return head.replace(b"Host: t\r\n", b"Host: t\r\nAuthorization: yes\r\n")


@BOTH
def test_100_is_sent_when_the_app_reads(serve: Serve, probe: Probe, buffering: bool) -> None:
    worker = serve(make_app(probe), request_buffering=buffering)
    with worker.connect() as conn:
        conn.send(authorized(HEAD))
        assert conn.read_until(b"\r\n\r\n") == CONTINUE
        conn.send(b"hello world")
        response = conn.read_response()
        assert response.status == 200
        assert response.body == b"got hello world"
        conn.send(get("/next"))  # keep-alive still works afterwards
        assert conn.read_response().body == b"got "


@BOTH
def test_100_with_a_chunked_body(serve: Serve, probe: Probe, buffering: bool) -> None:
    worker = serve(make_app(probe), request_buffering=buffering)
    with worker.connect() as conn:
        conn.send(authorized(CHUNKED_HEAD))
        assert conn.read_until(b"\r\n\r\n") == CONTINUE
        conn.send(b"5\r\nhello\r\n")
        conn.send(b"6\r\n world\r\n0\r\n\r\n")
        assert conn.read_response().body == b"got hello world"


def test_no_100_when_the_app_answers_without_reading(serve: Serve, probe: Probe) -> None:
    worker = serve(make_app(probe), request_buffering=False)
    with worker.connect() as conn:
        conn.send(HEAD)
        response = conn.read_response()  # the first thing on the wire is the final answer
        assert response.status == 401
        assert response.body == b"no"
        # The body was never read, so the connection cannot be reused: it closes,
        # and the response says so (RFC 9110 §10.1.1, RFC 9112 §9.6).
        assert response.header("Connection") == "close"
        assert conn.at_eof()
    probe.expect("refused")


def test_buffered_a_refused_upload_still_keeps_the_connection(serve: Serve, probe: Probe) -> None:
    # The body was asked for and read before the app ran: the refusal leaves the
    # connection clean, and a pipelined request is served.
    worker = serve(make_app(probe))
    with worker.connect() as conn:
        conn.send(HEAD + b"hello world" + get("/pipelined"))
        response = conn.read_response()
        if response.status == 100:
            response = conn.read_response()
        assert response.status == 401
        assert response.header("Connection") != "close"
        assert conn.read_response().body == b"got "
    probe.expect("refused")


def test_buffered_a_slow_upload_holds_no_app_and_counts_against_no_timeout(
    serve: Serve, probe: Probe
) -> None:
    # The body trickles in for ~3 s, past --timeout 1; in inline mode the loop
    # serves another client meanwhile.
    worker = serve(make_app(probe), timeout=1, body_timeout=2)
    with worker.connect() as conn:
        conn.send(authorized(HEAD))
        assert conn.read_until(b"\r\n\r\n") == CONTINUE
        for index, byte in enumerate(b"hello world"):
            conn.send(bytes([byte]))
            time.sleep(0.3)
            if index == 5:
                started = time.monotonic()
                assert worker.request(get("/other")).status == 200
                assert time.monotonic() - started < 1.0
        response = conn.read_response()
        assert response.status == 200
        assert response.body == b"got hello world"
    assert "Request timeout" not in worker.log()


@BOTH
def test_client_sending_the_body_anyway_to_a_reading_app(
    serve: Serve, probe: Probe, buffering: bool
) -> None:
    worker = serve(make_app(probe), request_buffering=buffering)
    with worker.connect() as conn:
        conn.send(authorized(HEAD) + b"hello world" + get("/next"))
        response = conn.read_response()
        if response.status == 100:  # allowed, though the body was already there
            response = conn.read_response()
        assert response.body == b"got hello world"
        assert conn.read_response().body == b"got "


@BOTH
def test_expect_is_ignored_for_http10(serve: Serve, probe: Probe, buffering: bool) -> None:
    worker = serve(make_app(probe), request_buffering=buffering)
    with worker.connect() as conn:
        conn.send(authorized(HEAD).replace(b"HTTP/1.1", b"HTTP/1.0") + b"hello world")
        response = conn.read_response()
        assert response.status == 200
        assert response.body == b"got hello world"


@BOTH
def test_a_body_that_never_comes_after_100_times_out(
    serve: Serve, probe: Probe, buffering: bool
) -> None:
    worker = serve(make_app(probe), body_timeout=0.5, request_buffering=buffering)
    with worker.connect() as conn:
        conn.send(authorized(HEAD))
        assert conn.read_until(b"\r\n\r\n") == CONTINUE
        conn.send(b"hel")  # then stall
        response = conn.read_response()
        assert response.status == 408  # the client's fault, not a 500
        assert conn.at_eof()
    assert "Error handling request" not in worker.log()
    # The worker is still healthy.
    assert worker.request(authorized(HEAD) + b"hello world").status in (100, 200)


@BOTH
def test_an_app_working_past_the_body_timeout_after_reading_is_not_cut(
    serve: Serve, probe: Probe, buffering: bool
) -> None:
    # The body deadline ends with the body: the app may then take its time.
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = environ["wsgi.input"].read(11)
        time.sleep(1.0)
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"got " + body]

    worker = serve(validated(app), body_timeout=0.3, request_buffering=buffering)
    with worker.connect() as conn:
        conn.send(HEAD)
        assert conn.read_until(b"\r\n\r\n") == CONTINUE
        conn.send(b"hello world")
        assert conn.read_response().body == b"got hello world"


@pytest.mark.parametrize("how", ["write", "generator"])
def test_no_100_once_the_response_head_is_out(serve: Serve, probe: Probe, how: str) -> None:
    # The app starts its response, then reads the body: a 100 now would land inside
    # the response (RFC 9110 §15.2). The client sends the body unasked instead.
    def write_first(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        write = start_response("200 OK", [("Content-Type", "text/plain")])
        write(b"started;")
        probe.emit("started")
        write(b"got " + environ["wsgi.input"].read(11))
        return []

    def generator_first(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/plain")])
        yield b"started;"
        probe.emit("started")
        yield b"got " + environ["wsgi.input"].read(11)

    worker = serve(
        validated(write_first if how == "write" else generator_first), request_buffering=False
    )
    with worker.connect() as conn:
        conn.send(authorized(HEAD))
        head = conn.read_head()
        assert head.status == 200
        assert head.header("Connection") == "close"  # the body was not asked for
        probe.expect("started")
        conn.send(b"hello world")
        rest, reset = conn.read_to_eof()
        assert not reset
        assert b"100 Continue" not in rest
        assert rest == b"8\r\nstarted;\r\nf\r\ngot hello world\r\n0\r\n\r\n"
