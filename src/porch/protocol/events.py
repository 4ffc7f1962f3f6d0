"""Events a protocol core emits: small values (treat them as immutable), no behaviour."""

from __future__ import annotations

from dataclasses import dataclass

# The events made for every request (RequestHead, BodyData) are dataclasses for
# their __eq__ and __repr__ (tests, logs) but write their own __init__: the one
# dataclasses generates is Python code that the compiled core calls through the
# interpreter (0.3 µs of a hello request's 6.2 µs in-process), and a frozen one
# sets each field through object.__setattr__.


@dataclass(slots=True, init=False)
class RequestHead:
    """A parsed, validated request head.

    ``path`` and ``query`` are the raw (still percent-encoded) bytes of the
    request-target; for an absolute-form target (RFC 9112 §3.2.2) ``path`` is
    the path part and ``host`` is the target's authority. Header names and
    values are the raw bytes as received, in order. ``target`` is the
    request-target exactly as received (the access log's request line).
    """

    method: str
    path: bytes
    query: bytes
    http_version: str  # "1.0" or "1.1"
    headers: tuple[tuple[bytes, bytes], ...]
    host: bytes | None  # authority from an absolute-form target, else the Host header
    keep_alive: bool
    expect_continue: bool
    content_length: int | None  # None when chunked or no body
    chunked: bool
    target: bytes

    def __init__(
        self,
        method: str,
        path: bytes,
        query: bytes,
        http_version: str,
        headers: tuple[tuple[bytes, bytes], ...],
        host: bytes | None,
        keep_alive: bool,
        expect_continue: bool,
        content_length: int | None,
        chunked: bool,
        target: bytes = b"",
    ) -> None:
        self.method = method
        self.path = path
        self.query = query
        self.http_version = http_version
        self.headers = headers
        self.host = host
        self.keep_alive = keep_alive
        self.expect_continue = expect_continue
        self.content_length = content_length
        self.chunked = chunked
        self.target = target


@dataclass(slots=True, init=False)
class BodyData:
    """A piece of the request body (de-chunked)."""

    data: bytes

    def __init__(self, data: bytes) -> None:
        self.data = data


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The request (head and body) is complete; trailers, if any, were discarded."""


@dataclass(frozen=True, slots=True)
class BadRequest:
    """The peer broke the protocol: answer ``status`` and close the connection."""

    status: int
    message: str


Event = RequestHead | BodyData | EndOfMessage | BadRequest
