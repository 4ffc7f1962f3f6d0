"""The answer of the static layer: status, headers and a body the worker sends as is.

The contract with the worker:

* ``file`` is set only when the body is a span of an open file, to be sent with
  ``os.sendfile(sock, file.fd, file.offset, file.count)`` after the head; the
  worker then owns the file and calls :meth:`StaticResponse.close` exactly once
  when done (sent, failed or abandoned). ``close()`` is also safe to call twice,
  and an unclosed file is closed when the response is garbage-collected.
* Otherwise the body is ``body`` (an error text, a multipart/byteranges body, or
  empty for a 304 and for every HEAD response).
* ``head_only`` marks a HEAD response: its headers are those of the GET,
  ``Content-Length`` included, and it has no body.
* ``headers`` carry Content-Length whenever the status allows a body; the
  worker adds Date, Server and Connection.

:meth:`StaticResponse.as_wsgi_app` wraps a response as a tiny WSGI app whose
file body is a ``wsgi.file_wrapper`` positioned at ``offset``, so the worker
can run it through its ordinary exchange (framing, HEAD, sendfile capped by
Content-Length, closing the file, access log) instead of a second code path.
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus
from typing import TYPE_CHECKING

from porch.wsgi.file_wrapper import FileWrapper

if TYPE_CHECKING:
    from collections.abc import Iterable

    from porch.types import Environ, StartResponse, WSGIApp

__all__ = ["FileBody", "StaticResponse", "error_response"]

ERROR_CONTENT_TYPE = "text/plain; charset=utf-8"
_STATUS_LINES = {status.value: f"{status.value} {status.phrase}" for status in HTTPStatus}


@dataclass(frozen=True, slots=True)
class FileBody:
    """``count`` bytes from ``offset`` of an open regular file, for ``os.sendfile``."""

    file: io.FileIO  # unbuffered, so its descriptor's offset is never read ahead
    offset: int
    count: int

    @property
    def fd(self) -> int:
        return self.file.fileno()

    def close(self) -> None:
        self.file.close()  # idempotent


@dataclass(frozen=True, slots=True)
class StaticResponse:
    """A complete static response (see the module docstring for the worker's part)."""

    status: int
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""
    file: FileBody | None = None
    head_only: bool = False

    @property
    def status_line(self) -> str:
        """``"206 Partial Content"``: the status as the response head spells it."""
        return _STATUS_LINES[self.status]

    @property
    def content_length(self) -> int | None:
        """The Content-Length header's value (None for a 304, which has none)."""
        for name, value in self.headers:
            if name == "Content-Length":
                return int(value)
        return None

    @property
    def body_bytes(self) -> int:
        """How many body bytes the worker writes after the head (for the access log)."""
        return self.file.count if self.file is not None else len(self.body)

    def close(self) -> None:
        """Release the open file, if any; call once the body is sent or abandoned."""
        if self.file is not None:
            self.file.close()

    def as_wsgi_app(self) -> WSGIApp:
        """This response as a WSGI app; its result's ``close()`` releases the file.

        The file body is a :class:`FileWrapper` whose file is positioned at
        ``file.offset``: the worker's sendfile path sends from ``tell()`` and
        caps the span at Content-Length, which is ``file.count``.
        """

        def static_response(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
            start_response(self.status_line, list(self.headers))
            if self.file is None:
                return [self.body]
            return FileWrapper(_FileSpan(self.file))

        return static_response


class _FileSpan:
    """A file-like view of a :class:`FileBody`'s span, for ``wsgi.file_wrapper``.

    ``fileno()`` and ``tell()`` give the worker's sendfile path the span's
    start; ``read()`` (the fallback when sendfile cannot be used) stops at the
    span's end instead of reading the rest of the file.
    """

    __slots__ = ("_body", "_left")

    def __init__(self, body: FileBody) -> None:
        body.file.seek(body.offset)
        self._body = body
        self._left = body.count

    def fileno(self) -> int:
        return self._body.fd

    def tell(self) -> int:
        return self._body.file.tell()

    def read(self, size: int = -1) -> bytes:
        wanted = self._left if size < 0 else min(size, self._left)
        data = self._body.file.read(wanted) if wanted > 0 else b""
        self._left -= len(data or b"")
        return data or b""

    def close(self) -> None:
        self._body.close()


def error_response(
    status: int, *, head_only: bool, headers: Sequence[tuple[str, str]] = ()
) -> StaticResponse:
    """A short text/plain error like porch's others: ``404 Not Found``."""
    body = f"{status} {HTTPStatus(status).phrase}\n".encode()
    return StaticResponse(
        status=status,
        headers=[
            ("Content-Type", ERROR_CONTENT_TYPE),
            ("Content-Length", str(len(body))),
            *headers,
        ],
        body=b"" if head_only else body,
        head_only=head_only,
    )
