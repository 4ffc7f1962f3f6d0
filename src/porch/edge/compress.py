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

A 304 carries the Vary and ETag the 200 would have (RFC 9110 §15.4.5): the app's
own 304 gets ``Vary: Accept-Encoding`` and, when this request would get the
compressed 200, the weak ETag (and neither Content-Length nor Accept-Ranges of
the identity form). Whether the 200 would be eligible is judged by the 304's
Content-Type; a 304 without one is taken as eligible when the request's
If-None-Match lists ``W/"x"`` for the 304's strong ``"x"``: a tag only a
compressed 200 carried. And a 200 to a GET that would be compressed, whose ETag
``"x"`` the request lists as ``W/"x"``, becomes a 304 here (the weak
comparison RFC 9110 §13.1.2 asks for matches), so apps comparing If-None-Match
as strings still round-trip the tag they never issued; the app's body is
closed unread.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING

from porch.config.settings import DEFAULT_COMPRESS_TYPES
from porch.edge.codings import Encoder, available_codings, choose_coding, new_encoder
from porch.errors import AppResponseError

if TYPE_CHECKING:
    from porch.config.settings import Config
    from porch.types import Environ, ExcInfo, ResponseHeaders, StartResponse, WriteCallable, WSGIApp

__all__ = [
    "CompressionPolicy",
    "Compressor",
    "encoded_headers",
    "lists_weakened",
    "not_modified_from_ok",
    "strong_etag",
    "with_vary",
]

_NO_BODY_STATUS = frozenset({204, 206, 304})  # RFC 9110 §15.3.5, §15.3.7, §15.4.5
# Integrity headers computed over the content as sent (RFC 9530, RFC 1864).
_DIGEST_HEADERS = frozenset({"content-digest", "repr-digest", "digest", "content-md5"})
# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc excludes DQUOTE,
# so tags pair their quotes in order even where they hold commas.
_ENTITY_TAG = re.compile(r'(W/)?("[^"]*")')
# Representation metadata a 304 made from a 200 leaves out (RFC 9110 §15.4.5):
# the body's own description. Set-Cookie, Cache-Control, Expires, Last-Modified
# and the rest of the app's fields stay.
_BODY_HEADERS = frozenset({"content-type", "content-length", "content-language", "accept-ranges"})


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

    def eligible_behind_304(self, headers: ResponseHeaders) -> bool | None:
        """Whether the 200 a 304 stands for would be eligible; None without a Content-Type.

        A 304's Content-Length, when sent, is the 200's (RFC 9110 §8.6).
        """
        if not any(name.lower() == "content-type" for name, _ in headers):
            return None  # RFC 9110 §15.4.5: a 304 need not describe the body
        return self.eligible("200 OK", headers, None)


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
    out = _coded_variant(headers)
    out.append(("Content-Encoding", coding))
    return out


def not_modified_from_ok(headers: ResponseHeaders) -> ResponseHeaders:
    """The 304 standing for a compressed 200 with ``headers`` (the app's, as it made them)."""
    kept = [(name, value) for name, value in headers if name.lower() not in _BODY_HEADERS]
    return _coded_variant(kept)


def lists_weakened(if_none_match: str | None, etag: str) -> bool:
    """Whether If-None-Match lists ``W/`` + the strong ``etag``: a compressed 200's tag."""
    if not if_none_match or "W/" not in if_none_match:
        return False
    return any(weak and opaque == etag for weak, opaque in _ENTITY_TAG.findall(if_none_match))


def strong_etag(headers: ResponseHeaders) -> str | None:
    """The response's ETag when it is a strong entity-tag (``"x"``), else None."""
    for name, value in headers:
        if name.lower() == "etag":
            tag = value.strip()
            return tag if tag.startswith('"') and _ENTITY_TAG.fullmatch(tag) else None
    return None


def _coded_variant(headers: ResponseHeaders) -> ResponseHeaders:
    """``headers`` describing the coded form: Vary, weak ETag, no identity length/ranges."""
    out: ResponseHeaders = []
    for name, value in headers:
        lower = name.lower()
        if lower in ("content-length", "accept-ranges"):
            continue  # ranges of the compressed form are not served
        if lower == "etag" and value.strip().startswith('"'):
            value = "W/" + value.strip()  # RFC 9110 §8.8.3: another representation
        out.append((name, value))
    return with_vary(out)


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
        # Only a GET's 200 may become a 304 (RFC 9110 §13.1.2): other methods have run.
        if_none_match = environ.get("HTTP_IF_NONE_MATCH") if method == "GET" else None
        response = _Response(
            policy=self.policy,
            coding=coding,
            head=method == "HEAD",
            if_none_match=if_none_match if isinstance(if_none_match, str) else None,
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
        "body_dropped",
        "coding",
        "encoder",
        "file_wrapper",
        "forwarded",
        "head",
        "headers",
        "if_none_match",
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
        if_none_match: str | None,
        server_start_response: StartResponse,
        file_wrapper: type | None,
    ) -> None:
        self.policy = policy
        self.coding = coding  # None: this request gets the identity form
        self.head = head  # a HEAD request: its (empty) body does not tell the GET's size
        self.if_none_match = if_none_match
        self.body_dropped = False  # the app's 200 went out as a 304: its body is not sent
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
        if self.body_dropped:
            return _Body(self, result, exhausted=True)  # closes the app's result, unread
        return result if self.encoder is None else _Body(self, result)

    def _respond_whole(self, result: list[bytes] | tuple[bytes, ...]) -> Iterable[bytes]:
        """A list result: compressed in one go, with its exact Content-Length."""
        if not all(isinstance(piece, bytes) for piece in result):
            self._forward_unchanged()  # the server will refuse it
            return result
        eligible = self._eligible(sum(len(piece) for piece in result))
        if not eligible or self.coding is None or self._client_holds_it():
            self._start(eligible)
            return [] if self.body_dropped else result
        encoder = new_encoder(self.coding, self.policy.level)
        body = encoder.compress(b"".join(result)) + encoder.finish()
        headers = encoded_headers(self.headers, self.coding)
        headers.append(("Content-Length", str(len(body))))
        assert self.status is not None
        self._call_server(headers, None, self.status)
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
        status = self.status
        assert status is not None
        if eligible and self.coding is not None:
            if exc_info is None and self._client_holds_it():
                status, headers = "304 Not Modified", not_modified_from_ok(headers)
                self.body_dropped = True
            else:
                self.encoder = new_encoder(self.coding, self.policy.level)
                headers = encoded_headers(headers, self.coding)
        elif eligible:
            headers = with_vary(headers)  # RFC 9110 §12.5.5: another client would get it coded
        elif isinstance(status, str) and status[:3] == "304" and _well_formed(headers):
            headers = self._not_modified_headers(headers)
        self._call_server(headers, exc_info, status)

    def _client_holds_it(self) -> bool:
        """A 200 whose compressed form's tag the request lists in If-None-Match.

        The app compared ``W/"x"`` with its ``"x"`` as strings (RFC 9110 §13.1.2
        asks for the weak comparison, which matches): answered as the 304 it is.
        """
        if self.if_none_match is None or self.status is None or self.status[:3] != "200":
            return False
        etag = strong_etag(self.headers)
        return etag is not None and lists_weakened(self.if_none_match, etag)

    def _not_modified_headers(self, headers: ResponseHeaders) -> ResponseHeaders:
        """The app's own 304, with the Vary and ETag its 200 would carry (RFC 9110 §15.4.5)."""
        eligible = self.policy.eligible_behind_304(headers)
        if eligible is None:  # no Content-Type: only a compressed 200's tag tells
            etag = strong_etag(headers)
            eligible = etag is not None and lists_weakened(self.if_none_match, etag)
        if not eligible:
            return headers
        # The coded form's fields: weak ETag, no identity Content-Length (§8.6).
        return _coded_variant(headers) if self.coding is not None else with_vary(headers)

    def _forward_unchanged(self) -> None:
        assert self.status is not None
        self._call_server(self.headers, None, self.status)

    def _call_server(self, headers: ResponseHeaders, exc_info: ExcInfo | None, status: str) -> None:
        self.forwarded = True
        if exc_info is None:
            self.server_write = self.server_start_response(status, headers)
        else:
            self.server_write = self.server_start_response(status, headers, exc_info)

    def encode(self, data: bytes) -> bytes:
        """One body piece, compressed and flushed so the client can decode it now."""
        encoder = self.encoder
        if encoder is None or not data:
            return b"" if self.body_dropped else data
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

    def __init__(
        self, response: _Response, iterable: Iterable[bytes], *, exhausted: bool = False
    ) -> None:
        self._response = response
        self._iterable = iterable
        self._iterator: Iterator[bytes] | None = None
        self._done = exhausted  # True: yields nothing (a 304), only closes ``iterable``

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
            if response.body_dropped:
                self._done = True  # a 304 now: the rest is not read; close() follows
                raise StopIteration
        return response.encode(piece)

    def close(self) -> None:
        """Close the app's iterable (PEP 3333), whether or not it was exhausted."""
        self._done = True
        close = getattr(self._iterable, "close", None)
        if close is not None:
            close()
