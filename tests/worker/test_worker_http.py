"""HTTP/1.1 through a real worker: keep-alive, pipelining, framing, HEAD, Date/Server, targets."""

from __future__ import annotations

import email.utils
import json
import socket
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_worker import Serve, get, validated, validated_passthrough


def read_body(environ: dict[str, Any]) -> bytes:
    stream = environ["wsgi.input"]
    parts = []
    while True:
        part = stream.read(65536)
        if not part:
            return b"".join(parts)
        parts.append(part)


def _echo(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    body = read_body(environ)
    info = {
        "method": environ["REQUEST_METHOD"],
        "path": environ["PATH_INFO"],
        "query": environ["QUERY_STRING"],
        "protocol": environ["SERVER_PROTOCOL"],
        "server_name": environ["SERVER_NAME"],
        "server_port": environ["SERVER_PORT"],
        "remote_port": environ.get("REMOTE_PORT", ""),
        "headers": {k: v for k, v in environ.items() if k.startswith("HTTP_")},
        "content_length": environ.get("CONTENT_LENGTH"),
        "body": body.decode("latin-1"),
    }
    data = json.dumps(info).encode()
    headers = [("Content-Type", "application/json"), ("Content-Length", str(len(data)))]
    start_response("200 OK", headers)
    return [data]


echo = validated(_echo)


def _streaming(environ: dict[str, Any], start_response: Any) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"one,"
    yield b""  # an empty piece must not end a chunked body early
    yield b"two,"
    yield b"three"


streaming = validated(_streaming)


def _one_element_list(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("X-App", "yes")])
    return [b"hello world"]


def _status_app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    status = environ["PATH_INFO"].strip("/")
    headers = [] if status in ("204", "304") else [("Content-Type", "text/plain")]
    start_response(f"{status} Whatever", headers)
    # An app that (wrongly) returns a body for 204/304: the server must not send it.
    return [b"must not be sent"]


status_app = validated(_status_app)


def _fixed_length(environ: dict[str, Any], start_response: Any) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"fixed"]


def test_http11_keeps_the_connection_alive_by_default(serve: Serve) -> None:
    worker = serve(echo)
    with worker.connect() as conn:
        ports = set()
        for i in range(3):
            conn.send(get(f"/r{i}"))
            response = conn.read_response()
            assert response.status == 200
            assert response.header("Connection") is None
            info = json.loads(response.body)
            assert info["path"] == f"/r{i}"
            ports.add(info["remote_port"])
        assert len(ports) == 1  # one TCP connection served all three


def test_http10_closes_unless_keep_alive_is_asked_for(serve: Serve) -> None:
    worker = serve(echo)
    with worker.connect() as conn:
        conn.send(b"GET /a HTTP/1.0\r\n\r\n")
        response = conn.read_response()
        assert response.version == "HTTP/1.0" or response.version == "HTTP/1.1"
        assert json.loads(response.body)["protocol"] == "HTTP/1.0"
        assert response.header("Connection") == "close"
        assert conn.at_eof()
    with worker.connect() as conn:
        for path in ("/b", "/c"):
            conn.send(f"GET {path} HTTP/1.0\r\nConnection: keep-alive\r\n\r\n".encode())
            response = conn.read_response()
            assert response.header("Connection") == "keep-alive"
            assert json.loads(response.body)["path"] == path


def test_connection_close_is_honoured(serve: Serve) -> None:
    worker = serve(echo)
    with worker.connect() as conn:
        conn.send(get("/x", headers="Connection: close\r\n"))
        response = conn.read_response()
        assert response.status == 200
        assert response.header("Connection") == "close"
        assert conn.at_eof()


def test_five_pipelined_requests_are_answered_in_order(serve: Serve) -> None:
    worker = serve(echo)
    requests = b"".join(
        [
            get("/p0"),
            b"POST /p1 HTTP/1.1\r\nHost: t\r\nContent-Length: 5\r\n\r\nhello",
            get("/p2?q=2"),
            b"POST /p3 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
            b"3\r\nabc\r\n2\r\nde\r\n0\r\n\r\n",
            get("/p4", headers="Connection: close\r\n"),
        ]
    )
    with worker.connect() as conn:
        conn.send(requests)
        infos = [json.loads(conn.read_response().body) for _ in range(5)]
        assert conn.at_eof()  # the last one asked to close
    assert [i["path"] for i in infos] == ["/p0", "/p1", "/p2", "/p3", "/p4"]
    assert [i["body"] for i in infos] == ["", "hello", "", "abcde", ""]
    assert infos[2]["query"] == "q=2"


def test_pipelined_requests_after_connection_close_are_not_served(serve: Serve, probe: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        probe.emit("served " + environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    worker = serve(validated(app))
    with worker.connect() as conn:
        conn.send(get("/first", headers="Connection: close\r\n") + get("/second") + get("/third"))
        response = conn.read_response()
        assert response.body == b"ok"
        assert conn.at_eof()
        assert conn.buf == b""
    worker.request(get("/marker"))
    probe.expect("served /marker")
    assert probe.drain() == ["served /first", "served /marker"]


def test_chunked_request_body_is_dechunked_and_trailers_are_dropped(serve: Serve) -> None:
    worker = serve(echo)
    raw = (
        b"POST /upload HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"5;ext=1\r\nhello\r\n1\r\n \r\n5\r\nworld\r\n0\r\nX-Trailer: sneaky\r\n\r\n"
    )
    with worker.connect() as conn:
        conn.send(raw)
        info = json.loads(conn.read_response().body)
        assert info["body"] == "hello world"
        assert info["content_length"] is None
        assert "HTTP_X_TRAILER" not in info["headers"]
        conn.send(get("/after"))  # the connection is still in sync
        assert json.loads(conn.read_response().body)["path"] == "/after"


def test_iterator_without_length_is_sent_chunked(serve: Serve) -> None:
    worker = serve(streaming)
    with worker.connect() as conn:
        conn.send(get("/") + get("/"))
        for _ in range(2):
            response = conn.read_response()
            assert response.header("Transfer-Encoding") == "chunked"
            assert response.header("Content-Length") is None
            assert response.chunks == [b"one,", b"two,", b"three"]


def test_iterator_to_http10_is_close_delimited(serve: Serve) -> None:
    worker = serve(streaming)
    with worker.connect() as conn:
        conn.send(b"GET / HTTP/1.0\r\nConnection: keep-alive\r\n\r\n")
        response = conn.read_response()  # no length, no chunking: reads to EOF
        assert response.header("Transfer-Encoding") is None
        assert response.header("Connection") == "close"
        assert response.body == b"one,two,three"


def test_one_element_list_gets_a_content_length(serve: Serve) -> None:
    worker = serve(validated_passthrough(_one_element_list))
    response = worker.request(get())
    assert response.header("Content-Length") == "11"
    assert response.header("Transfer-Encoding") is None
    assert response.body == b"hello world"


@pytest.mark.parametrize(
    "app",
    [validated(_fixed_length), streaming, validated_passthrough(_one_element_list)],
    ids=["content-length", "chunked", "list"],
)
def test_head_sends_the_get_headers_without_a_body(serve: Serve, app: Any) -> None:
    worker = serve(app)
    with worker.connect() as conn:
        conn.send(get("/same"))
        got = conn.read_response()
        conn.send(b"HEAD /same HTTP/1.1\r\nHost: test\r\n\r\n")
        head = conn.read_response(method="HEAD")
        conn.send(get("/same"))  # would read leftover body bytes if HEAD had sent any
        again = conn.read_response()
    assert head.status == got.status == again.status == 200
    ignored = {"date", "transfer-encoding"}  # RFC 9110 §9.3.2: framing may differ
    assert [h for h in head.headers if h[0].lower() not in ignored] == [
        h for h in got.headers if h[0].lower() not in ignored
    ]
    assert again.body == got.body


@pytest.mark.parametrize("result", ["list", "tuple", "iterator"])
def test_head_answered_without_a_body_gets_no_invented_length(serve: Serve, result: str) -> None:
    # Werkzeug answers HEAD with an empty iterable: the GET's length is unknown, and
    # RFC 9110 §8.6 allows a HEAD response only GET's own Content-Length.
    def app(environ: dict[str, Any], start_response: Any) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        if environ["REQUEST_METHOD"] == "HEAD":
            return {"list": [], "tuple": (), "iterator": iter([])}[result]
        return iter([b"streamed ", b"body"])

    worker = serve(validated(app))
    with worker.connect() as conn:
        conn.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n")
        head = conn.read_response(method="HEAD")
        assert head.status == 200
        assert head.header("Content-Length") is None
        conn.send(get("/"))  # the connection is still in step: no body was sent
        assert conn.read_response().body == b"streamed body"
        conn.send(b"HEAD / HTTP/1.1\r\nHost: test\r\n\r\n")
        assert conn.read_response(method="HEAD").header("Content-Length") is None
    # An empty body for GET is a known length, though.
    assert worker.request(b"GET / HTTP/1.1\r\nHost: test\r\n\r\n").body == b"streamed body"


@pytest.mark.parametrize("status", ["204", "304"])
def test_no_body_statuses_send_no_body(serve: Serve, status: str) -> None:
    worker = serve(status_app)
    with worker.connect() as conn:
        conn.send(get(f"/{status}"))
        response = conn.read_response()
        assert response.status == int(status)
        assert response.header("Transfer-Encoding") is None
        assert response.header("Content-Length") is None
        conn.send(get("/200"))  # the body the app returned was not sent
        follow = conn.read_response()
        assert follow.status == 200
        assert follow.body == b"must not be sent"  # ... but it is for a 200


def test_date_and_server_headers(serve: Serve) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        headers = [("Content-Type", "text/plain")]
        if environ["PATH_INFO"] == "/own":
            headers.append(("Server", "mine"))
        start_response("200 OK", headers)
        return [b"x"]

    worker = serve(validated(app))
    response = worker.request(get("/"))
    assert response.all("Server") == ["porch"]
    date = email.utils.parsedate_to_datetime(response.header("Date") or "")
    assert abs(date.timestamp() - time.time()) < 5
    assert (response.header("Date") or "").endswith(" GMT")
    assert worker.request(get("/own")).all("Server") == ["mine"]


@pytest.mark.parametrize("server_header", [True, False])
def test_an_apps_own_date_is_the_only_one(serve: Serve, server_header: bool) -> None:
    # RFC 9110 §6.6.1: one Date field; the app's (a cached page's) wins.
    own = "Mon, 01 Jan 2024 00:00:00 GMT"

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        headers = [("Content-Type", "text/plain"), ("date", own)]
        if environ["PATH_INFO"] == "/both":
            headers.append(("Server", "mine"))
        start_response("200 OK", headers)
        return [b"x"]

    worker = serve(validated(app), server_header=server_header)
    with worker.connect() as conn:
        for path in ("/", "/", "/both"):  # the second: the remembered head
            conn.send(get(path))
            response = conn.read_response()
            assert response.all("Date") == [own]
            expected = ["mine"] if path == "/both" else ["porch"] if server_header else []
            assert response.all("Server") == expected


def test_server_header_can_be_turned_off(serve: Serve) -> None:
    worker = serve(echo, server_header=False)
    response = worker.request(get("/"))
    assert response.header("Server") is None
    assert response.header("Date") is not None


def test_absolute_form_target(serve: Serve) -> None:
    worker = serve(echo)
    response = worker.request(
        b"GET http://example.org:8080/p/a%20b?x=1 HTTP/1.1\r\nHost: other.test\r\n\r\n"
    )
    info = json.loads(response.body)
    assert info["path"] == "/p/a b"
    assert info["query"] == "x=1"
    assert info["headers"]["HTTP_HOST"] == "example.org:8080"
    assert (info["server_name"], info["server_port"]) == ("example.org", "8080")


@pytest.mark.parametrize("kind", ["tcp", "unix"])
def test_both_listeners_serve(serve: Serve, kind: str) -> None:
    worker = serve(echo)
    raw = b"POST /u HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\nhi"
    response = worker.request(raw, kind=kind)
    assert json.loads(response.body)["body"] == "hi"


def test_access_log_request_line_is_as_received(serve: Serve, tmp_path: Path) -> None:
    # %(r)s is the request line as the client sent it (gunicorn, nginx): the target
    # still percent-encoded, so a decoded %22 or %20 cannot forge the log's fields.
    access_log = tmp_path / "access.log"
    worker = serve(echo, access_logfile=str(access_log), access_logformat='"%(r)s" %(s)s')
    targets = ["/x%22%20200%20999%20%22y", "/a%20b/c%2Fd?q=%20x", "http://other.example/p?a=1"]
    with worker.connect() as conn:
        for target in targets:
            conn.send(f"GET {target} HTTP/1.1\r\nHost: t\r\n\r\n".encode())
            assert conn.read_response().status == 200
    assert worker.stop() == 0  # flushes the log
    assert access_log.read_text().splitlines() == [f'"GET {t} HTTP/1.1" 200' for t in targets]


def test_httpx_client_over_tcp_and_unix(serve: Serve) -> None:
    worker = serve(echo)
    with httpx.Client(base_url=worker.url, timeout=5) as client:
        first = client.get("/get", params={"a": "1"})
        second = client.post("/post", content=b"x" * 100_000)
        assert first.status_code == second.status_code == 200
        assert first.json()["query"] == "a=1"
        assert second.json()["body"] == "x" * 100_000
        # The pool reused one connection for both requests.
        assert first.json()["remote_port"] == second.json()["remote_port"]
    transport = httpx.HTTPTransport(uds=worker.unix_path)
    with httpx.Client(transport=transport, base_url="http://porch.test", timeout=5) as client:
        response = client.get("/over-unix")
        assert response.json()["path"] == "/over-unix"
        assert response.json()["headers"]["HTTP_HOST"] == "porch.test"


def test_httpx_streams_a_chunked_response(serve: Serve) -> None:
    worker = serve(streaming)
    with httpx.Client(base_url=worker.url, timeout=5) as client, client.stream("GET", "/") as r:
        assert r.headers["transfer-encoding"] == "chunked"
        assert b"".join(r.iter_bytes()) == b"one,two,three"


@pytest.mark.parametrize("paths", [["/a"], ["/a", "/b"]], ids=["one", "pipelined"])
def test_a_half_closed_client_gets_its_answers_then_the_connection_closes(
    serve: Serve, paths: list[str], make_gate: Any
) -> None:
    gate = make_gate()

    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        gate.wait()  # threads mode: the client's EOF arrives while the app runs
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [environ["PATH_INFO"].encode()]

    worker = serve(validated(app), keep_alive=5.0)
    with worker.connect() as conn:
        conn.send(b"".join(get(path) for path in paths))
        conn.sock.shutdown(socket.SHUT_WR)  # nothing more will come
        gate.open()
        assert [conn.read_response().body.decode() for _ in paths] == paths
        assert conn.at_eof(timeout=2)  # at once, not after the keep-alive time


def test_access_log_records_each_exchange(serve: Serve, tmp_path: Any) -> None:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        if environ["PATH_INFO"] == "/fail":
            raise RuntimeError("for the access log")
        start_response("201 Created", [("Content-Type", "text/plain")])
        return [b"made"]

    access_log = tmp_path / "access.log"
    worker = serve(
        validated(app),
        access_logfile=str(access_log),
        expect_errors=True,
        access_logformat="%(m)s %(U)s %(q)s %(s)s %(B)s",
    )
    with worker.connect() as conn:
        conn.send(get("/made?x=1") + get("/fail") + b"HEAD /made HTTP/1.1\r\nHost: t\r\n\r\n")
        assert conn.read_response().status == 201
        assert conn.read_response().status == 500
        assert conn.read_response(method="HEAD").status == 201
    assert worker.stop() == 0  # flushes the log
    assert access_log.read_text().splitlines() == [
        "GET /made x=1 201 4",
        "GET /fail  500 26",
        "HEAD /made  201 0",
    ]


def test_refused_requests_are_access_logged(serve: Serve, tmp_path: Path) -> None:
    # As nginx does: a request refused by the parser gets its record (the request
    # line once the head was parsed, "-" before), with the status and bytes sent.
    access_log = tmp_path / "access.log"
    worker = serve(
        echo,
        access_logfile=str(access_log),
        access_logformat='%(h)s "%(r)s" %(s)s %(B)s',
        limit_request_body=10,
    )
    garbage = worker.request(b"\x16\x03\x01 not http\r\n\r\n")
    too_large = worker.request(
        b"POST /up?a=1 HTTP/1.1\r\nHost: t\r\nTransfer-Encoding: chunked\r\n\r\n"
        b"20\r\n" + b"x" * 32 + b"\r\n0\r\n\r\n"
    )
    assert (garbage.status, too_large.status) == (400, 413)
    assert worker.request(get("/fine")).status == 200
    assert worker.stop() == 0  # flushes the log
    lines = access_log.read_text().splitlines()
    assert lines[:2] == [
        f'127.0.0.1 "-" 400 {len(garbage.body)}',
        f'127.0.0.1 "POST /up?a=1 HTTP/1.1" 413 {len(too_large.body)}',
    ]
    assert lines[2].startswith('127.0.0.1 "GET /fine HTTP/1.1" 200 ')
