"""Response compression: a WSGI wrapper that encodes the app's eligible responses on the fly.

``Compressor.wrap(app, config)`` is applied once per worker; with ``--no-compress``
it returns the app itself, so compression that is off costs nothing.

A response is compressed when the request accepts a coding (``codings.choose_coding``)
and the response is *eligible*: status 2xx-5xx but 204, 206 and 304, no
``Content-Encoding`` yet (never twice), no ``Cache-Control: no-transform``, no
digest header (it would no longer match), a ``Content-Type`` in
``--compress-types`` and a size, when known, of at least ``--compress-min-size``.
Never compressed, but left exactly as the app made them:

* requests with ``Range``: byte ranges address the identity representation;
* ``HEAD``, as nginx does: its headers keep describing the identity form (RFC 9110
  §9.3.2 allows that; the ETag and Content-Length differ from a compressed GET's,
  so a cache never freshens a compressed response from it, RFC 9111 §4.3.5). It
  gets the GET's ``Vary`` all the same, its size judged by its Content-Length
  (an app may return no body for HEAD);
* ``wsgi.file_wrapper`` results, which go out with ``os.sendfile``.

An eligible response always gets ``Vary: Accept-Encoding`` (RFC 9110 §12.5.5),
compressed or not, so a shared cache keeps the variants apart. A compressed
response gets ``Content-Encoding``, loses ``Content-Length`` (recomputed for a
list result, which is compressed whole) and ``Accept-Ranges``, and its strong
``ETag`` becomes weak (RFC 9110 §8.8.3). Streamed results are compressed piece by
piece with a flush after each, never buffered whole. The decision waits for the
result (list, stream or file), so the server's ``start_response`` is called when
the app returns, when it first uses ``write()``, or at its first body piece.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from porch.config.settings import DEFAULT_COMPRESS_TYPES
from porch.edge.codings import Encoder, available_codings, choose_coding, new_encoder
from porch.errors import AppResponseError

if TYPE_CHECKING:
    from porch.config.settings import Config
    from porch.types import Environ, ExcInfo, ResponseHeaders, StartResponse, WriteCallable, WSGIApp

__all__ = ["CompressionPolicy", "Compressor", "encoded_headers", "with_vary"]

_NO_BODY_STATUS = frozenset({204, 206, 304})  # RFC 9110 §15.3.5, §15.3.7, §15.4.5
# Integrity headers computed over the content as sent (RFC 9530, RFC 1864).
_DIGEST_HEADERS = frozenset({"content-digest", "repr-digest", "digest", "content-md5"})


@dataclass(frozen=True, slots=True, kw_only=True)
class CompressionPolicy:
    """What gets compressed, with which codings and how hard (immutable, shared by threads)."""

    level: int = 6  # gzip's 1..9 scale; br and zstd levels are derived from it
    min_size_bytes: int = 1024
    types: tuple[str, ...] = DEFAULT_COMPRESS_TYPES  # "type/subtype" or "type/*", lower case
    codings: tuple[str, ...] = available_codings()  # preference order

    @classmethod
    def from_config(cls, config: Config) -> CompressionPolicy:
        return cls(
            level=config.compress_level,
            min_size_bytes=config.compress_min_size,
            types=config.compress_types,
        )

    def compressible_type(self, content_type: str) -> bool:
        """Whether a Content-Type value names a media type in ``types`` (parameters ignored)."""
        media = content_type.partition(";")[0].strip().lower()
        major = media.partition("/")[0]
        return media in self.types or f"{major}/*" in self.types

    def eligible(self, status: str, headers: ResponseHeaders, size: int | None) -> bool:
        """Whether the response may be compressed; ``size`` is the body length when known."""
        code = status[:3] if isinstance(status, str) else ""
        if not (code.isascii() and code.isdigit()) or not 200 <= int(code) <= 599:
            return False
        if int(code) in _NO_BODY_STATUS:
            return False
        content_type = None
        for name, value in headers:
            lower = name.lower()
            if lower == "content-type":
                content_type = value
            elif lower == "content-encoding" or lower in _DIGEST_HEADERS:
                return False  # RFC 9110 §8.4: coded already; never twice
            elif lower == "cache-control" and _no_transform(value):
                return False  # RFC 9111 §5.2.2.6
            elif lower == "content-length" and size is None:
                digits = value.strip()
                size = int(digits) if digits.isascii() and digits.isdigit() else None
        if content_type is None or not self.compressible_type(content_type):
            return False
        return size is None or (size > 0 and size >= self.min_size_bytes)


def _no_transform(cache_control: str) -> bool:
    return any(
        directive.partition("=")[0].strip().lower() == "no-transform"
        for directive in cache_control.split(",")
    )


def with_vary(headers: ResponseHeaders) -> ResponseHeaders:
    """``headers`` with Accept-Encoding in Vary, merged into an existing Vary field."""
    for name, value in headers:
        if name.lower() == "vary":
            members = {member.strip().lower() for member in value.split(",")}
            if "*" in members or "accept-encoding" in members:
                return headers
    for index, (name, value) in enumerate(headers):
        if name.lower() == "vary":
            merged = f"{value.strip()}, Accept-Encoding" if value.strip() else "Accept-Encoding"
            return [*headers[:index], (name, merged), *headers[index + 1 :]]
    return [*headers, ("Vary", "Accept-Encoding")]


def encoded_headers(headers: ResponseHeaders, coding: str) -> ResponseHeaders:
    """The headers of the response compressed with ``coding`` (length unknown yet)."""
    out: ResponseHeaders = []
    for name, value in headers:
        lower = name.lower()
        if lower in ("content-length", "accept-ranges"):
            continue  # ranges of the compressed form are not served
        if lower == "etag" and value.strip().startswith('"'):
            value = "W/" + value.strip()  # RFC 9110 §8.8.3: another representation
        out.append((name, value))
    out = with_vary(out)
    out.append(("Content-Encoding", coding))
    return out


class Compressor:
    """The WSGI app that compresses ``app``'s responses (see the module docstring)."""

    __slots__ = ("app", "policy")

    def __init__(self, app: WSGIApp, *, policy: CompressionPolicy) -> None:
        self.app = app
        self.policy = policy

    @classmethod
    def wrap(cls, app: WSGIApp, config: Config) -> WSGIApp:
        """``app`` wrapped when ``--compress`` is on, else ``app`` itself."""
        if not config.compress:
            return app
        return cls(app, policy=CompressionPolicy.from_config(config))

    def __call__(self, environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
        coding = None
        method = environ.get("REQUEST_METHOD")
        if method != "HEAD" and "HTTP_RANGE" not in environ:
            coding = choose_coding(environ.get("HTTP_ACCEPT_ENCODING"), self.policy.codings)
        wrapper = environ.get("wsgi.file_wrapper")
        response = _Response(
            policy=self.policy,
            coding=coding,
            head=method == "HEAD",
            server_start_response=start_response,
            file_wrapper=wrapper if isinstance(wrapper, type) else None,
        )
        result = self.app(environ, response.start_response)
        try:
            return response.respond(result)
        except BaseException:
            close = getattr(result, "close", None)  # PEP 3333: close() whatever happens
            if close is not None:
                close()
            raise


class _Response:
    """One response on its way through: the deferred head, the decision, the encoder."""

    __slots__ = (
        "coding",
        "encoder",
        "file_wrapper",
        "forwarded",
        "head",
        "headers",
        "policy",
        "server_start_response",
        "server_write",
        "status",
    )

    def __init__(
        self,
        *,
        policy: CompressionPolicy,
        coding: str | None,
        head: bool,
        server_start_response: StartResponse,
        file_wrapper: type | None,
    ) -> None:
        self.policy = policy
        self.coding = coding  # None: this request gets the identity form
        self.head = head  # a HEAD request: its (empty) body does not tell the GET's size
        self.server_start_response = server_start_response
        self.file_wrapper = file_wrapper
        self.status: str | None = None
        self.headers: ResponseHeaders = []
        self.forwarded = False  # the server's start_response was called
        self.encoder: Encoder | None = None
        self.server_write: WriteCallable | None = None

    def start_response(
        self, status: str, headers: ResponseHeaders, exc_info: ExcInfo | None = None
    ) -> WriteCallable:
        """The app's start_response: recorded until the decision can be made."""
        if self.forwarded:
            # Too late to defer: the server decides (it re-raises once its head is out).
            self.status, self.headers = status, headers
            self.encoder = None
            self.forward(None, exc_info)
            return self.write
        if self.status is not None and exc_info is None:
            raise AppResponseError("start_response() called a second time without exc_info")
        self.status, self.headers = status, headers
        return self.write

    def write(self, data: bytes) -> None:
        """The legacy PEP 3333 ``write()``: decides (streaming) on first use."""
        if not self.forwarded:
            if self.status is None:
                raise AppResponseError("write() called before start_response()")
            self.forward(None)
        assert self.server_write is not None
        data = self.encode(data)
        if data:
            self.server_write(data)

    def respond(self, result: Iterable[bytes]) -> Iterable[bytes]:
        """What the server gets back: ``result`` itself whenever nothing is to be encoded."""
        if self.status is None or self.forwarded:
            return _Body(self, result)  # start_response comes with the first piece; or write()
        if self.file_wrapper is not None and isinstance(result, self.file_wrapper):
            self._forward_unchanged()
            return result
        if type(result) is list or type(result) is tuple:
            return self._respond_whole(result)
        self.forward(None)
        return result if self.encoder is None else _Body(self, result)

    def _respond_whole(self, result: list[bytes] | tuple[bytes, ...]) -> Iterable[bytes]:
        """A list result: compressed in one go, with its exact Content-Length."""
        if not all(isinstance(piece, bytes) for piece in result):
            self._forward_unchanged()  # the server will refuse it
            return result
        eligible = self._eligible(sum(len(piece) for piece in result))
        if not eligible or self.coding is None:
            self._start(eligible)
            return result
        encoder = new_encoder(self.coding, self.policy.level)
        body = encoder.compress(b"".join(result)) + encoder.finish()
        headers = encoded_headers(self.headers, self.coding)
        headers.append(("Content-Length", str(len(body))))
        self._call_server(headers, None)
        return [body]

    def forward(self, size: int | None, exc_info: ExcInfo | None = None) -> None:
        """Decide from the head (and ``size`` when known), then start the server's response."""
        self._start(self._eligible(size), exc_info)

    def _eligible(self, size: int | None) -> bool:
        assert self.status is not None
        if self.head and not size:
            # RFC 9110 §9.3.2: HEAD gets the GET's headers, Vary included; the size
            # is then the declared Content-Length, not the empty body's.
            size = None
        return _well_formed(self.headers) and self.policy.eligible(self.status, self.headers, size)

    def _start(self, eligible: bool, exc_info: ExcInfo | None = None) -> None:
        headers = self.headers
        if eligible and self.coding is not None:
            self.encoder = new_encoder(self.coding, self.policy.level)
            headers = encoded_headers(headers, self.coding)
        elif eligible:
            headers = with_vary(headers)  # RFC 9110 §12.5.5: another client would get it coded
        self._call_server(headers, exc_info)

    def _forward_unchanged(self) -> None:
        self._call_server(self.headers, None)

    def _call_server(self, headers: ResponseHeaders, exc_info: ExcInfo | None) -> None:
        assert self.status is not None
        self.forwarded = True
        if exc_info is None:
            self.server_write = self.server_start_response(self.status, headers)
        else:
            self.server_write = self.server_start_response(self.status, headers, exc_info)

    def encode(self, data: bytes) -> bytes:
        """One body piece, compressed and flushed so the client can decode it now."""
        encoder = self.encoder
        if encoder is None or not data:
            return data
        return encoder.compress(data) + encoder.flush()

    def finish(self) -> bytes:
        """The end of the compressed stream (b"" when not compressing)."""
        if not self.forwarded and self.status is not None:
            self.forward(0)  # a lazy app that produced no body
        encoder, self.encoder = self.encoder, None
        return encoder.finish() if encoder is not None else b""


def _well_formed(headers: object) -> bool:
    """A list of (str, str) pairs: anything else is left for the server to refuse."""
    return isinstance(headers, list | tuple) and all(
        isinstance(item, tuple | list)
        and len(item) == 2
        and isinstance(item[0], str)
        and isinstance(item[1], str)
        for item in headers
    )


class _Body:
    """The iterable the server gets for a streamed or lazily started response."""

    __slots__ = ("_done", "_iterable", "_iterator", "_response")

    def __init__(self, response: _Response, iterable: Iterable[bytes]) -> None:
        self._response = response
        self._iterable = iterable
        self._iterator: Iterator[bytes] | None = None
        self._done = False

    def __iter__(self) -> Iterator[bytes]:
        return self

    def __next__(self) -> bytes:
        if self._done:
            raise StopIteration
        response = self._response
        if self._iterator is None:
            self._iterator = iter(self._iterable)
        try:
            piece = next(self._iterator)
        except StopIteration:
            self._done = True
            tail = response.finish()
            if tail:
                return tail
            raise
        if not response.forwarded:
            if response.status is None:
                return piece  # no start_response at all: the server refuses the body
            response.forward(None)
        return response.encode(piece)

    def close(self) -> None:
        """Close the app's iterable (PEP 3333), whether or not it was exhausted."""
        self._done = True
        close = getattr(self._iterable, "close", None)
        if close is not None:
            close()
