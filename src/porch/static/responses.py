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
"""

from __future__ import annotations

import io
from collections.abc import Sequence
from dataclasses import dataclass, field
from http import HTTPStatus

__all__ = ["FileBody", "StaticResponse", "error_response"]

ERROR_CONTENT_TYPE = "text/plain; charset=utf-8"


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
        return f"{self.status} {HTTPStatus(self.status).phrase}"

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
