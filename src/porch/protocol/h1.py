"""HTTP/1.1 requests as a sans-IO core: request bytes in, events out.

Responses are serialized and framed by :mod:`porch.protocol.framing`.

httptools (llhttp) does the byte-level parsing and already refuses most
smuggling vectors (Content-Length with Transfer-Encoding, duplicate or signed
Content-Length, bare CR, NUL, obs-fold, whitespace before the colon, chunked not
last). This module adds what llhttp leaves to the server: size limits (also on
trailers), the version, Host and Connection rules, transfer codings we do not
implement, Expect, and trailers that must never reach the app. It is the only
module importing httptools.

The events never depend on how the stream was cut into reads (tests/protocol
replays a corpus whole, byte by byte and at random splits): llhttp finds syntax
errors in stream order; porch's own refusals of single fields are answered when
the head is complete (httptools reports a field only once the next one starts);
the head-bytes bound is enforced by never handing llhttp a byte past it; a body
over the limit is cut at exactly the limit. Known limit: a pipelined head that
starts in the same read as the end of the previous request is counted against
the head bound from the next read on only.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Final

import httptools

from porch.errors import ProtocolError
from porch.protocol.events import BadRequest, BodyData, EndOfMessage, Event, RequestHead
from porch.protocol.h1_rules import (
    HOST,
    NUMBER_SIGN,
    TCHAR,
    http_version,
    split_target,
    transfer_coding_error,
)

__all__ = ["H1Limits", "H1Parser"]

_GOOD_HOSTS: Final[set[bytes]] = set()  # Host values already validated (a server sees few)
# Byte values, not b"?": ``int in bytes`` is a plain scan, while ``bytes in bytes``
# first tries the operand as an int and formats (then drops) a TypeError.
_QUESTION_MARK: Final = ord("?")
_SP: Final = ord(" ")
_G: Final = ord("G")  # "GET " starting a request line (feed)
_E: Final = ord("E")
_T: Final = ord("T")
_HTAB: Final = ord("\t")
# Bytes kept from the start of an unfinished request, only to classify a bad method.
_CARRY_MAX: Final = 4096


@dataclass(frozen=True, slots=True, kw_only=True)
class H1Limits:
    """Request size limits; 0 for max_body_bytes means unlimited."""

    max_request_line: int = 8190
    max_fields: int = 100
    max_field_size: int = 8190
    max_body_bytes: int = 0

    @property
    def max_head_bytes(self) -> int:
        # Everything a valid head can hold, so a head that never ends is bounded
        # even while llhttp is still accumulating one field.
        return self.max_request_line + 4 + self.max_fields * (self.max_field_size + 4) + 2


class H1Parser:
    """Parses a stream of HTTP/1.x requests into events.

    ``feed(data)`` returns the events the data completed. A violation becomes a
    final :class:`BadRequest` event (after the events of the requests before it,
    which are answered first); later data is ignored. After a request that ends
    the connection (``keep_alive`` false) later data is ignored too: RFC 9112
    §9.6 forbids processing further requests on it.
    """

    __slots__ = (
        "_body_bytes",
        "_bound",
        "_carry",
        "_closing_at",
        "_conn_close",
        "_conn_keep_alive",
        "_content_length",
        "_done",
        "_events",
        "_expect",
        "_failed",
        "_good_host",
        "_had_te",
        "_head_bytes",
        "_headers",
        "_host_count",
        "_host_value",
        "_idle",
        "_in_head",
        "_keep_alive",
        "_limits",
        "_method_get",
        "_parser",
        "_rare_seen",
        "_refusal",
        "_stall_bytes",
        "_upgrade_body",
        "_upgrade_header",
        "_url",
        "_version_11",
    )

    def __init__(self, *, limits: H1Limits) -> None:
        self._limits = limits
        self._bound = limits.max_head_bytes
        self._parser = _new_llhttp(self)
        self._events: list[Event] = []
        self._failed = False
        self._done = False
        self._closing_at = -1
        self._idle = True  # between two requests
        self._carry: bytes | None = b""
        self._stall_bytes = 0
        self._head_bytes = 0  # since the end of the previous request, so leading CRLFs count
        self._rare_seen = True
        self._version_11 = False
        self._method_get = False
        self._good_host = b""  # this connection's last valid Host (clients repeat theirs)
        self._upgrade_body = b""  # the framing of an Upgrade request's body (see _parse)
        self.on_message_begin()  # the per-request fields
        self._idle = True

    def on_message_begin(self) -> None:
        """llhttp: a request starts (reset here, not in a helper: once per request)."""
        self._idle = False
        self._url = b""
        self._refusal: ProtocolError | None = None
        self._headers: list[tuple[bytes, bytes]] = []
        self._in_head = True
        self._host_count = 0
        self._host_value = b""
        self._content_length: bytes | None = None
        self._keep_alive = True
        self._body_bytes = 0
        if self._rare_seen:  # most requests carry none of these: skip five stores
            self._rare_seen = False
            self._expect = False
            self._had_te = False
            self._upgrade_header = False
            self._conn_close = False
            self._conn_keep_alive = False

    def release(self) -> None:
        """The connection is gone: parse nothing more, and let go of llhttp.

        llhttp's parser holds this parser's bound methods as its callbacks, a
        reference cycle that only the cyclic garbage collector would free: with
        ``Connection: close`` on every request it ran every few dozen connections
        and cost 7% of the worker's CPU. Swapping in an inert one breaks it.
        """
        self._done = True
        self._events = _NO_EVENTS
        self._parser = _RELEASED

    @property
    def failed(self) -> bool:
        """True once a BadRequest was emitted: the connection must close."""
        return self._failed

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completed (possibly none)."""
        if self._failed or self._done:
            return []
        events = self._events = []
        carry = self._carry
        if self._idle:
            # The next request starts here. httptools only gives the version as a
            # string formatted on every call (about 0.3 µs, the costliest step of a
            # hello request's parse), so read it from the request line when the
            # line is whole in this read: the first LF ends it, and llhttp
            # accepts the line only if it is the method, target and version.
            # (Pipelined followers, split lines, leading CRLFs: asked of llhttp.)
            newline = data.find(b"\n")
            self._version_11 = newline > 9 and data[newline - 10 : newline] == b" HTTP/1.1\r"
            # Likewise the method (get_method() is a call by name, ~0.05 µs): a
            # request starting "GET " is a GET, or llhttp refuses it.
            self._method_get = len(data) > 4 and (
                data[3] == _SP and data[0] == _G and data[1] == _E and data[2] == _T
            )
        bound = self._bound
        rest = data
        error: tuple[int, str] | None = None
        while rest and error is None and not self._done:
            if self._in_head:
                # Hand llhttp no byte past the head bound, so an endless head is
                # refused at the same byte however the stream was split.
                room = bound - self._head_bytes
                if room <= 0:
                    error = 431, "request header block too large"
                    break
                if len(rest) <= room:
                    piece, rest = rest, b""
                else:
                    piece, rest = rest[:room], rest[room:]
                self._head_bytes += len(piece)
            else:
                piece, rest = rest, b""
                self._stall_bytes += len(piece)
            error = self._parse(piece, carry, data)
        if self._closing_at >= 0:
            del events[self._closing_at :]  # nothing after the last request counts
            self._done = True
            self._events = _NO_EVENTS
            return events
        if error is None and not self._in_head and self._stall_bytes > bound:
            # Bytes in the body phase that are no body: chunk-size lines,
            # extensions, trailer fields (llhttp buffers a trailer field whole).
            error = 431, "chunk metadata or trailer section too large"
        if error is not None:
            self._fail(*error)
        # The caller owns the events now: holding them (and the heads in them) until
        # the next read would free them later, out of the CPU caches.
        self._events = _NO_EVENTS
        if self._idle:
            self._carry = b""
        elif carry is not None:
            carry += data
            self._carry = carry if len(carry) <= _CARRY_MAX else None
        return events

    def _parse(self, piece: bytes, carry: bytes | None, data: bytes) -> tuple[int, str] | None:
        """Run llhttp over ``piece`` (part of ``data``); return the error to answer, if any."""
        try:
            self._parser.feed_data(piece)
        except httptools.HttpParserUpgrade as exc:
            if not self._upgrade_body:
                # llhttp stops at an Upgrade; porch upgrades nothing, so the request was
                # answered as a plain one (keep_alive false) and the connection closes.
                self._done = True
                return None
            # Parsed below, outside this handler: inside it, a callback's ProtocolError
            # would be chained to the Upgrade and not be found as the cause.
            rest = piece[exc.args[0] :]
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if not isinstance(cause, ProtocolError):  # pragma: no cover - a bug here
                raise
            return cause.status, str(cause)
        except httptools.HttpParserInvalidMethodError:
            if self._closing_at >= 0:
                return 400, "invalid method"  # after the last request: dropped anyway
            return _method_error(None if carry is None else carry + data)
        except httptools.HttpParserError as exc:
            return _parser_error(exc)
        else:
            return None
        return self._read_upgrade_body(rest, data)

    def _read_upgrade_body(self, rest: bytes, data: bytes) -> tuple[int, str] | None:
        """An Upgrade request with a body (``curl --http2 -d``): llhttp stops right after
        the head, as if the body were the new protocol, and reports the message complete.
        porch upgrades nothing, so the body is read as any other (RFC 9110 §7.8: a server
        may ignore Upgrade): a second llhttp parser, given the same framing, parses it.
        """
        framing, self._upgrade_body = self._upgrade_body, b""
        del self._events[-1]  # llhttp's early "complete": the body comes first
        self._closing_at = -1
        self._in_head = self._idle = False
        body_parser = httptools.HttpRequestParser(_BodyOnly(self))
        body_parser.feed_data(b"POST / HTTP/1.1\r\n" + framing + b"\r\n\r\n")
        self._parser = body_parser
        return self._parse(rest, None, data) if rest else None

    def _refuse(self, status: int, message: str) -> None:
        # Checks of single fields are answered once the head is complete, so a
        # syntax error anywhere in the head wins whatever the split: httptools
        # reports a field only when the next one starts, which depends on reads.
        if self._refusal is None:
            self._refusal = ProtocolError(status, message)

    def _fail(self, status: int, message: str) -> None:
        self._failed = True
        self._events.append(BadRequest(status=status, message=message))

    # --- httptools callbacks (called from feed) ------------------------------

    def on_url(self, url: bytes) -> None:
        if len(self._url) + len(url) > self._limits.max_request_line:
            self._refuse(414, "request-target too long")
        else:
            self._url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # RFC 9112 §7.1.2: trailer fields are discarded, never merged
        headers = self._headers
        if len(headers) >= self._limits.max_fields:
            self._refuse(431, "too many request header fields")
            return
        if value and (value[-1] == _SP or value[-1] == _HTAB):
            value = value.rstrip(b" \t")  # RFC 9112 §5.1: OWS is not part of the value
        if len(name) + len(value) > self._limits.max_field_size:
            self._refuse(431, "request header field too large")
            return
        headers.append((name, value))
        size = len(name)
        if size == 4 and (name == b"Host" or name.lower() == b"host"):  # nearly always: no call
            self._host_count += 1
            self._host_value = value
        elif _SPECIAL_MIN <= size <= _SPECIAL_MAX and (name[0] | 0x20) == _SPECIAL_FIRST[size]:
            self._special_header(name.lower(), value)

    def _special_header(self, lname: bytes, value: bytes) -> None:
        if lname == b"content-length":
            self._content_length = value  # llhttp already checked: digits only, single
            return
        self._rare_seen = True
        if lname == b"transfer-encoding":
            self._had_te = True
            refusal = transfer_coding_error(value)
            if refusal is not None:
                self._refuse(*refusal)
        elif lname == b"connection":
            # RFC 9112 §9.3: "close" ends the connection whatever else is listed.
            for token in value.lower().split(b","):
                token = token.strip(b" \t")
                if token == b"close":
                    self._conn_close = True
                elif token == b"keep-alive":
                    self._conn_keep_alive = True
        elif lname == b"expect":
            if value.lower() == b"100-continue":
                self._expect = True
            else:
                self._refuse(417, "unsupported expectation")
        elif lname == b"upgrade":
            self._upgrade_header = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        self._stall_bytes = 0
        if self._refusal is not None:
            raise self._refusal
        parser = self._parser
        if self._version_11:  # seen in the request line by feed()
            self._version_11 = False
            version = "1.1"
        else:
            raw_version = parser.get_http_version()
            version = _VERSIONS.get(raw_version) or http_version(raw_version)
        host_count = self._host_count
        if host_count != 1 and (host_count > 1 or version == "1.1"):
            # RFC 9112 §3.2: exactly one Host in HTTP/1.1
            raise ProtocolError(400, "missing or duplicate Host header")
        if self._had_te and version == "1.0":
            raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")  # RFC 9112 §6.1
        if self._method_get:  # seen at the start of the request line by feed()
            self._method_get = False
            method = "GET"
        else:
            raw_method = parser.get_method()
            if raw_method == b"GET":  # no hashing for the usual one
                method = "GET"
            else:
                method = _METHODS.get(raw_method) or raw_method.decode("ascii")
        if method == "CONNECT":
            raise ProtocolError(501, "CONNECT is not supported")
        url = self._url
        if url[:1] == b"/" and _QUESTION_MARK not in url and NUMBER_SIGN not in url:
            path, query, host = url, b"", None  # origin-form without a query (most requests)
        else:
            path, query, host = split_target(url, method)
        if host_count:
            header_host = self._host_value
            if header_host != self._good_host:  # a compare, not a hash and a set lookup
                if header_host not in _GOOD_HOSTS:
                    if HOST.fullmatch(header_host) is None:
                        raise ProtocolError(400, "invalid Host header")  # RFC 9112 §3.2
                    if len(_GOOD_HOSTS) < 1024:
                        _GOOD_HOSTS.add(header_host)
                self._good_host = header_host
            if host is None:
                host = header_host
        raw_length = self._content_length
        content_length = None if raw_length is None else int(raw_length)
        if not self._rare_seen:
            keep_alive = self._keep_alive = version == "1.1"
            chunked = expect = False
        else:
            chunked = self._had_te  # llhttp accepts TE only when chunked is final
            if chunked:
                content_length = None
            if self._upgrade_header and (chunked or content_length):
                self._upgrade_body = (
                    b"Transfer-Encoding: chunked"
                    if content_length is None
                    else b"Content-Length: %d" % content_length
                )
            # RFC 9112 §9.3; porch upgrades nothing, so an Upgrade request is the last.
            keep_alive = self._keep_alive = not (self._conn_close or self._upgrade_header) and (
                version == "1.1" or self._conn_keep_alive
            )
            expect = self._expect and version == "1.1"
        max_body = self._limits.max_body_bytes
        if max_body and content_length is not None and content_length > max_body:
            raise ProtocolError(413, "request body too large")
        headers = tuple(self._headers)
        self._headers = _NO_HEADERS  # the head has them; trailers are not collected
        # Positional: this runs once per request (see RequestHead's field order).
        self._events.append(
            RequestHead(
                method,
                path,
                query,
                version,
                headers,
                host,
                keep_alive,
                expect,
                content_length,
                chunked,
                url,
            )
        )

    def on_body(self, body: bytes) -> None:
        self._stall_bytes = 0
        self._body_bytes += len(body)
        max_body = self._limits.max_body_bytes
        if max_body and self._body_bytes > max_body:
            # Deliver exactly max_body_bytes first, so the events do not depend
            # on how the body was split into reads.
            room = len(body) - (self._body_bytes - max_body)
            if room > 0:
                self._events.append(BodyData(data=body[:room]))
            raise ProtocolError(413, "request body too large")
        self._events.append(BodyData(data=body))

    def on_message_complete(self) -> None:
        self._events.append(_END)
        self._head_bytes = 0
        self._stall_bytes = 0
        self._in_head = True
        self._idle = True
        if not self._keep_alive and self._closing_at < 0:
            self._closing_at = len(self._events)


_END: Final = EndOfMessage()
# Shared placeholders between feeds and after a head: never appended to (events
# are appended only while feed() runs, headers only while _in_head).
_NO_EVENTS: Final[list[Event]] = []
_NO_HEADERS: Final[list[tuple[bytes, bytes]]] = []
_VERSIONS: Final = {"1.1": "1.1", "1.0": "1.0"}  # what llhttp reports -> porch's version
_METHODS: Final = {
    m.encode(): m for m in ("GET", "HEAD", "POST", "PUT", "DELETE", "PATCH", "OPTIONS")
}
# The fields _special_header looks at (Host: in on_header), no two of the same length.
_SPECIAL_NAMES: Final = (
    b"expect",
    b"upgrade",
    b"connection",
    b"content-length",
    b"transfer-encoding",
)
# By length, the first byte of the special name that long (0: none), so User-Agent
# (10 bytes, as connection) costs an index and a compare, not a lower() call.
_SPECIAL_FIRST: Final = bytes(
    next((name[0] for name in _SPECIAL_NAMES if len(name) == size), 0) for size in range(18)
)
_SPECIAL_MIN: Final = min(len(name) for name in _SPECIAL_NAMES)
_SPECIAL_MAX: Final = len(_SPECIAL_FIRST) - 1


def _new_llhttp(callbacks: object) -> httptools.HttpRequestParser:
    parser = httptools.HttpRequestParser(callbacks)
    # llhttp refuses versions other than 0.9, 1.0, 1.1 and 2.0 with a bare 400;
    # http_version applies RFC 9110 §2.5 and §15.6.6 to every version instead.
    parser.set_dangerous_leniencies(lenient_version=True)
    return parser


# What a released H1Parser holds instead of its own llhttp parser (never fed).
_RELEASED: Final = _new_llhttp(object())


def _method_error(stream: bytes | None) -> tuple[int, str]:
    """RFC 9110 §9.1: a method token llhttp does not know is 501; a non-token is 400.

    ``stream`` holds the bytes since the parser was last between requests at a
    feed boundary (None when that was too long ago), so the offending byte is
    found whatever the split: a token byte (``FROB``, ``get``) or a space after
    a token (``GE /``) means an unknown method; anything else is garbage.
    """
    if stream is None:
        return 400, "invalid method"
    index = _error_offset(stream)
    byte = stream[index]
    if byte in TCHAR or (byte == 0x20 and _inside_request(stream[:index])):
        return 501, "method not implemented"
    return 400, "invalid method"


class _BodyOnly:
    """llhttp callbacks that pass only a body and its end on (see _read_upgrade_body)."""

    __slots__ = ("on_body", "on_message_complete")

    def __init__(self, owner: H1Parser) -> None:
        self.on_body = owner.on_body
        self.on_message_complete = owner.on_message_complete


class _Boundaries:
    """llhttp callbacks that only count request starts and ends."""

    __slots__ = ("begun", "ended")

    def __init__(self) -> None:
        self.begun = self.ended = 0

    def on_message_begin(self) -> None:
        self.begun += 1

    def on_message_complete(self) -> None:
        self.ended += 1


def _error_offset(stream: bytes) -> int:
    """Index of the byte at which a fresh llhttp parser fails on ``stream``."""
    good, bad = 0, len(stream)  # stream[:good] parses, stream[:bad] fails
    while bad - good > 1:
        middle = (good + bad) // 2
        try:
            _new_llhttp(None).feed_data(stream[:middle])
        except httptools.HttpParserError:
            bad = middle
        except httptools.HttpParserUpgrade:  # pragma: no cover - the real parser stops first
            good = middle
        else:
            good = middle
    return bad - 1


def _inside_request(prefix: bytes) -> bool:
    counter = _Boundaries()
    _new_llhttp(counter).feed_data(prefix)
    return counter.begun > counter.ended


def _parser_error(exc: Exception) -> tuple[int, str]:
    text = (str(exc) or type(exc).__name__).replace("`", "")
    if text.startswith("Pause on PRI"):
        return 505, "HTTP version not supported"  # the HTTP/2 connection preface
    return 400, text
