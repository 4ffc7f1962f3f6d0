"""HTTP/1.1 as a sans-IO core: request bytes in, events out; response framing out.

httptools (llhttp) does the byte-level parsing and already refuses most
smuggling vectors (Content-Length with Transfer-Encoding, duplicate or signed
Content-Length, bare CR, NUL, obs-fold, whitespace before the colon, chunked not
last). This module adds what llhttp leaves to the server: size limits, the
version and Host rules, transfer codings we do not implement, Expect, and
trailers that must never reach the app. It is the only module importing
httptools.
"""

from __future__ import annotations

from dataclasses import dataclass

import httptools

from porch.errors import ProtocolError
from porch.protocol.events import BadRequest, BodyData, EndOfMessage, Event, RequestHead

__all__ = ["H1Limits", "H1Parser", "ResponseFraming", "status_line"]

_TCHAR = frozenset(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ")
_NO_BODY_STATUS = frozenset({204, 304})


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
    which are answered first); later data is ignored.
    """

    __slots__ = (
        "_body_bytes",
        "_chunked",
        "_content_length",
        "_events",
        "_expect",
        "_failed",
        "_head_bytes",
        "_headers",
        "_host_count",
        "_in_head",
        "_limits",
        "_parser",
        "_upgraded",
        "_url",
        "_upgrade_header",
        "_had_te",
    )

    def __init__(self, *, limits: H1Limits) -> None:
        self._limits = limits
        self._parser = httptools.HttpRequestParser(self)
        self._events: list[Event] = []
        self._failed = False
        self._upgraded = False
        self._reset_message()

    def _reset_message(self) -> None:
        self._url = b""
        self._headers: list[tuple[bytes, bytes]] = []
        self._head_bytes = 0
        self._in_head = True
        self._host_count = 0
        self._expect = False
        self._chunked = False
        self._had_te = False
        self._upgrade_header = False
        self._content_length: int | None = None
        self._body_bytes = 0

    @property
    def failed(self) -> bool:
        """True once a BadRequest was emitted: the connection must close."""
        return self._failed

    def feed(self, data: bytes) -> list[Event]:
        """Parse ``data``; return the events it completed (possibly none)."""
        if self._failed or self._upgraded:
            return []
        events = self._events = []
        if self._in_head:
            self._head_bytes += len(data)
        try:
            self._parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            # llhttp stops at an Upgrade or CONNECT; porch upgrades nothing, so the
            # request is answered as a plain one and the connection then closes.
            self._upgraded = True
        except httptools.HttpParserCallbackError as exc:
            cause = exc.__context__
            if isinstance(cause, ProtocolError):
                self._fail(cause.status, str(cause))
            else:  # pragma: no cover - a bug in this module
                raise
        except httptools.HttpParserInvalidMethodError:
            self._fail(*_method_error(data))
        except httptools.HttpParserError as exc:
            self._fail(400, _parser_message(exc))
        if (
            not self._failed
            and self._in_head
            and self._head_bytes > self._limits.max_head_bytes
        ):
            self._fail(431, "request header block too large")
        return events

    def _fail(self, status: int, message: str) -> None:
        self._failed = True
        self._events.append(BadRequest(status=status, message=message))

    # --- httptools callbacks (called from feed) ------------------------------

    def on_message_begin(self) -> None:
        self._reset_message()

    def on_url(self, url: bytes) -> None:
        self._url += url
        if len(self._url) > self._limits.max_request_line:
            raise ProtocolError(414, "request-target too long")

    def on_header(self, name: bytes, value: bytes) -> None:
        if not self._in_head:
            return  # RFC 9112 §7.1.2: trailer fields are discarded, never merged
        headers = self._headers
        if len(headers) >= self._limits.max_fields:
            raise ProtocolError(431, "too many request header fields")
        if len(name) + len(value) > self._limits.max_field_size:
            raise ProtocolError(431, "request header field too large")
        headers.append((name, value))
        if len(name) in _SPECIAL_LENGTHS:
            self._special_header(name.lower(), value)

    def _special_header(self, lname: bytes, value: bytes) -> None:
        if lname == b"host":
            self._host_count += 1
        elif lname == b"transfer-encoding":
            self._had_te = True
            _check_transfer_coding(value)
        elif lname == b"expect":
            if value.strip().lower() != b"100-continue":
                raise ProtocolError(417, "unsupported expectation")
            self._expect = True
        elif lname == b"upgrade":
            self._upgrade_header = True

    def on_headers_complete(self) -> None:
        self._in_head = False
        parser = self._parser
        version = parser.get_http_version()
        if version not in ("1.1", "1.0"):
            raise ProtocolError(505, "HTTP version not supported")
        if self._host_count > 1 or (version == "1.1" and self._host_count == 0):
            # RFC 9112 §3.2: exactly one Host in HTTP/1.1
            raise ProtocolError(400, "missing or duplicate Host header")
        if self._had_te and version == "1.0":
            raise ProtocolError(400, "Transfer-Encoding in an HTTP/1.0 request")  # RFC 9112 §6.1
        method = parser.get_method().decode("ascii")
        if method == "CONNECT":
            raise ProtocolError(501, "CONNECT is not supported")
        path, query, host = _split_target(self._url, method)
        if host is None and self._host_count:
            host = next(v for n, v in self._headers if len(n) == 4 and n.lower() == b"host")
        chunked = self._had_te  # llhttp accepts TE only when chunked is final
        content_length = None if chunked else _content_length(self._headers)
        if self._upgrade_header and (chunked or content_length):
            raise ProtocolError(501, "Upgrade with a request body is not supported")
        max_body = self._limits.max_body_bytes
        if max_body and content_length is not None and content_length > max_body:
            raise ProtocolError(413, "request body too large")
        keep_alive = bool(parser.should_keep_alive()) and not self._upgrade_header
        self._events.append(
            RequestHead(
                method=method,
                path=path,
                query=query,
                http_version=version,
                headers=tuple(self._headers),
                host=host,
                keep_alive=keep_alive,
                expect_continue=self._expect and version == "1.1",
                content_length=content_length,
                chunked=chunked,
            )
        )

    def on_body(self, body: bytes) -> None:
        self._body_bytes += len(body)
        max_body = self._limits.max_body_bytes
        if max_body and self._body_bytes > max_body:
            raise ProtocolError(413, "request body too large")
        self._events.append(BodyData(data=body))

    def on_message_complete(self) -> None:
        self._events.append(_END)
        self._head_bytes = 0
        self._in_head = True


_END = EndOfMessage()
_SPECIAL_LENGTHS = frozenset({4, 6, 7, 17})  # host, expect, upgrade, transfer-encoding


def _check_transfer_coding(value: bytes) -> None:
    """RFC 9112 §6.1: only ``chunked`` is implemented, and it must be final and single."""
    codings = [c.strip().lower() for c in value.split(b",")]
    for coding in codings:
        if not coding or any(ch not in _TCHAR for ch in coding.split(b";")[0].strip()):
            raise ProtocolError(400, "malformed Transfer-Encoding")
    if codings != [b"chunked"]:
        if all(c == b"chunked" for c in codings):
            raise ProtocolError(400, "chunked applied more than once")
        raise ProtocolError(501, "unsupported transfer coding")


def _content_length(headers: list[tuple[bytes, bytes]]) -> int | None:
    for name, value in headers:
        if len(name) == 14 and name.lower() == b"content-length":
            return int(value)  # llhttp already checked: digits only, single
    return None


def _split_target(url: bytes, method: str) -> tuple[bytes, bytes, bytes | None]:
    """Split a request-target into (path, query, authority-or-None). RFC 9112 §3.2."""
    host: bytes | None = None
    if url[:1] != b"/":
        if url == b"*" and method == "OPTIONS":
            return b"*", b"", None
        lower = url[:8].lower()
        if lower.startswith(b"http://") or lower.startswith(b"https://"):
            rest = url.split(b"//", 1)[1]
            slash = rest.find(b"/")
            qmark = rest.find(b"?")
            end = min(i for i in (slash, qmark, len(rest)) if i >= 0)
            host, url = rest[:end], rest[end:]
            if not host or b"@" in host:
                raise ProtocolError(400, "invalid absolute-form request-target")
            if url[:1] != b"/":
                url = b"/" + url
        else:
            raise ProtocolError(400, "invalid request-target")
    path, sep, query = url.partition(b"?")
    if b"#" in path or b"#" in query:
        raise ProtocolError(400, "fragment in request-target")
    return path, query, host


def _method_error(data: bytes) -> tuple[int, str]:
    # RFC 9110 §9.1: a well-formed but unknown method is 501; garbage is 400.
    token = data.lstrip(b"\r\n").split(b" ", 1)[0]
    if token and len(token) < 32 and all(ch in _TCHAR for ch in token):
        return 501, "method not implemented"
    return 400, "invalid method"


def _parser_message(exc: Exception) -> str:
    text = str(exc) or type(exc).__name__
    return text.replace("`", "")


# --- responses ---------------------------------------------------------------------


def status_line(version: str, status: str) -> bytes:
    """``HTTP/1.1 200 OK\\r\\n`` for a validated WSGI status string."""
    return b"HTTP/" + version.encode() + b" " + status.encode("latin-1") + b"\r\n"


class ResponseFraming:
    """Decides how one response body is delimited and frames its bytes.

    Per RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304; the app's
    Content-Length when given; otherwise chunked for HTTP/1.1 and
    close-delimited for HTTP/1.0.
    """

    __slots__ = ("chunked", "expected", "keep_alive", "no_body", "sent")

    def __init__(
        self,
        *,
        method: str,
        http_version: str,
        status_code: int,
        content_length: int | None,
        keep_alive: bool,
    ) -> None:
        self.no_body = method == "HEAD" or status_code < 200 or status_code in _NO_BODY_STATUS
        self.expected = content_length
        self.sent = 0
        self.chunked = False
        if self.no_body or content_length is not None:
            self.keep_alive = keep_alive
        elif http_version == "1.1":
            self.chunked = True
            self.keep_alive = keep_alive
        else:
            self.keep_alive = False

    def head(
        self,
        *,
        http_version: str,
        status: str,
        headers: list[tuple[str, str]],
        extra: bytes,
    ) -> bytes:
        """Serialize the response head. ``extra`` holds server-added header lines."""
        lines = [status_line(http_version, status)]
        for name, value in headers:
            lines.append(f"{name}: {value}\r\n".encode("latin-1"))
        if self.chunked:
            lines.append(b"Transfer-Encoding: chunked\r\n")
        if not self.keep_alive:
            lines.append(b"Connection: close\r\n")
        elif http_version == "1.0":
            lines.append(b"Connection: keep-alive\r\n")
        lines.append(extra)
        lines.append(b"\r\n")
        return b"".join(lines)

    def body(self, data: bytes) -> bytes:
        """Frame a body piece; bytes beyond the declared Content-Length are dropped."""
        if self.no_body or not data:
            return b""
        if self.chunked:
            self.sent += len(data)
            return b"%x\r\n%b\r\n" % (len(data), data)
        expected = self.expected
        if expected is not None and self.sent + len(data) > expected:
            data = data[: expected - self.sent]
            self.keep_alive = False
        self.sent += len(data)
        return data

    def end(self) -> bytes:
        """Bytes that end the body (the last chunk), or b""."""
        if self.chunked:
            return b"0\r\n\r\n"
        return b""

    @property
    def complete(self) -> bool:
        """False when the app sent fewer bytes than its Content-Length promised."""
        return self.no_body or self.expected is None or self.sent >= self.expected
