"""The Compressor as a WSGI wrapper: what is compressed, the headers it sets, streaming, close()."""

from __future__ import annotations

import sys
import zlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from wsgi_harness import (
    HTML,
    TEXT,
    Recorder,
    app_returning,
    environ_for,
    run_app,
)

from porch.config.settings import Config
from porch.edge.codings import available_codings
from porch.edge.compress import CompressionPolicy, Compressor, with_vary


def chunks(data: bytes, size: int) -> list[bytes]:
    return [data[i : i + size] for i in range(0, len(data), size)]


# --- the wrapper is applied only when --compress is on -------------------------------


def test_off_by_default_and_off_costs_nothing() -> None:
    app = app_returning([TEXT])
    assert Config().compress is False
    assert Compressor.wrap(app, Config()) is app


def test_on_wraps_with_the_configured_policy() -> None:
    app = app_returning([TEXT])
    config = Config(
        compress=True, compress_level=9, compress_min_size=10, compress_types=("text/csv",)
    )
    wrapped = Compressor.wrap(app, config)
    assert isinstance(wrapped, Compressor)
    assert wrapped.policy.level == 9
    assert wrapped.policy.min_size_bytes == 10
    assert wrapped.policy.types == ("text/csv",)
    assert wrapped.policy.codings == available_codings()


# --- compressed responses ------------------------------------------------------------


@pytest.mark.parametrize("own", [True, False], ids=["list", "validator-iterator"])
def test_gzip_list_and_stream(own: bool) -> None:
    served = run_app(app_returning([TEXT[:5000], TEXT[5000:]]), own=own)
    assert served.status == "200 OK"
    assert served.header("Content-Encoding") == "gzip"
    assert served.header("Vary") == "Accept-Encoding"
    assert served.body == TEXT
    assert len(served.raw) < len(TEXT) // 4
    if own:  # a list: compressed whole, with its exact length
        assert served.header("Content-Length") == str(len(served.raw))
        assert type(served.result) is list and len(served.result) == 1
    else:  # a stream: the length is unknown
        assert served.header("Content-Length") is None


@pytest.mark.parametrize("coding", available_codings())
def test_each_available_coding(coding: str) -> None:
    for own in (True, False):
        served = run_app(
            app_returning(chunks(TEXT, 1000)), environ_for(accept_encoding=coding), own=own
        )
        assert served.header("Content-Encoding") == coding
        assert served.body == TEXT


def test_the_preferred_available_coding_is_used() -> None:
    served = run_app(app_returning([TEXT]), environ_for(accept_encoding="gzip, deflate, br, zstd"))
    assert served.header("Content-Encoding") == available_codings()[0]
    assert served.body == TEXT


def test_only_gzip_without_the_optional_libraries() -> None:
    policy = CompressionPolicy(codings=("gzip",))
    served = run_app(app_returning([TEXT]), environ_for(accept_encoding="br, zstd"), policy=policy)
    assert served.header("Content-Encoding") is None
    assert served.header("Vary") == "Accept-Encoding"
    assert served.raw == TEXT


def test_content_length_of_the_app_is_replaced() -> None:
    headers = [*HTML, ("Content-Length", str(len(TEXT))), ("Accept-Ranges", "bytes")]
    streamed = run_app(app_returning(chunks(TEXT, 4096), headers=headers))
    assert streamed.header("Content-Length") is None
    assert streamed.header("Accept-Ranges") is None
    assert streamed.body == TEXT
    whole = run_app(app_returning([TEXT], headers=headers), own=True)
    assert whole.header("Content-Length") == str(len(whole.raw))
    assert whole.header("Accept-Ranges") is None


@pytest.mark.parametrize(
    ("etag", "sent"),
    [
        ('"abc"', 'W/"abc"'),  # RFC 9110 §8.8.3: a strong validator names one representation
        ('W/"abc"', 'W/"abc"'),
        ("unquoted", "unquoted"),  # not an entity-tag: left alone
    ],
)
def test_etag_becomes_weak(etag: str, sent: str) -> None:
    served = run_app(app_returning([TEXT], headers=[*HTML, ("ETag", etag)]))
    assert served.header("Content-Encoding") == "gzip"
    assert served.header("ETag") == sent


@pytest.mark.parametrize(
    ("vary", "sent"),
    [
        (None, ["Accept-Encoding"]),
        ("Cookie", ["Cookie, Accept-Encoding"]),
        ("Cookie, Accept-Language", ["Cookie, Accept-Language, Accept-Encoding"]),
        ("accept-encoding", ["accept-encoding"]),
        ("Cookie,Accept-Encoding", ["Cookie,Accept-Encoding"]),
        ("*", ["*"]),
        ("", ["Accept-Encoding"]),
    ],
)
def test_vary_is_merged(vary: str | None, sent: list[str]) -> None:
    headers = HTML if vary is None else [*HTML, ("Vary", vary)]
    for accept in ("gzip", "identity"):  # compressed or not, the response varies
        environ = environ_for(accept_encoding=accept)
        served = run_app(app_returning([TEXT], headers=headers), environ)
        assert served.all("Vary") == sent


def test_vary_merges_into_the_first_of_several_fields() -> None:
    headers = [("Vary", "Cookie"), ("Vary", "Origin")]
    assert with_vary(headers) == [("Vary", "Cookie, Accept-Encoding"), ("Vary", "Origin")]
    assert with_vary([("Vary", "Cookie"), ("vary", "ACCEPT-ENCODING")]) == [
        ("Vary", "Cookie"),
        ("vary", "ACCEPT-ENCODING"),
    ]


@pytest.mark.parametrize(
    "content_type",
    [
        "text/html",
        "TEXT/PLAIN; charset=utf-8",
        "text/event-stream",
        "application/json",
        "application/javascript",
        "image/svg+xml",
    ],
)
def test_default_types_are_compressed(content_type: str) -> None:
    served = run_app(app_returning([TEXT], headers=[("Content-Type", content_type)]))
    assert served.header("Content-Encoding") == "gzip"


def test_configured_types_and_wildcards() -> None:
    policy = CompressionPolicy(types=("application/*", "text/csv"))
    for content_type, compressed in [
        ("application/octet-stream", True),
        ("application/vnd.api+json", True),
        ("text/csv; header=present", True),
        ("text/html", False),
        ("image/png", False),
    ]:
        served = run_app(
            app_returning([TEXT], headers=[("Content-Type", content_type)]), policy=policy
        )
        assert (served.header("Content-Encoding") == "gzip") is compressed, content_type


# --- never compressed ----------------------------------------------------------------------


def _not_compressed(served: Any, body: bytes = TEXT) -> None:
    assert all(value != "gzip" for value in served.all("Content-Encoding"))
    assert served.raw == body


@pytest.mark.parametrize(
    ("status", "headers", "body"),
    [
        ("200 OK", [*HTML, ("Content-Encoding", "br-already")], [TEXT]),
        ("200 OK", [*HTML, ("Content-Encoding", "identity")], [TEXT]),
        ("200 OK", [*HTML, ("Cache-Control", "public, No-Transform")], [TEXT]),
        ("200 OK", [*HTML, ("Cache-Control", "no-transform")], [TEXT]),
        ("200 OK", [*HTML, ("Content-Digest", "sha-256=:abc=:")], [TEXT]),
        ("200 OK", [*HTML, ("Repr-Digest", "sha-256=:abc=:")], [TEXT]),
        ("200 OK", [("Content-Type", "image/png")], [TEXT]),
        ("200 OK", [("Content-Type", "application/zip")], [TEXT]),
        ("206 Partial Content", [*HTML, ("Content-Range", f"bytes 0-9/{len(TEXT)}")], [TEXT]),
        ("200 OK", [*HTML, ("Content-Length", "1000")], (TEXT[:1000],)),  # < --compress-min-size
    ],
)
def test_never_compressed_by_the_response(
    status: str, headers: list[tuple[str, str]], body: list[bytes]
) -> None:
    for own in (True, False):
        served = run_app(app_returning(body, status=status, headers=headers), own=own)
        _not_compressed(served, b"".join(body))
        assert served.header("Vary") is None  # not a candidate: nothing varies
        assert served.headers == headers


@pytest.mark.parametrize("body", [[TEXT[:1023]], [], [b"", b""], (TEXT[:500], TEXT[500:1000])])
def test_a_list_body_below_min_size(body: list[bytes]) -> None:
    served = run_app(app_returning(body), own=True)
    _not_compressed(served, b"".join(body))
    assert served.headers == HTML
    assert served.result is body  # the very object: the server's list fast path stays


@pytest.mark.parametrize("status", ["204 No Content", "304 Not Modified"])
def test_never_compressed_without_a_body(status: str) -> None:
    served = run_app(app_returning([], status=status, headers=[("ETag", '"x"')]))
    assert served.headers == [("ETag", '"x"')]


def test_streamed_response_below_min_size_by_content_length() -> None:
    headers = [*HTML, ("Content-Length", "500")]
    served = run_app(app_returning(iter([TEXT[:250], TEXT[250:500]]), headers=headers))
    _not_compressed(served, TEXT[:500])


def test_min_size_zero_still_skips_empty_bodies() -> None:
    policy = CompressionPolicy(min_size_bytes=0)
    assert run_app(app_returning([b"x"]), own=True, policy=policy).header("Content-Encoding")
    assert run_app(app_returning([b""]), own=True, policy=policy).header("Content-Encoding") is None


@pytest.mark.parametrize(
    "accept",
    [None, "", "identity", "gzip;q=0", "*;q=0", "deflate", "gzip;q=0.5, identity"],
)
def test_never_compressed_unless_accepted(accept: str | None) -> None:
    environ = environ_for() if accept is None else environ_for(accept_encoding=accept)
    for own in (True, False):
        served = run_app(app_returning([TEXT]), environ, own=own)
        _not_compressed(served)
        assert served.header("Vary") == "Accept-Encoding"  # a gzip client would get gzip


def test_never_compressed_for_a_range_request() -> None:
    environ = environ_for(accept_encoding="gzip", range="bytes=0-99")
    served = run_app(app_returning([TEXT]), environ)  # the app ignored Range: a 200
    _not_compressed(served)
    assert served.header("Vary") == "Accept-Encoding"


def test_head_keeps_the_identity_headers() -> None:
    headers = [*HTML, ("Content-Length", str(len(TEXT))), ("ETag", '"v1"')]
    for body in ([], [TEXT]):
        served = run_app(app_returning(body, headers=headers), environ_for("HEAD", **_GZIP))
        assert served.headers == [*headers, ("Vary", "Accept-Encoding")]
        assert served.raw == b"".join(body)


_GZIP = {"accept_encoding": "gzip"}


@pytest.mark.parametrize(("length", "vary"), [(14000, "Accept-Encoding"), (500, None)])
def test_head_with_no_body_gets_the_vary_of_the_get(length: int, vary: str | None) -> None:
    # RFC 9110 §9.3.2: an app may return no body for HEAD; its Content-Length is the GET's.
    headers = [*HTML, ("Content-Length", str(length))]

    def lazy(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", headers)
        yield from ()

    get = run_app(app_returning([TEXT[:1] * length], headers=headers), own=True)
    assert get.header("Vary") == vary
    for app in (app_returning([], headers=headers), lazy):
        for own in (True, False):
            head = run_app(app, environ_for("HEAD", **_GZIP), own=own)
            assert head.header("Vary") == vary, (app, own)
            assert head.header("Content-Length") == str(length)
            assert head.header("Content-Encoding") is None


def test_file_wrapper_results_are_left_to_sendfile(tmp_path: Any) -> None:
    path = tmp_path / "page.html"
    path.write_bytes(TEXT)

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Any:
        start_response("200 OK", [*HTML, ("Content-Length", str(len(TEXT)))])
        return environ["wsgi.file_wrapper"](open(path, "rb"), 4096)

    served = run_app(app, own=True)
    assert type(served.result) is environ_for()["wsgi.file_wrapper"]  # the same object
    assert served.headers == [*HTML, ("Content-Length", str(len(TEXT)))]
    assert served.raw == TEXT


# --- streaming -----------------------------------------------------------------------------


@pytest.mark.parametrize("coding", available_codings())
def test_each_piece_is_sent_and_decodable_before_the_next_is_made(coding: str) -> None:
    events = [b"event: tick\ndata: %d\n\n" % n for n in range(20)]
    made: list[int] = []
    decoder = _decoder(coding)
    decoded: list[bytes] = []

    def stream() -> Iterator[bytes]:
        for n, event in enumerate(events):
            made.append(n)
            yield event

    headers = [("Content-Type", "text/event-stream"), ("Cache-Control", "no-cache")]
    app = app_returning(stream, headers=headers)
    compressor = Compressor(app, policy=CompressionPolicy())
    sent: dict[str, Any] = {}
    result = compressor(
        environ_for(accept_encoding=coding), lambda s, h: sent.update(status=s, headers=h)
    )
    try:
        for n, piece in enumerate(result):
            if n < len(events):
                assert made[-1] == n  # nothing produced ahead: no buffering
                decoded.append(decoder(piece))
                assert decoded[-1] == events[n]  # decodable now: flushed
    finally:
        result.close()  # type: ignore[attr-defined]
    assert dict(sent["headers"])["Content-Encoding"] == coding
    assert b"".join(decoded) == b"".join(events)


def _decoder(coding: str) -> Callable[[bytes], bytes]:
    if coding == "gzip":
        return zlib.decompressobj(wbits=31).decompress
    if coding == "br":
        import brotli

        return brotli.Decompressor().process  # type: ignore[no-any-return]
    import zstandard

    return zstandard.ZstdDecompressor().decompressobj().decompress  # type: ignore[no-any-return]


def test_a_large_stream_is_never_held_whole() -> None:
    piece = TEXT[:8192]
    count = 2000  # 16 MB of text

    def stream() -> Iterator[bytes]:
        for _ in range(count):
            yield piece

    app = app_returning(stream)
    result = Compressor(app, policy=CompressionPolicy())(environ_for(**_GZIP), lambda s, h: None)
    decoder = zlib.decompressobj(wbits=31)
    total = 0
    largest = 0
    for out in result:
        largest = max(largest, len(out))
        total += len(decoder.decompress(out))
    assert total == len(piece) * count
    assert largest < len(piece)


def test_empty_pieces_pass_through_without_flush_bytes() -> None:
    served = run_app(app_returning([b"", TEXT, b""]))
    assert served.pieces[0] == b""
    assert served.body == TEXT


# --- start_response, write(), exc_info ---------------------------------------------------------


def test_lazy_start_response_in_a_generator() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", HTML)
        yield from chunks(TEXT, 3000)

    served = run_app(app)
    assert served.header("Content-Encoding") == "gzip"
    assert served.body == TEXT


def test_lazy_start_response_and_no_body() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", HTML)
        yield from ()

    served = run_app(app)
    assert served.headers == HTML
    assert served.raw == b""


def test_legacy_write_is_compressed_with_the_rest() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        write = start_response("200 OK", [*HTML, ("Content-Length", str(len(TEXT)))])
        write(TEXT[:4000])
        write(b"")
        write(TEXT[4000:6000])
        return [TEXT[6000:]]

    for own in (True, False):
        served = run_app(app, own=own)
        assert served.header("Content-Encoding") == "gzip"
        assert served.header("Content-Length") is None
        assert len(served.written) == 2
        assert zlib.decompressobj(wbits=31).decompress(served.written[0]) == TEXT[:4000]
        assert served.body == TEXT


def test_exc_info_before_the_head_replaces_it() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", [("Content-Type", "image/png")])
        try:
            raise ValueError("boom")
        except ValueError:
            start_response("500 Internal Server Error", HTML, sys.exc_info())
        return [TEXT]

    served = run_app(app)
    assert served.status == "500 Internal Server Error"
    assert served.header("Content-Encoding") == "gzip"
    assert served.body == TEXT


def test_exc_info_after_the_head_reaches_the_server() -> None:
    calls: list[Any] = []

    def server_start_response(status: str, headers: Any, exc_info: Any = None) -> Any:
        calls.append(exc_info)
        if exc_info is not None:
            raise exc_info[1].with_traceback(exc_info[2])  # PEP 3333: the head is out
        return lambda data: None

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterator[bytes]:
        start_response("200 OK", HTML)
        yield TEXT
        try:
            raise ValueError("late")
        except ValueError:
            start_response("500 Internal Server Error", HTML, sys.exc_info())
        yield b"never"

    compressor = Compressor(app, policy=CompressionPolicy())
    pieces = iter(compressor(environ_for(**_GZIP), server_start_response))
    assert zlib.decompressobj(wbits=31).decompress(next(pieces)) == TEXT
    with pytest.raises(ValueError, match="late"):
        next(pieces)
    assert calls[0] is None and calls[1][0] is ValueError


def test_start_response_twice_without_exc_info_is_an_error() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("200 OK", HTML)
        start_response("200 OK", HTML)
        return [TEXT]

    with pytest.raises(Exception, match="second time"):
        Compressor(app, policy=CompressionPolicy())(environ_for(**_GZIP), lambda s, h: None)


def test_write_before_start_response_is_an_error() -> None:
    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        compressor_start_response = start_response
        compressor_start_response.__self__.write(b"x")  # type: ignore[attr-defined]
        return []

    with pytest.raises(Exception, match="before start_response"):
        Compressor(app, policy=CompressionPolicy())(environ_for(**_GZIP), lambda s, h: None)


def test_malformed_headers_reach_the_server_untouched() -> None:
    headers: Any = [("Content-Type", "text/html"), ("X-Bad", 1)]
    seen: list[Any] = []
    app = app_returning([TEXT], headers=headers)
    result = Compressor(app, policy=CompressionPolicy())(
        environ_for(**_GZIP), lambda s, h: seen.append(h)
    )
    assert seen == [headers]
    assert list(result) == [TEXT]


# --- close() ------------------------------------------------------------------------------


@pytest.mark.parametrize("accept", ["gzip", "identity"])
@pytest.mark.parametrize("limit", [None, 1], ids=["exhausted", "abandoned"])
def test_close_of_the_app_iterable_is_always_called(accept: str, limit: int | None) -> None:
    recorder = Recorder(chunks(TEXT, 1000))
    run_app(app_returning(recorder), environ_for(accept_encoding=accept), own=True, limit=limit)
    assert recorder.closed == 1
    if limit is not None:
        assert recorder.produced == 1


def test_close_is_called_when_the_server_refuses_the_head() -> None:
    recorder = Recorder([TEXT])

    def refusing(status: str, headers: Any, exc_info: Any = None) -> Any:
        raise RuntimeError("bad header")

    compressor = Compressor(app_returning(recorder), policy=CompressionPolicy())
    with pytest.raises(RuntimeError, match="bad header"):
        compressor(environ_for(**_GZIP), refusing)
    assert recorder.closed == 1


def test_close_when_the_app_fails_mid_stream() -> None:
    class Failing(Recorder):
        def __next__(self) -> bytes:
            if self.produced == 2:
                raise OSError("backend gone")
            return super().__next__()

    failing = Failing(chunks(TEXT, 1000))
    with pytest.raises(OSError, match="backend gone"):
        run_app(app_returning(failing), own=True)
    assert failing.closed == 1
