"""Events a protocol core emits: small frozen values, no behaviour."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(slots=True)
class RequestHead:
    """A parsed, validated request head (treat it as immutable).

    Not ``frozen``: a frozen dataclass sets each field through
    ``object.__setattr__``, which tripled the cost of building one head per
    request (about 1 us of ~28 us in the hello benchmark's Python work).

    ``path`` and ``query`` are the raw (still percent-encoded) bytes of the
    request-target; for an absolute-form target (RFC 9112 §3.2.2) ``path`` is
    the path part and ``host`` is the target's authority. Header names and
    values are the raw bytes as received, in order.
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


@dataclass(frozen=True, slots=True)
class BodyData:
    """A piece of the request body (de-chunked)."""

    data: bytes


@dataclass(frozen=True, slots=True)
class EndOfMessage:
    """The request (head and body) is complete; trailers, if any, were discarded."""


@dataclass(frozen=True, slots=True)
class BadRequest:
    """The peer broke the protocol: answer ``status`` and close the connection."""

    status: int
    message: str


Event = RequestHead | BodyData | EndOfMessage | BadRequest
