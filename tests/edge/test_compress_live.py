"""--compress in a real forked worker: negotiated both ways, streamed promptly, sendfile kept."""

from __future__ import annotations

import zlib
from collections.abc import Callable, Iterator
from typing import Any

import httpx
from live_worker import Probe, Serve, get, validated, validated_passthrough

TEXT = b"".join(b"row %d: the quick brown fox jumps over the lazy dog\n" % n for n in range(500))
EVENTS = [b"data: %d\n\n" % n for n in range(5)]


def page(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
    start_response("200 OK", [("Content-Type", "text/html; charset=utf-8"), ("ETag", '"v1"')])
    return [TEXT]


def test_compress_negotiated_both_ways(serve: Serve) -> None:
    worker = serve(validated_passthrough(page), compress=True)
    with httpx.Client(base_url=worker.url, timeout=5) as client:
        gzipped = client.get("/", headers={"Accept-Encoding": "gzip"})
        assert gzipped.status_code == 200
        assert gzipped.headers["content-encoding"] == "gzip"
        assert gzipped.headers["vary"] == "Accept-Encoding"
        assert gzipped.headers["etag"] == 'W/"v1"'
        assert gzipped.content == TEXT  # httpx undid the gzip
        length = int(gzipped.headers["content-length"])
        assert length < len(TEXT) // 4
        with client.stream("GET", "/", headers={"Accept-Encoding": "gzip"}) as raw:
            wire = b"".join(raw.iter_raw())
        assert len(wire) == length
        assert zlib.decompress(wire, wbits=31) == TEXT

        plain = client.get("/", headers={"Accept-Encoding": "identity"})
        assert "content-encoding" not in plain.headers
        assert plain.headers["vary"] == "Accept-Encoding"
        assert plain.headers["etag"] == '"v1"'
        assert plain.headers["content-length"] == str(len(TEXT))
        assert plain.content == TEXT


def test_off_by_default(serve: Serve) -> None:
    worker = serve(validated_passthrough(page))
    response = httpx.get(worker.url, headers={"Accept-Encoding": "gzip"}, timeout=5)
    assert "content-encoding" not in response.headers
    assert "vary" not in response.headers
    assert response.content == TEXT


def test_a_stream_arrives_piece_by_piece(serve: Serve, probe: Probe) -> None:
    def events(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        for n, event in enumerate(EVENTS):
            if n:  # the next event is made only once the client decoded the previous one
                probe.expect(f"decoded {n - 1}", timeout=5)
            yield event

    worker = serve(validated(events), compress=True)
    with worker.connect() as conn:
        conn.send(get("/", headers="Accept-Encoding: gzip\r\n"))
        head = conn.read_head()
        assert head.header("Content-Encoding") == "gzip"
        assert head.header("Transfer-Encoding") == "chunked"
        assert head.header("Content-Length") is None
        decoder = zlib.decompressobj(wbits=31)
        for n, event in enumerate(EVENTS):
            size = int(conn.read_until(b"\r\n")[:-2], 16)
            assert decoder.decompress(conn.read_exact(size + 2)[:-2]) == event
            probe.emit(f"decoded {n}")
        while size := int(conn.read_until(b"\r\n")[:-2], 16):  # the gzip trailer
            assert decoder.decompress(conn.read_exact(size + 2)[:-2]) == b""
        assert conn.read_until(b"\r\n") == b"\r\n"
        assert decoder.eof


def test_head_and_range_are_left_alone(serve: Serve) -> None:
    worker = serve(validated_passthrough(page), compress=True)
    request = get("/", headers="Accept-Encoding: gzip\r\n").replace(b"GET", b"HEAD", 1)
    head = worker.request(request, method="HEAD")
    assert head.header("Content-Encoding") is None
    assert head.header("Content-Length") == str(len(TEXT))
    assert head.header("ETag") == '"v1"'
    assert head.header("Vary") == "Accept-Encoding"
    ranged = worker.request(get("/", headers="Accept-Encoding: gzip\r\nRange: bytes=0-9\r\n"))
    assert ranged.header("Content-Encoding") is None
    assert ranged.body == TEXT


def test_head_without_a_body_varies_like_the_get(serve: Serve) -> None:
    def page_or_head(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        headers = [("Content-Type", "text/html; charset=utf-8"), ("Content-Length", "14000")]
        start_response("200 OK", headers)
        return [] if environ["REQUEST_METHOD"] == "HEAD" else [b"x" * 14000]

    worker = serve(validated_passthrough(page_or_head), compress=True)
    gzip = "Accept-Encoding: gzip\r\n"
    got = worker.request(get("/", headers=gzip))
    assert got.header("Content-Encoding") == "gzip"
    head = worker.request(get("/", headers=gzip).replace(b"GET", b"HEAD", 1), method="HEAD")
    assert head.header("Content-Encoding") is None
    assert head.header("Content-Length") == "14000"
    assert head.header("Vary") == got.header("Vary") == "Accept-Encoding"


def test_file_wrapper_still_goes_out_with_sendfile(
    serve: Serve, probe: Probe, sendfile_calls: None, tmp_path: Any
) -> None:
    path = tmp_path / "report.txt"
    path.write_bytes(TEXT)

    def download(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response("200 OK", [("Content-Type", "text/plain")])
        return environ["wsgi.file_wrapper"](open(path, "rb"))

    worker = serve(validated_passthrough(download), compress=True)
    response = worker.request(get("/", headers="Accept-Encoding: gzip\r\n"))
    assert response.header("Content-Encoding") is None
    assert response.body == TEXT
    probe.expect(f"sendfile 0 {len(TEXT)}")
