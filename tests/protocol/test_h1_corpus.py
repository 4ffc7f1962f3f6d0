"""Every corpus request, fed whole, byte by byte and at random splits, gives the same events."""

from __future__ import annotations

import pytest
from h1_corpus import (
    SPLIT_SEEDS,
    CorpusCase,
    CorpusFormatError,
    ExpectedRequest,
    byte_by_byte,
    decode_escapes,
    feed_pieces,
    load_corpus,
    parse_case,
    random_split,
    whole,
)

from porch.protocol.events import BadRequest, BodyData, EndOfMessage, Event, RequestHead

VALID = load_corpus("valid")
INVALID = load_corpus("invalid")


def _params(cases: list[CorpusCase]) -> list[object]:
    return [
        pytest.param(
            case,
            id=case.name,
            marks=[pytest.mark.xfail(strict=True, reason=case.xfail)] if case.xfail else [],
        )
        for case in cases
    ]


def replay_all_ways(data: bytes, case: CorpusCase) -> list[Event]:
    """Feed ``data`` whole, byte by byte and at seeded random splits; all must agree."""
    expected = feed_pieces(whole(data), case.limits)
    assert feed_pieces(byte_by_byte(data), case.limits) == expected, "byte by byte differs"
    for seed in SPLIT_SEEDS:
        pieces = random_split(data, seed)
        assert feed_pieces(pieces, case.limits) == expected, f"split {seed} differs"
    return expected


def check_request(head: Event, body: bytes, expected: ExpectedRequest) -> None:
    assert isinstance(head, RequestHead)
    assert head.method == expected.method
    assert head.path == expected.path
    assert head.query == expected.query
    assert head.http_version == expected.version
    assert len(head.headers) == expected.headers
    assert head.keep_alive is expected.keep_alive
    assert head.expect_continue is expected.expect_continue
    if expected.check_host:
        assert head.host == expected.host
    for line in expected.header_lines:
        assert line in head.headers, f"{line!r} not in {head.headers!r}"
    assert body == expected.body
    # The framing the head announces matches the body that followed it.
    if head.chunked:
        assert head.content_length is None
    elif head.content_length is not None:
        assert head.content_length == len(body)
    else:
        assert body == b""


def split_requests(events: list[Event]) -> list[tuple[Event, bytes]]:
    """(head, body) per request; asserts the Head, BodyData*, EndOfMessage grammar."""
    requests: list[tuple[Event, bytes]] = []
    index = 0
    while index < len(events):
        head = events[index]
        assert isinstance(head, RequestHead), f"expected a RequestHead at {index}: {events}"
        index += 1
        body = b""
        if index < len(events) and isinstance(events[index], BodyData):
            body = events[index].data  # type: ignore[union-attr]
            index += 1
        assert index < len(events) and isinstance(events[index], EndOfMessage), events
        index += 1
        requests.append((head, body))
    return requests


@pytest.mark.parametrize("case", _params(VALID))
def test_valid_request(case: CorpusCase) -> None:
    events = replay_all_ways(case.data, case)
    requests = split_requests(events)
    assert len(requests) == len(case.requests)
    for (head, body), expected in zip(requests, case.requests, strict=True):
        check_request(head, body, expected)


@pytest.mark.parametrize("case", _params(VALID))
def test_valid_request_pipelined_three_times(case: CorpusCase) -> None:
    single = replay_all_ways(case.data, case)
    tripled = replay_all_ways(case.data * 3, case)
    last = split_requests(single)[-1][0]
    assert isinstance(last, RequestHead)
    if last.keep_alive:
        assert tripled == single * 3
    else:
        # RFC 9112 §9.6: nothing after a request that ends the connection.
        assert tripled == single


@pytest.mark.parametrize("case", _params(INVALID))
def test_invalid_request(case: CorpusCase) -> None:
    events = replay_all_ways(case.data, case)
    assert events, "no events: the parser is still waiting for bytes"
    final = events[-1]
    assert isinstance(final, BadRequest), events
    assert final.status == case.status, final.message
    assert final.message
    assert sum(isinstance(e, RequestHead) for e in events) == case.heads_before
    assert not any(isinstance(e, BadRequest) for e in events[:-1])


def test_corpus_size() -> None:
    assert len(VALID) >= 30
    assert len(INVALID) >= 60
    names = [case.name for case in VALID + INVALID]
    assert len(set(names)) == len(names)


# --- the corpus format itself -------------------------------------------------------


def test_escapes_decode() -> None:
    assert decode_escapes(rb"a\r\nb\tc\\d\x00\xFF") == b"a\r\nb\tc\\d\x00\xff"


@pytest.mark.parametrize("text", [rb"\q", rb"\x4", rb"\xZZ", b"end\\"])
def test_unknown_escape_is_an_error(text: bytes) -> None:
    with pytest.raises(CorpusFormatError):
        decode_escapes(text)


def test_physical_line_breaks_are_not_request_bytes() -> None:
    case = parse_case(
        "t",
        b"# request: 1\n# method: GET\n# path: /\n# version: 1.1\n# headers: 1\n"
        b"# keep_alive: true\nGET / HTTP/1.1\\r\\n\nHost: x\\r\\n\n\\r\\n\n",
        valid=True,
    )
    assert case.data == b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    assert case.requests[0].method == "GET"


@pytest.mark.parametrize(
    "raw",
    [
        b"# status: 400\nGET / \n",  # trailing space on a physical line
        b"# status: 400\nGET /\x01\n",  # raw control byte
        b"# status: 400\n# request: 1\nGET /\n",  # invalid case with requests
        b"# heads_before: 1\nGET /\n",  # no status
        b"# status: 400\n",  # no request bytes
        b"# status: 400\n# limits: max_nothing=1\nGET /\n",
    ],
)
def test_malformed_corpus_files_are_refused(raw: bytes) -> None:
    with pytest.raises(CorpusFormatError):
        parse_case("bad", raw, valid=False)


def test_valid_case_needs_its_fields() -> None:
    with pytest.raises(CorpusFormatError):
        parse_case("bad", b"# request: 1\n# method: GET\nGET /\n", valid=True)
    with pytest.raises(CorpusFormatError):
        parse_case("bad", b"# method: GET\nGET /\n", valid=True)
