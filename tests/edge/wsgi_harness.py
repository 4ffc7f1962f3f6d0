"""A minimal WSGI server for the compression tests: every app runs between two validators.

The inner ``wsgiref.validate.validator`` checks what the Compressor hands the
app (environ, ``start_response``, ``write``); the outer one checks the
Compressor as an app towards the server. ``own_result=True`` keeps the inner
validator but returns the app's own result object, so the Compressor sees a
real list or ``wsgi.file_wrapper`` (the validator would wrap it in an iterator).
"""

from __future__ import annotations

import io
import zlib
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.util import FileWrapper, setup_testing_defaults
from wsgiref.validate import validator

from porch.edge.compress import CompressionPolicy, Compressor

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]

TEXT = b"".join(b"line %d: the quick brown fox jumps over the lazy dog\n" % n for n in range(200))
HTML = [("Content-Type", "text/html; charset=utf-8")]


@dataclass
class Served:
    """What the server saw: status, headers, the body pieces as produced, and the result."""

    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    pieces: list[bytes] = field(default_factory=list)
    written: list[bytes] = field(default_factory=list)  # through write()
    result: Any = None

    @property
    def raw(self) -> bytes:
        return b"".join(self.written + self.pieces)

    def header(self, name: str) -> str | None:
        values = [v for n, v in self.headers if n.lower() == name.lower()]
        return ", ".join(values) if values else None

    def all(self, name: str) -> list[str]:
        return [v for n, v in self.headers if n.lower() == name.lower()]

    @property
    def body(self) -> bytes:
        """The body with its Content-Encoding undone."""
        return decode(self.header("Content-Encoding"), self.raw)


def decode(coding: str | None, data: bytes) -> bytes:
    if coding is None:
        return data
    if coding == "gzip":
        return zlib.decompress(data, wbits=31)
    if coding == "br":
        import brotli

        return bytes(brotli.decompress(data))
    if coding == "zstd":
        import zstandard

        return bytes(zstandard.ZstdDecompressor().decompressobj().decompress(data))
    raise AssertionError(f"unexpected coding {coding!r}")


def own_result(app: WSGIApp) -> WSGIApp:
    """The validator around ``app``, but the app's own result object is returned."""
    checked = validator(app)

    def unwrapped(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        wrapper = checked(environ, start_response)
        wrapper.closed = True  # the caller closes the original; silence the wrapper's __del__
        return wrapper.original_iterator  # type: ignore[no-any-return]

    return unwrapped


def environ_for(method: str = "GET", **headers: str) -> dict[str, Any]:
    """A test environ; ``accept_encoding="gzip"`` becomes ``HTTP_ACCEPT_ENCODING``."""
    environ: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "QUERY_STRING": "",
        "wsgi.input": io.BytesIO(),
    }
    setup_testing_defaults(environ)
    environ["wsgi.file_wrapper"] = FileWrapper
    for name, value in headers.items():
        environ["HTTP_" + name.upper()] = value
    return environ


def run_app(
    app: WSGIApp,
    environ: dict[str, Any] | None = None,
    *,
    policy: CompressionPolicy | None = None,
    own: bool = False,
    limit: int | None = None,
) -> Served:
    """Run one request through the Compressor; ``limit`` stops after that many pieces."""
    inner = own_result(app) if own else validator(app)
    compressor = Compressor(inner, policy=policy or CompressionPolicy())
    served = Served()

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        served.status, served.headers = status, list(headers)
        return served.written.append

    outer = compressor if own else validator(compressor)
    result = outer(environ or environ_for(accept_encoding="gzip"), start_response)
    served.result = result
    try:
        for piece in result:
            served.pieces.append(piece)
            if limit is not None and len(served.pieces) >= limit:
                break
    finally:
        close = getattr(result, "close", None)
        if close is not None:
            close()
    return served


class Recorder:
    """A response iterable that records how far it was iterated and whether it was closed."""

    def __init__(self, pieces: Iterable[bytes]) -> None:
        self._pieces = iter(pieces)
        self.produced = 0
        self.closed = 0

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        piece = next(self._pieces)
        self.produced += 1
        return piece

    def close(self) -> None:
        self.closed += 1


def app_returning(
    body: Iterable[bytes] | Callable[[], Iterable[bytes]],
    *,
    status: str = "200 OK",
    headers: list[tuple[str, str]] | None = None,
) -> WSGIApp:
    """An app answering ``status`` and ``headers`` with ``body`` (a callable is called per call)."""

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        start_response(status, list(HTML if headers is None else headers))
        return body() if callable(body) else body

    return app
