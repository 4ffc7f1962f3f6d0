"""H1Parser behaviour the corpus cannot show: state across feeds, bounds, the failure contract."""

from __future__ import annotations

import gc

import pytest
from h1_corpus import byte_by_byte, feed_pieces, whole

from porch.protocol.events import BadRequest, BodyData, EndOfMessage, RequestHead
from porch.protocol.h1 import H1Limits, H1Parser

GET = b"GET / HTTP/1.1\r\nHost: example.com\r\n\r\n"
CHUNKED_HEAD = b"POST / HTTP/1.1\r\nHost: example.com\r\nTransfer-Encoding: chunked\r\n\r\n"
SMALL = H1Limits(max_request_line=64, max_fields=4, max_field_size=64)


def test_limits_defaults_and_head_bound() -> None:
    limits = H1Limits()
    assert (limits.max_request_line, limits.max_fields, limits.max_field_size) == (8190, 100, 8190)
    assert limits.max_body_bytes == 0
    # A head made of the largest request line and max_fields largest fields fits.
    assert limits.max_head_bytes == 8190 + 4 + 100 * (8190 + 4) + 2
    assert SMALL.max_head_bytes == 64 + 4 + 4 * 68 + 2


def test_feed_returns_only_what_this_data_completed() -> None:
    parser = H1Parser(limits=H1Limits())
    assert parser.feed(GET[:10]) == []
    events = parser.feed(GET[10:])
    assert [type(e) for e in events] == [RequestHead, EndOfMessage]
    assert parser.feed(b"") == []
    assert not parser.failed


def test_events_come_in_request_order_across_feeds() -> None:
    parser = H1Parser(limits=H1Limits())
    post = b"POST /p HTTP/1.1\r\nHost: x\r\nContent-Length: 4\r\n\r\n"
    first = parser.feed(post + b"ab")
    assert [type(e) for e in first] == [RequestHead, BodyData]
    second = parser.feed(b"cd" + GET)
    assert [type(e) for e in second] == [BodyData, EndOfMessage, RequestHead, EndOfMessage]
    assert second[0] == BodyData(data=b"cd")


def test_bad_request_is_last_and_later_data_is_ignored() -> None:
    parser = H1Parser(limits=H1Limits())
    events = parser.feed(GET + b"G(T / HTTP/1.1\r\n" + GET)
    assert [type(e) for e in events] == [RequestHead, EndOfMessage, BadRequest]
    assert parser.failed
    assert parser.feed(GET) == []
    assert parser.feed(b"") == []


def test_nothing_after_a_request_that_closes() -> None:
    parser = H1Parser(limits=H1Limits())
    close = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n"
    events = parser.feed(close + GET)
    assert [type(e) for e in events] == [RequestHead, EndOfMessage]
    assert parser.feed(GET) == []
    assert parser.feed(b"\x00garbage") == []
    assert not parser.failed  # nothing to answer: the connection just closes


@pytest.mark.parametrize(
    "last",
    [
        # llhttp itself would keep these connections open and parse on:
        b"GET / HTTP/1.0\r\nConnection: keep-alive, close\r\n\r\n",
        b"GET / HTTP/1.1\r\nHost: x\r\nUpgrade: h2c\r\n\r\n",
    ],
)
@pytest.mark.parametrize("after", [b"G(T / HTTP/1.1\r\n", b"FROB / HTTP/1.1\r\n", GET, b"\x00"])
def test_nothing_after_a_request_porch_closes(last: bytes, after: bytes) -> None:
    for pieces in (whole(last + after), byte_by_byte(last + after)):
        events = feed_pieces(pieces, H1Limits())
        assert [type(e) for e in events] == [RequestHead, EndOfMessage]


def test_upgrade_request_is_the_last_one() -> None:
    parser = H1Parser(limits=H1Limits())
    upgrade = b"GET / HTTP/1.1\r\nHost: x\r\nConnection: upgrade\r\nUpgrade: websocket\r\n\r\n"
    events = parser.feed(upgrade + b"\x81\x00" + GET)
    assert [type(e) for e in events] == [RequestHead, EndOfMessage]
    head = events[0]
    assert isinstance(head, RequestHead) and not head.keep_alive
    assert parser.feed(GET) == []


def test_trailers_are_bounded_like_a_head() -> None:
    # llhttp buffers a trailer field whole and porch discards trailers, so
    # without a bound an endless trailer field would grow without limit.
    parser = H1Parser(limits=SMALL)
    events = parser.feed(CHUNKED_HEAD + b"1\r\na\r\n0\r\nX-Trailer: ")
    assert [type(e) for e in events] == [RequestHead, BodyData]
    got: list[object] = []
    fed = 0
    while not got and fed <= SMALL.max_head_bytes:
        got += parser.feed(b"x")
        fed += 1
    assert fed == SMALL.max_head_bytes + 1
    assert got == [BadRequest(status=431, message="chunk metadata or trailer section too large")]


def test_chunk_extensions_are_bounded() -> None:
    parser = H1Parser(limits=SMALL)
    parser.feed(CHUNKED_HEAD + b"1;ext=")
    events = parser.feed(b"v" * (SMALL.max_head_bytes + 1))
    assert events and isinstance(events[-1], BadRequest) and events[-1].status == 431


def test_many_small_chunks_are_not_stalls() -> None:
    # Framing bytes between body pieces are fine however many pieces there are.
    body = b"".join(b"1;e=%d\r\n%c\r\n" % (i, 97 + i % 26) for i in range(500))
    events = feed_pieces(byte_by_byte(CHUNKED_HEAD + body + b"0\r\n\r\n"), SMALL)
    assert [type(e) for e in events] == [RequestHead, BodyData, EndOfMessage]
    assert len(events[1].data) == 500  # type: ignore[union-attr]


def test_head_bound_counts_from_the_end_of_the_previous_request() -> None:
    limits = H1Limits(max_request_line=16, max_fields=2, max_field_size=16)
    bound = limits.max_head_bytes
    # Leading empty lines count: they are bytes the server must hold on to.
    parser = H1Parser(limits=limits)
    assert parser.feed(b"\r\n" * (bound // 2)) == []
    assert parser.feed(b"GET / HT") == [
        BadRequest(status=431, message="request header block too large")
    ]
    # A head just within the bound is fine, also after a previous request.
    parser = H1Parser(limits=limits)
    ok = b"GET / HTTP/1.1\r\nHost: x\r\nX: " + b"a" * 12 + b"\r\n\r\n"
    assert len(ok) <= bound
    events = parser.feed(ok) + parser.feed(ok)
    assert [type(e) for e in events] == [RequestHead, EndOfMessage] * 2


def test_body_limit_delivers_exactly_the_limit_then_413() -> None:
    limits = H1Limits(max_body_bytes=5)
    data = CHUNKED_HEAD + b"3\r\nabc\r\n4\r\ndefg\r\n0\r\n\r\n"
    for pieces in (whole(data), byte_by_byte(data)):
        events = feed_pieces(pieces, limits)
        assert events[1:] == [
            BodyData(data=b"abcde"),
            BadRequest(status=413, message="request body too large"),
        ]


def test_unlimited_body_by_default() -> None:
    body = b"x" * 100_000
    data = b"PUT / HTTP/1.1\r\nHost: x\r\nContent-Length: 100000\r\n\r\n" + body
    events = feed_pieces(whole(data), H1Limits())
    assert events[1] == BodyData(data=body)


@pytest.mark.parametrize(
    ("request_start", "status"),
    [
        (b"FROB", 501),  # an unknown token
        (b"GE ", 501),  # a token cut short by the space
        (b"GETX", 501),
        (b"get", 501),
        (b"G(T", 400),  # a separator
        (b"G\x00T", 400),
        (b" GET", 400),  # whitespace first
        (b"\r\n\r\n\x7f", 400),
        (b"\r\n\r\nMKCALENDAX", 501),
    ],
)
def test_method_status_is_decided_by_the_offending_byte(request_start: bytes, status: int) -> None:
    data = request_start + b" / HTTP/1.1\r\nHost: x\r\n\r\n"
    for prefix in (b"", GET, b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 2\r\n\r\nGE"):
        stream = prefix + data
        outcomes = [
            feed_pieces(whole(stream), H1Limits()),
            feed_pieces(byte_by_byte(stream), H1Limits()),
            feed_pieces([stream[: len(prefix) + 1], stream[len(prefix) + 1 :]], H1Limits()),
        ]
        assert outcomes[1] == outcomes[0] and outcomes[2] == outcomes[0], outcomes
        final = outcomes[0][-1]
        assert isinstance(final, BadRequest) and final.status == status


def test_bad_method_after_a_long_unfinished_request_falls_back_to_400() -> None:
    # The bytes kept to find the offending byte are bounded; past the bound a
    # bad method is answered 400 (still refused, only the status is coarser).
    body = b"b" * 10_000
    post = b"POST / HTTP/1.1\r\nHost: x\r\nContent-Length: 10000\r\n\r\n"
    parser = H1Parser(limits=H1Limits())
    parser.feed(post + body[:5000])
    events = parser.feed(body[5000:] + b"FROB / HTTP/1.1\r\nHost: x\r\n\r\n")
    assert events[-1] == BadRequest(status=400, message="invalid method")
    # Within the bound the same stream gets the precise status.
    events = feed_pieces(whole(post + body + b"FROB / HTTP/1.1\r\n"), H1Limits())
    assert events[-1] == BadRequest(status=501, message="method not implemented")


def test_request_head_fields() -> None:
    data = (
        b"POST /p/a%20th?q=1&r HTTP/1.1\r\nHost: example.com:8080\r\n"
        b"Content-Length: 3\r\nExpect: 100-continue\r\nX-Multi: a\r\nX-Multi: b\r\n\r\nabc"
    )
    head = feed_pieces(whole(data), H1Limits())[0]
    assert head == RequestHead(
        method="POST",
        path=b"/p/a%20th",
        query=b"q=1&r",
        http_version="1.1",
        headers=(
            (b"Host", b"example.com:8080"),
            (b"Content-Length", b"3"),
            (b"Expect", b"100-continue"),
            (b"X-Multi", b"a"),
            (b"X-Multi", b"b"),
        ),
        host=b"example.com:8080",
        keep_alive=True,
        expect_continue=True,
        content_length=3,
        chunked=False,
        target=b"/p/a%20th?q=1&r",
    )


def test_chunked_head_has_no_content_length() -> None:
    head = feed_pieces(whole(CHUNKED_HEAD + b"0\r\n\r\n"), H1Limits())[0]
    assert isinstance(head, RequestHead)
    assert head.chunked and head.content_length is None


@pytest.mark.parametrize(
    "host",
    [
        b"example.com",
        b"EXAMPLE.com.",
        b"a-b_c~d",
        b"127.0.0.1:80",
        b"[::1]",
        b"[v1.x]:1",
        b"",
        b"x:",
    ],
)
def test_valid_host_values(host: bytes) -> None:
    data = b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
    head = feed_pieces(whole(data), H1Limits())[0]
    assert isinstance(head, RequestHead) and head.host == host


@pytest.mark.parametrize(
    "host",
    [b"a b", b"a/b", b"a@b", b"a:b", b"[::1", b"a\\b", b"a?b", b"a#b", b"[::1]x", b'a"b'],
)
def test_invalid_host_values(host: bytes) -> None:
    data = b"GET / HTTP/1.1\r\nHost: " + host + b"\r\n\r\n"
    assert feed_pieces(whole(data), H1Limits()) == [
        BadRequest(status=400, message="invalid Host header")
    ]


@pytest.mark.xfail(
    strict=True,
    reason="the head bound counts a pipelined head only from the first read after the "
    "previous request ended: httptools reports no offset for a message's end, so the bytes "
    "of the next head in that same read go uncounted (the bound still holds, one read late)",
)
def test_head_bound_is_exact_for_a_pipelined_head() -> None:
    limits = H1Limits(max_request_line=16, max_fields=2, max_field_size=16)
    stream = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"GET / HTTP/1.1\r\nA: " + b"a" * 60
    assert feed_pieces(whole(stream), limits) == feed_pieces(byte_by_byte(stream), limits)


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (b"GET / HTTP/1.1\r\n", b"GET / HTTP/1.0\r\n"),
        (b"GET / HTTP/1.0\r\n", b"GET / HTTP/1.1\r\n"),
        (b"GET /HTTP/1.1 HTTP/1.0\r\n", b"GET /?v=HTTP/1.0 HTTP/1.1\r\n"),
        (b"GET /  HTTP/1.1\r\n", b"GET / HTTP/1.2\r\n"),
        (b"\r\nGET / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\n"),
    ],
)
def test_version_is_the_same_whatever_the_reads(first: bytes, second: bytes) -> None:
    # feed() reads "1.1" off a request line that is whole in one read and asks
    # llhttp otherwise (split lines, pipelined followers, leading CRLFs): both
    # ways must agree, and a version is never carried over to the next request.
    one = first + b"Host: a\r\nConnection: keep-alive\r\n\r\n"  # an HTTP/1.0 one too
    stream = one + second + b"Host: a\r\nConnection: close\r\n\r\n"
    expected = [_version(line) for line in (first, second)]
    cuts = [
        [stream],
        [stream[:5], stream[5:]],
        [stream[: len(one)], stream[len(one) :]],
        [stream[: len(one) + 1], stream[len(one) + 1 :]],
        list(byte_by_byte(stream)),
    ]
    for pieces in cuts:
        heads = [e for e in feed_pieces(pieces, H1Limits()) if isinstance(e, RequestHead)]
        assert [head.http_version for head in heads] == expected, pieces


def _version(line: bytes) -> str:
    return "1.1" if line.rstrip().endswith((b"HTTP/1.1", b"HTTP/1.2")) else "1.0"


def test_proxy_connection_does_not_make_an_http10_request_http11() -> None:
    # llhttp reads Proxy-Connection like Connection: its keep-alive verdict is no
    # evidence of the version, which comes from the request line alone.
    head = whole_events(b"GET / HTTP/1.0\r\nProxy-Connection: keep-alive\r\n\r\n")[0]
    assert isinstance(head, RequestHead)
    assert head.http_version == "1.0"
    assert head.keep_alive is False


def whole_events(data: bytes) -> list[object]:
    return list(feed_pieces(whole(data), H1Limits()))


@pytest.mark.parametrize(
    ("first", "second"),
    [
        (b"GET / HTTP/1.1\r\n", b"POST / HTTP/1.1\r\n"),
        (b"POST / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\n"),
        (b"GET / HTTP/1.0\r\n", b"HEAD / HTTP/1.1\r\n"),
        (b"GETX / HTTP/1.1\r\n", b"GET / HTTP/1.1\r\n"),  # not GET (llhttp's verdict)
        (b"\r\nGET / HTTP/1.1\r\n", b"DELETE / HTTP/1.1\r\n"),
    ],
)
def test_method_is_the_same_whatever_the_reads(first: bytes, second: bytes) -> None:
    # feed() sees "GET " at the start of a request's first read; llhttp is asked
    # otherwise. Both must agree, and no verdict carries over to the next request.
    one = first + b"Host: a\r\nConnection: keep-alive\r\n\r\n"
    stream = one + second + b"Host: a\r\nConnection: close\r\n\r\n"
    reference = [
        (e.method if isinstance(e, RequestHead) else type(e).__name__)
        for e in feed_pieces(byte_by_byte(stream), H1Limits())
        if isinstance(e, (RequestHead, BadRequest))
    ]
    for pieces in ([stream], [stream[:3], stream[3:]], [stream[: len(one)], stream[len(one) :]]):
        seen = [
            (e.method if isinstance(e, RequestHead) else type(e).__name__)
            for e in feed_pieces(pieces, H1Limits())
            if isinstance(e, (RequestHead, BadRequest))
        ]
        assert seen == reference, pieces


def test_a_bad_host_after_good_ones_on_the_same_connection_is_refused() -> None:
    parser = H1Parser(limits=H1Limits())
    for _ in range(2):  # the second one is checked against the connection's last good Host
        events = parser.feed(b"GET / HTTP/1.1\r\nHost: good.example\r\n\r\n")
        assert isinstance(events[0], RequestHead) and events[0].host == b"good.example"
    events = parser.feed(b"GET / HTTP/1.1\r\nHost: bad host\r\n\r\n")
    assert [(type(e), getattr(e, "status", None)) for e in events] == [(BadRequest, 400)]


def test_a_released_parser_parses_nothing_and_leaves_no_cycle() -> None:
    # llhttp holds the parser's bound methods: a cycle, until release() breaks it.
    gc.collect()
    gc.freeze()  # what earlier tests left is not this test's to judge
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for _ in range(3):
            parser = H1Parser(limits=H1Limits())
            assert [type(e) for e in parser.feed(GET)] == [RequestHead, EndOfMessage]
            parser.release()
            assert parser.feed(GET) == []
        del parser
        gc.collect()
        assert not [o for o in gc.garbage if isinstance(o, H1Parser)]
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.unfreeze()
