"""Request limits and malformed requests through a real worker: status, close, isolation."""

from __future__ import annotations

from typing import Any

import pytest
from live_worker import Probe, Serve, get, validated

# The parser decides, whatever the loop: one mode per loop and per app model.
pytestmark = pytest.mark.parametrize("mode", ["inline-uvloop", "threads-asyncio"], indirect=True)

LIMITS: dict[str, Any] = {
    "limit_request_line": 200,
    "limit_request_fields": 5,
    "limit_request_field_size": 100,
    "limit_request_body": 1000,
}


def make_app(probe: Probe) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        body = b""
        while part := environ["wsgi.input"].read(4096):
            body += part
        probe.emit(f"app {environ['PATH_INFO']} {len(body)}")
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"%d" % len(body)]

    return validated(app)


def fields(n: int) -> str:
    return "".join(f"X-F{i}: v\r\n" for i in range(n))


@pytest.mark.parametrize(
    ("raw", "status"),
    [
        (get("/" + "a" * 300), 414),
        (get("/", headers=fields(5)), 431),  # with Host: 6 fields
        (get("/", headers="X-Big: " + "v" * 150 + "\r\n"), 431),
        (b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 1001\r\n\r\n", 413),
        (b"GET / HTTP/1.1\r\n\r\n", 400),  # no Host
        (b"GET / HTTP/2.5\r\nHost: t\r\n\r\n", 505),
        (b"BREW / HTTP/1.1\r\nHost: t\r\n\r\n", 501),
        (b"\x16\x03\x01\x02\x00\x01\x00\x01\xfc\x03\x03", 400),  # a TLS ClientHello
    ],
    ids=["414", "431-count", "431-size", "413-length", "400-host", "505", "501", "400-tls"],
)
def test_rejected_requests_get_a_status_and_a_closed_connection(
    serve: Serve, probe: Probe, raw: bytes, status: int
) -> None:
    worker = serve(make_app(probe), **LIMITS)
    with worker.connect() as conn:
        conn.send(raw)  # for 413: the head only, the answer comes before any body
        response = conn.read_response()
        assert response.status == status
        assert response.header("Connection") == "close"
        assert conn.at_eof()
    assert not [line for line in probe.drain() if line.startswith("app")]  # the app never ran
    assert f"rejected request from 127.0.0.1: {status}" in worker.log()


def test_limits_are_inclusive(serve: Serve, probe: Probe) -> None:
    worker = serve(make_app(probe), **LIMITS)
    with worker.connect() as conn:
        conn.send(get("/" + "a" * 150, headers=fields(4)))
        assert conn.read_response().status == 200
        conn.send(b"POST /b HTTP/1.1\r\nHost: t\r\nContent-Length: 1000\r\n\r\n" + b"x" * 1000)
        assert conn.read_response().body == b"1000"


def test_413_for_a_chunked_body_over_the_limit(serve: Serve, probe: Probe) -> None:
    worker = serve(make_app(probe), **LIMITS)
    with worker.connect() as conn:
        conn.send(b"POST /c HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n")
        conn.send(b"258\r\n" + b"x" * 600 + b"\r\n")  # 600 bytes: still fine
        conn.send(b"258\r\n" + b"x" * 600 + b"\r\n")  # 1200 in all
        response = conn.read_response()
        assert response.status == 413
        assert conn.at_eof()
    assert not [line for line in probe.drain() if line.startswith("app")]


def test_chunked_body_at_the_limit_is_served(serve: Serve, probe: Probe) -> None:
    worker = serve(make_app(probe), **LIMITS)
    body = b"".join(b"64\r\n" + b"y" * 100 + b"\r\n" for _ in range(10)) + b"0\r\n\r\n"
    response = worker.request(
        b"POST /d HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n" + body
    )
    assert response.body == b"1000"


def test_a_bad_request_after_good_ones_answers_those_first(serve: Serve, probe: Probe) -> None:
    worker = serve(make_app(probe), **LIMITS)
    with worker.connect() as conn:
        conn.send(
            get("/one") + get("/two") + b"GET /three HTTP/1.1\r\nHost: t\r\nBad Header\r\n\r\n"
        )
        assert [conn.read_response().status for _ in range(3)] == [200, 200, 400]
        assert conn.at_eof()


def test_a_malformed_request_does_not_disturb_a_concurrent_connection(
    serve: Serve, probe: Probe
) -> None:
    worker = serve(make_app(probe), **LIMITS)
    with worker.connect() as good, worker.connect("unix") as good_unix:
        good.send(get("/before"))
        assert good.read_response().status == 200
        good.send(b"POST /slow HTTP/1.1\r\nHost: t\r\nContent-Length: 10\r\n\r\n12345")
        good_unix.send(b"GET /half")
        for raw in (b"GET / HTTP/1.1\r\nHost: t\r\nContent-Length: -1\r\n\r\n", b"\x00" * 50):
            with worker.connect() as bad:
                bad.send(raw)
                assert bad.read_response().status == 400
                assert bad.at_eof()
        good.send(b"67890")
        assert good.read_response().body == b"10"
        good_unix.send(b" HTTP/1.1\r\nHost: t\r\n\r\n")
        assert good_unix.read_response().status == 200
    probe.expect("app /slow 10")
