"""ResponseFraming: how a response body is delimited (RFC 9112 §6.3) and its head serialized."""

from __future__ import annotations

import pytest
from h1_corpus import feed_pieces, whole
from hypothesis import given, settings
from hypothesis import strategies as st

from porch.protocol.events import BodyData, EndOfMessage, RequestHead
from porch.protocol.framing import ResponseFraming, status_line
from porch.protocol.h1 import H1Limits


def framing(
    *,
    method: str = "GET",
    version: str = "1.1",
    status: int = 200,
    length: int | None = None,
    keep_alive: bool = True,
) -> ResponseFraming:
    return ResponseFraming(
        method=method,
        http_version=version,
        status_code=status,
        content_length=length,
        keep_alive=keep_alive,
    )


def dechunk(framed: bytes) -> bytes:
    """Read a chunked body back through porch's own (llhttp-based) request parser."""
    head = b"POST / HTTP/1.1\r\nHost: x\r\nTransfer-Encoding: chunked\r\n\r\n"
    events = feed_pieces(whole(head + framed), H1Limits())
    assert isinstance(events[0], RequestHead) and events[-1] == EndOfMessage()
    return b"".join(e.data for e in events if isinstance(e, BodyData))


def test_status_line() -> None:
    assert status_line("1.1", "200 OK") == b"HTTP/1.1 200 OK\r\n"
    assert status_line("1.0", "404 Not Found") == b"HTTP/1.0 404 Not Found\r\n"
    assert status_line("1.1", "200 Caf\u00e9") == b"HTTP/1.1 200 Caf\xe9\r\n"  # latin-1
    assert status_line("1.1", "204 ") == b"HTTP/1.1 204 \r\n"  # empty reason, RFC 9112 §4


# --- responses without a body ---------------------------------------------------------


@pytest.mark.parametrize(
    ("method", "status"),
    [("HEAD", 200), ("HEAD", 404), ("GET", 204), ("GET", 304), ("POST", 100), ("GET", 103)],
)
@pytest.mark.parametrize("version", ["1.0", "1.1"])
@pytest.mark.parametrize("length", [None, 0, 10])
def test_no_body_responses(method: str, status: int, version: str, length: int | None) -> None:
    # RFC 9112 §6.3 (1): HEAD, 1xx, 204 and 304 responses end at the head.
    f = framing(method=method, version=version, status=status, length=length)
    assert f.no_body and not f.chunked
    assert f.body(b"ignored bytes") == b""
    assert f.end() == b""
    assert f.complete
    assert f.keep_alive  # nothing to delimit, so the connection can stay
    head = f.head(http_version=version, status=f"{status} X", headers=[], extra=b"")
    assert b"Transfer-Encoding" not in head
    assert b"Connection: close" not in head


@pytest.mark.parametrize("status", [204, 100, 103])
def test_no_content_length_in_1xx_and_204(status: int) -> None:
    # RFC 9110 §8.6: a server MUST NOT send Content-Length in a 1xx or 204 response.
    f = framing(status=status, length=0)
    head = f.head(
        http_version="1.1",
        status=f"{status} X",
        headers=[("content-length", "0"), ("X-A", "1"), ("Content-Length", "0")],
        extra=b"",
    )
    assert head == b"HTTP/1.1 %d X\r\nX-A: 1\r\n\r\n" % status


def test_304_keeps_the_apps_content_length_header() -> None:
    # RFC 9110 §8.6 allows it in a 304: the length a 200 would have had.
    f = framing(status=304, length=10)
    head = f.head(
        http_version="1.1", status="304 Not Modified", headers=[("Content-Length", "10")], extra=b""
    )
    assert head == b"HTTP/1.1 304 Not Modified\r\nContent-Length: 10\r\n\r\n"


def test_head_response_keeps_the_apps_content_length_header() -> None:
    # RFC 9110 §9.3.2: a HEAD response may carry the Content-Length a GET would.
    f = framing(method="HEAD", length=1234)
    head = f.head(
        http_version="1.1", status="200 OK", headers=[("Content-Length", "1234")], extra=b""
    )
    assert head == b"HTTP/1.1 200 OK\r\nContent-Length: 1234\r\n\r\n"
    assert f.body(b"x" * 1234) == b""
    assert f.complete


# --- Content-Length -------------------------------------------------------------------


def test_content_length_body_passes_through() -> None:
    f = framing(length=11)
    assert not f.chunked and not f.no_body
    assert f.body(b"hello") + f.body(b" ") + f.body(b"world") == b"hello world"
    assert f.end() == b""
    assert f.sent == 11 and f.complete and f.keep_alive


def test_content_length_extra_bytes_are_dropped_and_the_connection_closes() -> None:
    f = framing(length=5)
    assert f.body(b"hel") == b"hel"
    assert f.body(b"lo, world") == b"lo"
    assert f.body(b"more") == b""
    assert f.sent == 5 and f.complete
    assert not f.keep_alive  # the app misbehaved: do not trust this connection further


def test_content_length_zero_with_data() -> None:
    f = framing(length=0)
    assert f.complete
    assert f.body(b"x") == b""
    assert not f.keep_alive


def test_content_length_short_body_is_incomplete() -> None:
    # The worker must abort: a response shorter than its Content-Length cannot
    # be delimited any other way (RFC 9112 §6.3 (6)).
    f = framing(length=10)
    f.body(b"12345")
    assert not f.complete
    f.body(b"6789")
    assert not f.complete
    f.body(b"0")
    assert f.complete


def test_empty_writes_change_nothing() -> None:
    for f in (framing(length=3), framing(), framing(version="1.0")):
        assert f.body(b"") == b""
        assert f.sent == 0


# --- chunked (HTTP/1.1 without Content-Length) -----------------------------------------


def test_chunked_framing() -> None:
    f = framing()
    assert f.chunked and f.keep_alive and f.expected is None
    assert f.body(b"hello") == b"5\r\nhello\r\n"
    assert f.body(b"x" * 26) == b"1a\r\n" + b"x" * 26 + b"\r\n"
    # An empty write must not emit a zero-size chunk: that would end the body.
    assert f.body(b"") == b""
    assert f.end() == b"0\r\n\r\n"
    assert f.sent == 31 and f.complete


def test_chunked_head_announces_the_coding() -> None:
    f = framing()
    head = f.head(http_version="1.1", status="200 OK", headers=[("X-A", "1")], extra=b"")
    assert head == b"HTTP/1.1 200 OK\r\nX-A: 1\r\nTransfer-Encoding: chunked\r\n\r\n"


def test_chunked_with_close() -> None:
    f = framing(keep_alive=False)
    assert f.chunked and not f.keep_alive
    head = f.head(http_version="1.1", status="200 OK", headers=[], extra=b"")
    assert head == b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\nConnection: close\r\n\r\n"


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=300), max_size=8))
def test_chunked_round_trips(pieces: list[bytes]) -> None:
    f = framing()
    framed = b"".join(f.body(piece) for piece in pieces) + f.end()
    assert dechunk(framed) == b"".join(pieces)
    assert f.sent == sum(map(len, pieces))


@settings(max_examples=60, deadline=None)
@given(st.lists(st.binary(max_size=50), max_size=8), st.integers(0, 200))
def test_content_length_output_is_the_declared_prefix(pieces: list[bytes], length: int) -> None:
    f = framing(length=length)
    out = b"".join(f.body(piece) for piece in pieces) + f.end()
    everything = b"".join(pieces)
    assert out == everything[:length]
    assert f.complete is (len(everything) >= length)
    assert f.keep_alive is (len(everything) <= length)


# --- HTTP/1.0: close-delimited ---------------------------------------------------------


@pytest.mark.parametrize("keep_alive", [True, False])
def test_http10_without_length_is_close_delimited(keep_alive: bool) -> None:
    # RFC 9112 §6.3 (8): no chunked for a 1.0 client, so the close ends the body.
    f = framing(version="1.0", keep_alive=keep_alive)
    assert not f.chunked and not f.keep_alive
    assert f.body(b"raw bytes") == b"raw bytes"
    assert f.end() == b""
    assert f.complete
    head = f.head(http_version="1.0", status="200 OK", headers=[], extra=b"")
    assert head == b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n"


def test_http10_with_length_keeps_alive_when_asked() -> None:
    f = framing(version="1.0", length=2, keep_alive=True)
    assert f.keep_alive and not f.chunked
    head = f.head(http_version="1.0", status="200 OK", headers=[], extra=b"")
    # RFC 9112 Appendix C.2.2: a 1.0 client needs the explicit keep-alive option.
    assert head == b"HTTP/1.0 200 OK\r\nConnection: keep-alive\r\n\r\n"


def test_http10_with_length_and_close() -> None:
    f = framing(version="1.0", length=2, keep_alive=False)
    head = f.head(http_version="1.0", status="200 OK", headers=[], extra=b"")
    assert head == b"HTTP/1.0 200 OK\r\nConnection: close\r\n\r\n"


# --- head serialization ----------------------------------------------------------------


def test_head_serialization_order_and_encoding() -> None:
    f = framing(length=3)
    head = f.head(
        http_version="1.1",
        status="201 Created",
        headers=[
            ("Content-Length", "3"),
            ("Set-Cookie", "a=1"),
            ("Set-Cookie", "b=2"),
            ("X-Name", "caf\u00e9"),
        ],
        extra=b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\nServer: porch\r\n",
    )
    assert head == (
        b"HTTP/1.1 201 Created\r\n"
        b"Content-Length: 3\r\n"
        b"Set-Cookie: a=1\r\n"
        b"Set-Cookie: b=2\r\n"
        b"X-Name: caf\xe9\r\n"
        b"Date: Thu, 01 Jan 2026 00:00:00 GMT\r\n"
        b"Server: porch\r\n"
        b"\r\n"
    )


def test_keep_alive_http11_sends_no_connection_header() -> None:
    f = framing(length=0)
    head = f.head(http_version="1.1", status="200 OK", headers=[], extra=b"")
    assert head == b"HTTP/1.1 200 OK\r\n\r\n"


def test_head_is_parseable_as_a_message_head() -> None:
    # Every serialized head ends with exactly one empty line and uses CRLF only.
    for f, version in (
        (framing(), "1.1"),
        (framing(version="1.0"), "1.0"),
        (framing(method="HEAD"), "1.1"),
        (framing(length=5), "1.0"),
    ):
        head = f.head(http_version=version, status="200 OK", headers=[("A", "b")], extra=b"")
        assert head.endswith(b"\r\n\r\n") and head.count(b"\r\n\r\n") == 1
        assert b"\n" not in head.replace(b"\r\n", b"")
