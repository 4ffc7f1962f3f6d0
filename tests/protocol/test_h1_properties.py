"""Hypothesis properties of H1Parser: split independence, never raising, bodies as framed."""

from __future__ import annotations

from dataclasses import dataclass

from h1_corpus import feed_pieces, whole
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from porch.protocol.events import BadRequest, BodyData, EndOfMessage, Event, RequestHead
from porch.protocol.h1 import H1Limits, H1Parser

LIMITS = H1Limits()
SMALL_LIMITS = H1Limits(max_request_line=40, max_fields=3, max_field_size=40, max_body_bytes=64)
FAST = settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])

_TCHARS = "!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
_PCHARS = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789-._~!$&'()*+,;=:@%"
_RESERVED_NAMES = {
    "host",
    "content-length",
    "transfer-encoding",
    "connection",
    "expect",
    "upgrade",
}


@dataclass(frozen=True)
class Built:
    """One generated request: its bytes and what the parser must report."""

    data: bytes
    method: str
    path: bytes
    query: bytes
    body: bytes
    chunked: bool
    field_count: int


@st.composite
def splits(draw: st.DrawFn, data: bytes) -> list[bytes]:
    """Any split of ``data``: sorted distinct cut points drawn by hypothesis."""
    if len(data) < 2:
        return [data]
    points = draw(st.lists(st.integers(1, len(data) - 1), max_size=min(40, len(data) - 1)))
    cuts = sorted(set(points))
    return [data[a:b] for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True)]


@st.composite
def chunked_encoding(draw: st.DrawFn, body: bytes) -> bytes:
    """``body`` cut into random chunks, with random extensions and trailers."""
    out = []
    rest = body
    while rest:
        size = draw(st.integers(1, len(rest)))
        ext = draw(st.sampled_from([b"", b";a", b";a=b", b';q="x y"', b";n=1;m"]))
        hex_size = draw(st.sampled_from([b"%x", b"%X", b"0%x"])) % size
        out.append(hex_size + ext + b"\r\n" + rest[:size] + b"\r\n")
        rest = rest[size:]
    out.append(b"0" + draw(st.sampled_from([b"", b";end"])) + b"\r\n")
    trailers = draw(st.lists(st.sampled_from([b"X-Sum: 1", b"Expires: 0", b"X-E:"]), max_size=2))
    out.extend(trailer + b"\r\n" for trailer in trailers)
    out.append(b"\r\n")
    return b"".join(out)


@st.composite
def requests(draw: st.DrawFn, *, body: bytes | None = None) -> Built:
    """A valid keep-alive HTTP/1.1 request with an optional body in either framing."""
    method = draw(st.sampled_from(["GET", "POST", "PUT", "DELETE", "PATCH", "OPTIONS", "HEAD"]))
    path = b"/" + draw(st.text(_PCHARS, max_size=20)).encode()
    query = draw(st.text(_PCHARS + "/?", max_size=12)).encode()
    target = path + (b"?" + query if query or draw(st.booleans()) else b"")
    names = draw(
        st.lists(
            st.text(_TCHARS, min_size=1, max_size=12).filter(
                lambda n: n.lower() not in _RESERVED_NAMES
            ),
            max_size=5,
        )
    )
    values = [draw(st.binary(max_size=16).map(_field_value)) for _ in names]
    fields = [b"Host: example.com"] + [
        name.encode() + b":" + draw(st.sampled_from([b"", b" ", b"\t "])) + value
        for name, value in zip(names, values, strict=True)
    ]
    if body is None:
        body = draw(st.binary(max_size=300))
    framings = ["length", "chunked"] if body else ["none", "length", "chunked"]
    framing = draw(st.sampled_from(framings))
    if framing == "length":
        fields.append(b"Content-Length: %d" % len(body))
        payload = body
    elif framing == "chunked":
        fields.append(b"Transfer-Encoding: chunked")
        payload = draw(chunked_encoding(body))
    else:
        payload = b""
    order = draw(st.permutations(fields))
    head = method.encode() + b" " + target + b" HTTP/1.1\r\n" + b"".join(f + b"\r\n" for f in order)
    return Built(
        data=head + b"\r\n" + payload,
        method=method,
        path=path,
        query=query,
        body=body,
        chunked=framing == "chunked",
        field_count=len(fields),
    )


def _field_value(raw: bytes) -> bytes:
    # field-vchar and inner SP/HTAB only (RFC 9110 §5.5): no CR, LF, NUL or controls,
    # and no leading/trailing whitespace (that is OWS, not value).
    value = bytes(b if b >= 0x21 and b != 0x7F else 0x61 for b in raw)
    return value


def _check_grammar(events: list[Event]) -> None:
    """(Head, Body?, End)* then optionally a truncated request, optionally one BadRequest last."""
    state = "idle"
    for index, event in enumerate(events):
        if isinstance(event, BadRequest):
            assert index == len(events) - 1, events
            assert 400 <= event.status <= 599 and event.message
        elif isinstance(event, RequestHead):
            assert state == "idle", events
            state = "head"
        elif isinstance(event, BodyData):
            assert state in ("head", "body") and event.data, events
            state = "body"
        else:
            assert isinstance(event, EndOfMessage)
            assert state in ("head", "body"), events
            state = "idle"


# --- properties ---------------------------------------------------------------------


@FAST
@given(st.data(), st.lists(requests(), min_size=1, max_size=4))
def test_any_split_of_a_valid_pipelined_stream_gives_the_same_events(
    data: st.DataObject, built: list[Built]
) -> None:
    stream = b"".join(request.data for request in built)
    expected = feed_pieces(whole(stream), LIMITS)
    assert feed_pieces(data.draw(splits(stream)), LIMITS) == expected
    # ...and those events are the requests that were built.
    heads = [e for e in expected if isinstance(e, RequestHead)]
    assert len(heads) == len(built)
    assert sum(isinstance(e, EndOfMessage) for e in expected) == len(built)
    for head, request in zip(heads, built, strict=True):
        assert (head.method, head.path, head.query) == (request.method, request.path, request.query)
        assert head.chunked is request.chunked
        assert len(head.headers) == request.field_count
        assert head.keep_alive and head.host == b"example.com"


@FAST
@given(st.data(), st.binary(max_size=2000), st.integers(0, 3))
def test_body_bytes_are_exactly_what_was_framed(
    data: st.DataObject, body: bytes, repeat: int
) -> None:
    built = [data.draw(requests(body=body)) for _ in range(repeat + 1)]
    stream = b"".join(request.data for request in built)
    events = feed_pieces(data.draw(splits(stream)), LIMITS)
    bodies: list[bytes] = []
    for event in events:
        if isinstance(event, RequestHead):
            bodies.append(b"")
        elif isinstance(event, BodyData):
            bodies[-1] += event.data
        else:
            assert not isinstance(event, BadRequest), event
    assert bodies == [body] * (repeat + 1)


def _arbitrary_streams() -> st.SearchStrategy[bytes]:
    """Random bytes, and valid streams with bytes flipped, inserted or cut off."""
    valid = st.lists(requests(), min_size=1, max_size=3).map(
        lambda built: b"".join(r.data for r in built)
    )

    @st.composite
    def mutated(draw: st.DrawFn) -> bytes:
        stream = bytearray(draw(valid))
        for _ in range(draw(st.integers(1, 4))):
            position = draw(st.integers(0, len(stream)))
            byte = draw(st.sampled_from([0, 9, 10, 13, 32, 44, 58, 59, 127, 255, 71, 48]))
            action = draw(st.sampled_from(["insert", "replace", "delete"]))
            if action == "insert" or position == len(stream):
                stream.insert(position, byte)
            elif action == "replace":
                stream[position] = byte
            else:
                del stream[position]
        return bytes(stream[: draw(st.integers(0, len(stream)))] if draw(st.booleans()) else stream)

    return st.one_of(st.binary(max_size=300), mutated(), valid.map(lambda s: s + b"\x00"))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), _arbitrary_streams(), st.sampled_from([LIMITS, SMALL_LIMITS]))
def test_arbitrary_bytes_never_raise(data: st.DataObject, stream: bytes, limits: H1Limits) -> None:
    parser = H1Parser(limits=limits)
    events = parser.feed(stream)
    _check_grammar(events)
    assert parser.failed == any(isinstance(e, BadRequest) for e in events)
    if parser.failed:
        assert parser.feed(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == []
    _check_grammar(feed_pieces(data.draw(splits(stream)), limits))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.data(), _arbitrary_streams(), st.sampled_from([LIMITS, SMALL_LIMITS]))
def test_arbitrary_bytes_give_the_same_events_at_any_split(
    data: st.DataObject, stream: bytes, limits: H1Limits
) -> None:
    # Even for garbage the outcome (which error, 400 vs 501 vs 431) must not
    # depend on how the reads were cut: syntax errors are found in stream
    # order and porch's own refusals are all decided at the end of the head.
    split = data.draw(splits(stream))
    assert feed_pieces(split, limits) == feed_pieces(whole(stream), limits)
