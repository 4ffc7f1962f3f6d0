"""HTTP/1.1 responses as a sans-IO core: the head serialized, the body framed.

Per RFC 9112 §6.3 a body is delimited by Content-Length, chunked coding or the
end of the connection; :class:`ResponseFraming` decides which and frames each
piece. Status and header lines of validated heads are cached (apps send the
same few again and again). Nothing here reads a socket or calls an app.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Final

__all__ = ["ResponseFraming", "error_body", "error_response", "header_lines", "status_line"]

_NO_BODY_STATUS: Final = frozenset({204, 304})
_STATUS_LINES: Final[dict[tuple[str, str], bytes]] = {}
_STATUS_LINES_11: Final[dict[str, bytes]] = {}  # HTTP/1.1 ones by status alone: no tuple
_HEADER_LINES: Final[dict[tuple[str, str], bytes]] = {}


def status_line(version: str, status: str) -> bytes:
    """``HTTP/1.1 200 OK\\r\\n`` for a validated WSGI status string."""
    if version == "1.1":
        line = _STATUS_LINES_11.get(status)
        if line is None:
            line = b"HTTP/1.1 " + status.encode("latin-1") + b"\r\n"
            if len(_STATUS_LINES_11) < 1024:
                _STATUS_LINES_11[status] = line
        return line
    line = _STATUS_LINES.get((version, status))
    if line is None:
        line = b"HTTP/" + version.encode() + b" " + status.encode("latin-1") + b"\r\n"
        if len(_STATUS_LINES) < 1024:
            _STATUS_LINES[version, status] = line
    return line


def header_lines(headers: Sequence[tuple[str, str]], *, drop_content_length: bool = False) -> bytes:
    """``Name: value\\r\\n`` for each validated header, joined."""
    lines = []
    cache = _HEADER_LINES
    for pair in headers:
        line = cache.get(pair)
        if line is None:
            name, value = pair
            if drop_content_length and len(name) == 14 and name.lower() == "content-length":
                continue
            line = f"{name}: {value}\r\n".encode("latin-1")
            if len(cache) < 4096 and len(name) != 14:  # Content-Length values vary
                cache[pair] = line
        lines.append(line)
    return b"".join(lines)


class ResponseFraming:
    """Decides how one response body is delimited and frames its bytes.

    Per RFC 9112 §6.3: no body for HEAD, 1xx, 204 and 304; the app's
    Content-Length when given; otherwise chunked for HTTP/1.1 and
    close-delimited for HTTP/1.0.
    """

    __slots__ = ("_drop_content_length", "chunked", "expected", "keep_alive", "no_body", "sent")

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
        # RFC 9110 §8.6: no Content-Length in a 1xx or 204 response (304 and HEAD may).
        self._drop_content_length = status_code < 200 or status_code == 204
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
        headers: Sequence[tuple[str, str]],
        extra: bytes,
        lines: bytes | None = None,
        body: bytes | None = None,
    ) -> bytes:
        """Serialize the response head. ``extra`` holds server-added header lines.

        ``lines`` is ``header_lines(headers)`` when the caller kept it from an
        identical earlier head; it is ignored where Content-Length must go.
        ``body``, when given, is framed (:meth:`body`) and appended: a small
        response is then one bytes object, built with one copy. It is framed after
        the head is decided, so a body longer than its Content-Length is cut as
        when it is sent separately, and the head is the same either way.
        """
        if lines is None or self._drop_content_length:
            lines = header_lines(headers, drop_content_length=self._drop_content_length)
        framing = b"Transfer-Encoding: chunked\r\n" if self.chunked else b""
        if not self.keep_alive:
            framing += b"Connection: close\r\n"
        elif http_version == "1.0":
            framing += b"Connection: keep-alive\r\n"
        tail = b"" if body is None else self.body(body)
        return b"".join((status_line(http_version, status), lines, framing, extra, b"\r\n", tail))

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


def error_body(status: int, reason: str, message: str) -> bytes:
    """The body of ``error_response``."""
    return f"{status} {reason}: {message}\n".encode()


def error_response(
    status: int, reason: str, message: str, *, extra: bytes, retry_after: int
) -> bytes:
    """A server-made plain-text error that closes the connection (``extra``: header
    lines such as Date; ``retry_after``: seconds, 0 for none)."""
    body = error_body(status, reason, message)
    retry = f"Retry-After: {retry_after}\r\n" if retry_after else ""
    head = (
        f"HTTP/1.1 {status} {reason}\r\n"
        "Content-Type: text/plain; charset=utf-8\r\n"
        f"Content-Length: {len(body)}\r\nConnection: close\r\n{retry}"
    ).encode()
    return head + extra + b"\r\n" + body
