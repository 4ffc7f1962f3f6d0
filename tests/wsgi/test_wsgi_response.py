"""StartResponse: PEP 3333 call rules, status and header validation, write()."""

from __future__ import annotations

import sys
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from porch.errors import AppResponseError
from porch.wsgi.response import StartResponse, parse_status, validate_headers


class Sink:
    def __init__(self) -> None:
        self.chunks: list[bytes] = []

    def __call__(self, data: bytes) -> None:
        self.chunks.append(data)


def new() -> StartResponse:
    return StartResponse(Sink())


def current_exc_info() -> Any:
    try:
        raise ValueError("app failed")
    except ValueError:
        return sys.exc_info()


def test_records_status_and_headers() -> None:
    start = new()
    assert not start.started and start.status_code == 0
    headers = [("Content-Type", "text/plain"), ("Content-Length", "5")]
    write = start("201 Created", headers)
    assert start.started
    assert start.status == "201 Created"
    assert start.status_code == 201
    assert list(start.headers) == headers
    assert start.content_length == 5
    assert start.close_connection is False
    assert start.headers_sent is False
    assert write == start.write


def test_write_goes_to_the_sink() -> None:
    sink = Sink()
    start = StartResponse(sink)
    write = start("200 OK", [])
    write(b"abc")
    write(b"")
    assert sink.chunks == [b"abc", b""]


def test_write_before_start_response() -> None:
    with pytest.raises(AppResponseError, match="before start_response"):
        new().write(b"x")


@pytest.mark.parametrize("data", ["text", bytearray(b"x"), memoryview(b"x"), None, 1])
def test_write_requires_bytes(data: Any) -> None:
    start = new()
    write = start("200 OK", [])
    with pytest.raises(AppResponseError, match="takes bytes"):
        write(data)


def test_second_call_without_exc_info() -> None:
    start = new()
    start("200 OK", [])
    with pytest.raises(AppResponseError, match="second time"):
        start("500 Internal Server Error", [])
    assert start.status == "200 OK"


def test_exc_info_before_headers_sent_replaces_the_head() -> None:
    start = new()
    start("200 OK", [("Content-Length", "10"), ("Connection", "close")])
    start("500 Internal Server Error", [("Content-Type", "text/plain")], current_exc_info())
    assert start.status_code == 500
    assert list(start.headers) == [("Content-Type", "text/plain")]
    assert start.content_length is None
    assert start.close_connection is False


def test_exc_info_as_first_call() -> None:
    start = new()
    start("500 Internal Server Error", [], current_exc_info())
    assert start.status_code == 500


def test_exc_info_after_headers_sent_reraises_the_app_error() -> None:
    start = new()
    start("200 OK", [])
    start.headers_sent = True
    exc_info = current_exc_info()
    with pytest.raises(ValueError, match="app failed") as info:
        start("500 Internal Server Error", [], exc_info)
    assert info.value is exc_info[1]
    assert info.value.__traceback__ is not None
    assert start.status_code == 200


def test_empty_exc_info_counts_as_none() -> None:
    start = new()
    start("200 OK", [])
    with pytest.raises(AppResponseError, match="second time"):
        start("500 Internal Server Error", [], (None, None, None))


def test_failed_validation_leaves_the_state_unchanged() -> None:
    start = new()
    start("200 OK", [("X-A", "1")])
    with pytest.raises(AppResponseError):
        start("500 Oops", [("Bad Name", "v")], current_exc_info())
    assert (start.status, list(start.headers)) == ("200 OK", [("X-A", "1")])


@pytest.mark.parametrize(
    "status", ["200 OK", "200 ", "404 Not Found", "599 Custom", "200 Caf\xe9", "200 a\tb"]
)
def test_valid_statuses(status: str) -> None:
    assert parse_status(status) == int(status[:3])


@pytest.mark.parametrize(
    "status",
    [
        "200",  # PEP 3333: a space must separate code and reason
        "200OK",
        "2000 OK",
        "20 OK",
        " 200 OK",
        "abc OK",
        "\uff12\uff10\uff10 OK",  # full-width digits
        "099 Low",
        "100 Continue",  # 1xx cannot be a final response
        "101 Switching Protocols",
        "600 Too High",
        "200 OK\r\n",
        "200 O\nK",
        "200 OK\x00",
        "200 OK\x7f",
        "200 \u0100",
        b"200 OK",
        200,
        None,
    ],
)
def test_invalid_statuses(status: Any) -> None:
    with pytest.raises(AppResponseError):
        new()(status, [])


@pytest.mark.parametrize(
    "name",
    ["", "X Y", "X:Y", "X\r\nY", "X\n", "\xc9t\xe9", "X(", "X/Y", "X@", "X\x00", 3, b"X", None],
)
def test_invalid_header_names(name: Any) -> None:
    with pytest.raises(AppResponseError, match="header name"):
        new()("200 OK", [(name, "v")])


def test_valid_unusual_header_names() -> None:
    headers = [("X-A.b_c!#$%&'*+^`|~9", "v"), ("x", "")]
    assert validate_headers(headers)[0] == headers


@pytest.mark.parametrize(
    "value",
    ["a\r\nSet-Cookie: x=1", "a\nb", "a\rb", "a\x00", "\x7f", "\x1b[31m", "\u0100", "\u20ac", b"v"],
)
def test_invalid_header_values(value: Any) -> None:
    with pytest.raises(AppResponseError, match="value for response header"):
        new()("200 OK", [("X-Test", value)])


def test_valid_header_values() -> None:
    headers = [("X-Tab", "a\tb"), ("X-Latin", "caf\xe9 \xff"), ("X-Empty", ""), ("X-Sp", " s ")]
    assert validate_headers(headers)[0] == headers


@pytest.mark.parametrize(
    "headers",
    [
        {"X-A": "1"},
        (h for h in [("X-A", "1")]),
        "X-A: 1",
        [("X-A",)],
        [("X-A", "1", "2")],
        ["ab"],
        [None],
    ],
)
def test_invalid_header_containers(headers: Any) -> None:
    with pytest.raises(AppResponseError):
        new()("200 OK", headers)


def test_lenient_containers_are_normalised() -> None:
    start = new()
    start("200 OK", ([b"X".decode(), "1"],))  # type: ignore[arg-type]
    assert list(start.headers) == [("X", "1")]


@pytest.mark.parametrize("name", ["Transfer-Encoding", "transfer-encoding", "Upgrade", "UPGRADE"])
def test_framing_hop_by_hop_headers_are_refused(name: str) -> None:
    with pytest.raises(AppResponseError, match="hop-by-hop"):
        new()("200 OK", [(name, "chunked")])


@pytest.mark.parametrize(
    "name", ["Connection", "Keep-Alive", "Proxy-Connection", "TE", "Trailer", "keep-alive"]
)
def test_other_hop_by_hop_headers_are_dropped(name: str) -> None:
    start = new()
    start("200 OK", [("X-Before", "1"), (name, "timeout=5"), ("X-After", "2")])
    assert list(start.headers) == [("X-Before", "1"), ("X-After", "2")]
    assert start.close_connection is False


@pytest.mark.parametrize(
    ("value", "close"),
    [("close", True), ("Close", True), ("keep-alive, close", True), ("keep-alive", False)],
)
def test_connection_close_is_honoured(value: str, close: bool) -> None:
    start = new()
    start("200 OK", [("Connection", value)])
    assert start.close_connection is close
    assert list(start.headers) == []


@pytest.mark.parametrize(("value", "length"), [("0", 0), ("42", 42), (" 7\t", 7)])
def test_content_length(value: str, length: int) -> None:
    assert validate_headers([("content-length", value)])[1] == length


@pytest.mark.parametrize(
    "value", ["", "-1", "+1", "4 2", "0x10", "1.0", "\u0664\u0662", "\xb2", "1" * 20]
)
def test_invalid_content_length(value: str) -> None:
    with pytest.raises(AppResponseError, match="Content-Length"):
        validate_headers([("Content-Length", value)])


def test_duplicate_content_length() -> None:
    kept, length, _ = validate_headers([("Content-Length", "3"), ("content-length", "3")])
    assert (kept, length) == ([("Content-Length", "3")], 3)
    with pytest.raises(AppResponseError, match="conflicting"):
        validate_headers([("Content-Length", "3"), ("Content-Length", "4")])


@given(value=st.text(max_size=30))
def test_accepted_values_cannot_break_the_head(value: str) -> None:
    try:
        kept, _, _ = validate_headers([("X-Any", value)])
    except AppResponseError:
        assert any(ord(c) > 0xFF or (ord(c) < 0x20 and c != "\t") or c == "\x7f" for c in value)
        return
    encoded = kept[0][1].encode("latin-1")
    assert not any(byte in encoded for byte in b"\r\n\x00")


@given(name=st.text(max_size=12))
def test_accepted_names_are_tokens(name: str) -> None:
    try:
        validate_headers([(name, "v")])
    except AppResponseError:
        return
    assert name and name.isascii()
    assert all(c.isalnum() or c in "!#$%&'*+-.^_`|~" for c in name)


# --- remembered heads: apps repeat theirs, validation must still hold -------------


def test_a_repeated_constant_head_is_remembered() -> None:
    pair = ("Content-Type", "text/plain")
    first, second, third = new(), new(), new()
    first("200 OK", [pair])
    second("200 OK", [pair])
    third("200 OK", [pair])
    assert first.known is not None
    assert second.known is first.known and third.known is first.known
    assert list(third.headers) == [pair] and third.status_code == 200


def test_equal_heads_of_other_objects_give_the_same_result() -> None:
    new()("200 OK", [("X-Equal", "1")])
    start = new()
    start("".join(["200", " OK"]), [("".join(["X-", "Equal"]), "1")])
    assert start.status == "200 OK" and list(start.headers) == [("X-Equal", "1")]


def test_the_head_is_a_snapshot_of_the_apps_list() -> None:
    headers = [("X-Snap", "1")]
    start = new()
    start("200 OK", headers)
    headers.append(("X-Late", "2"))
    headers[0] = ("X-Snap", "changed")
    assert list(start.headers) == [("X-Snap", "1")]


def test_a_bad_pair_after_a_remembered_head_is_still_refused() -> None:
    good = ("X-Fine", "1")
    new()("200 OK", [good])
    new()("200 OK", [good])  # now the last head found
    with pytest.raises(AppResponseError, match="invalid value"):
        new()("200 OK", [("X-Fine", "1\r\nSet-Cookie: a=b")])
    with pytest.raises(AppResponseError, match="not a \\(name, value\\) pair"):
        new()("200 OK", [good, ("X",)])
    with pytest.raises(AppResponseError, match="invalid status"):
        new()("200", [good])


def test_a_list_pair_is_validated_every_time() -> None:
    pair = ["X-List", "1"]
    start = new()
    start("200 OK", [pair])  # type: ignore[list-item]
    pair[1] = "bad\nvalue"
    with pytest.raises(AppResponseError, match="invalid value"):
        new()("200 OK", [pair])  # type: ignore[list-item]


def test_a_str_subclass_status_gets_exact_str_values() -> None:
    class Status(str):
        pass

    pair = ("X-Sub", "1")
    new()("200 OK", [pair])
    new()("200 OK", [pair])
    start = new()
    start(Status("200 OK"), [pair])
    assert type(start.status) is str and start.status == "200 OK"
    fresh = new()
    fresh(Status("202 Accepted"), [pair])  # never remembered: validated each time
    assert fresh.known is not None and fresh.known.key == () and fresh.status_code == 202
