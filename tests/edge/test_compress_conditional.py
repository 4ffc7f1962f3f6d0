"""--compress and conditional GETs: a 304 carries the Vary and ETag the 200 would (RFC 9110
§15.4.5), and the compressed 200's weak tag round-trips through apps that compare strings."""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from typing import Any

import pytest
from live_worker import Serve, get, validated, validated_passthrough
from wsgi_harness import HTML, TEXT, Recorder, environ_for, run_app

from porch.edge.compress import CompressionPolicy, Compressor, lists_weakened, strong_etag

ETAG = '"v1"'
WEAK = 'W/"v1"'
KEPT = [("Cache-Control", "max-age=60"), ("Set-Cookie", "seen=1")]  # a 304 keeps these


def conditional_app(*, weak_compare: bool, body: str = "list") -> Callable[..., Iterable[bytes]]:
    """An app answering If-None-Match itself: weakly as RFC 9110 §13.1.2 asks (Django,
    Werkzeug), or by string equality (many hand-written apps); ``body`` is how it returns
    the 200's body: a list, a stream, a generator calling start_response late, or write()."""

    def matches(environ: dict[str, Any]) -> bool:
        field = environ.get("HTTP_IF_NONE_MATCH")
        if field is None:
            return False
        if not weak_compare:
            return field == ETAG
        return any(tag.strip().removeprefix("W/") == ETAG for tag in field.split(","))

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
        if matches(environ):
            start_response("304 Not Modified", [("ETag", ETAG), *KEPT])
            return []
        headers = [*HTML, ("Content-Length", str(len(TEXT))), ("ETag", ETAG), *KEPT]
        if body == "generator":
            return _late(start_response, headers)
        write = start_response("200 OK", headers)
        if body == "write":
            write(TEXT[:100])
            return [TEXT[100:]]
        return [TEXT] if body == "list" else Recorder([TEXT[:5000], TEXT[5000:]])

    return app


def _late(start_response: Callable[..., Any], headers: list[tuple[str, str]]) -> Iterator[bytes]:
    start_response("200 OK", headers)
    yield TEXT


def gzip_with(**headers: str) -> dict[str, Any]:
    return environ_for(accept_encoding="gzip", **headers)


# --- the app's own 304 ----------------------------------------------------------------


def test_round_trip_through_an_app_comparing_weakly() -> None:
    """Before, the 304 said "v1" without Vary: a cache holding the compressed 200 (W/"v1")
    cannot freshen it from a 304 naming another strong validator (RFC 9111 §4.3.4)."""
    app = conditional_app(weak_compare=True)
    ok = run_app(app, gzip_with(), own=True)
    assert (ok.status, ok.header("ETag"), ok.header("Vary")) == ("200 OK", WEAK, "Accept-Encoding")
    served = run_app(app, gzip_with(if_none_match=ok.header("ETag") or ""))
    assert served.status == "304 Not Modified"
    assert served.headers == [("ETag", WEAK), *KEPT, ("Vary", "Accept-Encoding")]
    assert served.raw == b""


def test_a_304_without_content_type_and_no_compressed_tag_is_left_alone() -> None:
    app = conditional_app(weak_compare=True)
    for environ in (gzip_with(if_none_match=ETAG), environ_for(if_none_match=ETAG)):
        served = run_app(app, environ)
        assert served.status == "304 Not Modified"
        assert served.headers == [("ETag", ETAG), *KEPT]  # nothing says the 200 varies


def test_a_compressed_tag_without_gzip_now_gets_vary_and_the_identity_tag() -> None:
    served = run_app(conditional_app(weak_compare=True), environ_for(if_none_match=WEAK))
    assert served.status == "304 Not Modified"
    assert served.headers == [("ETag", ETAG), *KEPT, ("Vary", "Accept-Encoding")]


def not_modified_of(headers: list[tuple[str, str]], environ: dict[str, Any]) -> list[Any]:
    """The Compressor around an app answering 304 with ``headers``; what the server got.

    Called without wsgiref's validator: it refuses a Content-Type in a 304, which
    HTTP allows (RFC 9110 §15.4.5 only discourages it) and some apps send.
    """

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response("304 Not Modified", list(headers))
        return []

    got: list[Any] = []
    body = Compressor(app, policy=CompressionPolicy())(environ, lambda *a: got.extend(a))
    assert list(body) == []
    return got[1]  # type: ignore[no-any-return]


@pytest.mark.parametrize("content_type", ["text/html; charset=utf-8", "application/json"])
def test_a_304_naming_a_compressible_type_gets_the_200s_fields(content_type: str) -> None:
    headers = [("Content-Type", content_type), ("Content-Length", str(len(TEXT))),
               ("Accept-Ranges", "bytes"), ("ETag", ETAG)]  # fmt: skip
    coded = not_modified_of(headers, gzip_with())
    # The compressed 200's: weak tag, and no identity length (RFC 9110 §8.6) or ranges.
    assert coded == [("Content-Type", content_type), ("ETag", WEAK), ("Vary", "Accept-Encoding")]
    assert not_modified_of(headers, environ_for()) == [*headers, ("Vary", "Accept-Encoding")]
    head = not_modified_of(headers, {**gzip_with(), "REQUEST_METHOD": "HEAD"})
    assert head == [*headers, ("Vary", "Accept-Encoding")]  # HEAD keeps the identity fields


@pytest.mark.parametrize(
    "extra",
    [
        [("Content-Type", "image/png")],
        [("Content-Type", "text/html"), ("Content-Length", "100")],  # below --compress-min-size
        [("Content-Type", "text/html"), ("Cache-Control", "no-transform")],
        [("Content-Type", "text/html"), ("Content-Encoding", "br")],
    ],
)
def test_a_304_of_a_response_never_compressed_is_left_alone(extra: list[tuple[str, str]]) -> None:
    headers = [*extra, ("ETag", ETAG)]
    assert not_modified_of(headers, gzip_with(if_none_match=WEAK)) == headers


# --- a 200 to a request holding the compressed tag ---------------------------------------


@pytest.mark.parametrize("body", ["list", "stream", "generator", "write"])
def test_an_app_comparing_strings_gets_its_304(body: str) -> None:
    """Before, such an app answered every revalidation with a full 200: it never issued
    W/"v1", so "W/\\"v1\\"" == "\\"v1\\"" failed."""
    app = conditional_app(weak_compare=False, body=body)
    ok = run_app(app, gzip_with(), own=body == "list")
    assert ok.status == "200 OK" and ok.header("ETag") == WEAK
    served = run_app(app, gzip_with(if_none_match=f'"other", {WEAK}'), own=body == "list")
    assert served.status == "304 Not Modified"
    # RFC 9110 §15.4.5: the 200's ETag and Vary; its other fields but the body's own.
    assert served.headers == [("ETag", WEAK), *KEPT, ("Vary", "Accept-Encoding")]
    assert served.raw == b""


def test_the_body_of_a_200_made_a_304_is_closed_unread() -> None:
    recorder = Recorder([TEXT[:5000], TEXT[5000:]])

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Recorder:
        start_response("200 OK", [*HTML, ("ETag", ETAG)])
        return recorder

    served = run_app(app, gzip_with(if_none_match=WEAK), own=True)
    assert served.status == "304 Not Modified"
    assert (recorder.produced, recorder.closed) == (0, 1)


@pytest.mark.parametrize(
    ("status", "etag", "environ"),
    [
        ("200 OK", ETAG, gzip_with(if_none_match='W/"v2"')),  # another version
        ("200 OK", ETAG, gzip_with(if_none_match=ETAG)),  # the identity tag: the app's call
        ("200 OK", WEAK, gzip_with(if_none_match=WEAK)),  # the app's own weak tag
        ("200 OK", ETAG, environ_for(if_none_match=WEAK)),  # no coding: the app's call
        ("200 OK", ETAG, gzip_with(if_none_match=WEAK, range="bytes=0-9")),
        ("404 Not Found", ETAG, gzip_with(if_none_match=WEAK)),  # §13.2.1: 2xx only
        ("201 Created", ETAG, gzip_with(if_none_match=WEAK)),
        # §13.1.2: a 304 answers GET and HEAD only; a POST or DELETE has already run.
        ("200 OK", ETAG, environ_for("POST", accept_encoding="gzip", if_none_match=WEAK)),
        ("200 OK", ETAG, environ_for("DELETE", accept_encoding="gzip", if_none_match=WEAK)),
    ],
)
def test_a_200_stays_a_200_unless_the_client_holds_its_compressed_tag(
    status: str, etag: str, environ: dict[str, Any]
) -> None:
    headers = [*HTML, ("ETag", etag)]

    def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> list[bytes]:
        start_response(status, headers)
        return [TEXT]

    served = run_app(app, environ, own=True)
    assert served.status == status
    assert served.body == TEXT


def test_entity_tag_helpers() -> None:
    assert lists_weakened('W/"a,b", "c"', '"a,b"')  # a comma inside a tag
    assert lists_weakened(' "x" ,W/"v1"', ETAG)
    assert not lists_weakened('"v1"', ETAG)
    assert not lists_weakened("*", ETAG)
    assert not lists_weakened(None, ETAG)
    assert strong_etag([("etag", ' "v1" ')]) == ETAG
    assert strong_etag([("ETag", WEAK)]) is None
    assert strong_etag([("ETag", "unquoted")]) is None
    assert strong_etag(HTML) is None


# --- a real worker ----------------------------------------------------------------------


@pytest.mark.parametrize("weak_compare", [False, True], ids=["string-compare", "weak-compare"])
def test_conditional_get_round_trips_on_a_live_worker(serve: Serve, weak_compare: bool) -> None:
    wrap = validated if weak_compare else validated_passthrough
    worker = serve(wrap(conditional_app(weak_compare=weak_compare)), compress=True)
    gzip = "Accept-Encoding: gzip\r\n"
    with worker.connect() as conn:
        conn.send(get("/", headers=gzip))
        ok = conn.read_response()
        assert (ok.status, ok.header("Content-Encoding")) == (200, "gzip")
        assert (ok.header("ETag"), ok.header("Vary")) == (WEAK, "Accept-Encoding")
        conn.send(get("/", headers=f"{gzip}If-None-Match: {ok.header('ETag')}\r\n"))
        not_modified = conn.read_response()
        assert not_modified.status == 304
        assert not_modified.header("ETag") == WEAK
        assert not_modified.header("Vary") == "Accept-Encoding"
        assert not_modified.header("Set-Cookie") == "seen=1"
        assert not_modified.header("Content-Length") in (None, "0")
        assert not_modified.body == b""
        conn.send(get("/", headers=gzip))  # the connection goes on
        assert conn.read_response().status == 200
