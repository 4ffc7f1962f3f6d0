"""base_environ / build_environ: PEP 3333 keys from a RequestHead."""

from __future__ import annotations

import io
import sys
import warnings
from collections.abc import Callable
from typing import Any
from wsgiref.validate import check_environ  # type: ignore[attr-defined]

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from porch.protocol.events import RequestHead
from porch.types import Environ
from porch.wsgi import environ as environ_module
from porch.wsgi.environ import (
    FORWARDING_KEYS,
    HeaderMemo,
    base_environ,
    build_environ,
    environ_key,
)
from porch.wsgi.file_wrapper import FileWrapper
from porch.wsgi.input import EMPTY_INPUT

HeadFactory = Callable[..., RequestHead]


def make_base(scheme: str = "http", script_name: str = "") -> Environ:
    return base_environ(
        server_name="fallback.internal",
        server_port="8000",
        url_scheme=scheme,
        multithread=False,
        multiprocess=True,
        errors=sys.stderr,
        file_wrapper=FileWrapper,
        script_name=script_name,
    )


def build(
    head: Any,
    base: Environ | None = None,
    on_forwarding: Callable[[Environ], None] | None = None,
    memo: HeaderMemo | None = None,
) -> Environ:
    environ = build_environ(
        head,
        make_base() if base is None else base,
        wsgi_input=EMPTY_INPUT,
        remote_addr="192.0.2.7",
        remote_port="51234",
        on_forwarding=on_forwarding,
        memo=memo,
    )
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        check_environ(environ)
    return environ


def test_all_pep3333_keys(make_head: HeadFactory) -> None:
    head = make_head(method="POST", path=b"/submit", query=b"a=1&b=2")
    environ = build(head)
    assert environ["REQUEST_METHOD"] == "POST"
    assert environ["SCRIPT_NAME"] == ""
    assert environ["PATH_INFO"] == "/submit"
    assert environ["QUERY_STRING"] == "a=1&b=2"
    assert environ["SERVER_NAME"] == "example.com"
    assert environ["SERVER_PORT"] == "80"
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.1"
    assert environ["REMOTE_ADDR"] == "192.0.2.7"
    assert environ["REMOTE_PORT"] == "51234"
    assert environ["HTTP_HOST"] == "example.com"
    assert environ["wsgi.version"] == (1, 0)
    assert environ["wsgi.url_scheme"] == "http"
    assert environ["wsgi.input"] is EMPTY_INPUT
    assert environ["wsgi.errors"] is sys.stderr
    assert environ["wsgi.multithread"] is False
    assert environ["wsgi.multiprocess"] is True
    assert environ["wsgi.run_once"] is False
    assert environ["wsgi.input_terminated"] is True
    assert environ["wsgi.file_wrapper"] is FileWrapper
    assert "CONTENT_TYPE" not in environ and "CONTENT_LENGTH" not in environ


def test_http_10_request(make_head: HeadFactory) -> None:
    environ = build(make_head(http_version="1.0", headers=(), host=None))
    assert environ["SERVER_PROTOCOL"] == "HTTP/1.0"
    assert environ["SERVER_NAME"] == "fallback.internal"
    assert environ["SERVER_PORT"] == "8000"
    assert "HTTP_HOST" not in environ


def test_base_is_not_mutated_and_environs_are_independent(make_head: HeadFactory) -> None:
    base = make_base()
    snapshot = dict(base)
    first = build(make_head(headers=((b"X-A", b"1"),)), base)
    second = build(make_head(headers=((b"X-A", b"2"),)), base)
    assert base == snapshot
    assert first["HTTP_X_A"] == "1" and second["HTTP_X_A"] == "2"


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        (b"/", "/"),
        (b"/a%20b", "/a b"),
        (b"/a%2Fb", "/a/b"),  # %2F decodes to '/' (PEP 3333 leaves no way to tell)
        (b"/a%2fb", "/a/b"),
        (b"/caf%C3%A9", "/caf\xc3\xa9"),  # UTF-8 bytes carried as latin-1
        (b"/caf%e9", "/caf\xe9"),
        (b"/raw\xe9", "/raw\xe9"),
        (b"/100%", "/100%"),  # malformed escapes are kept as is
        (b"/%zz%4", "/%zz%4"),
        (b"/%00", "/\x00"),
        (b"*", "*"),
    ],
)
def test_path_info_percent_decoding(make_head: HeadFactory, raw: bytes, expected: str) -> None:
    head = make_head(path=raw)
    environ = build_environ(
        head, make_base(), wsgi_input=EMPTY_INPUT, remote_addr="", remote_port=""
    )
    assert environ["PATH_INFO"] == expected


def test_query_string_is_raw(make_head: HeadFactory) -> None:
    environ = build(make_head(query=b"q=%20a+b&x=\xe9&y=%2F"))
    assert environ["QUERY_STRING"] == "q=%20a+b&x=\xe9&y=%2F"


def test_content_type_and_length_are_not_http_prefixed(make_head: HeadFactory) -> None:
    headers = ((b"Content-Type", b"text/plain"), (b"content-length", b"12"), (b"Host", b"h"))
    environ = build(make_head(headers=headers, host=b"h", content_length=12))
    assert environ["CONTENT_TYPE"] == "text/plain"
    assert environ["CONTENT_LENGTH"] == "12"
    assert "HTTP_CONTENT_TYPE" not in environ and "HTTP_CONTENT_LENGTH" not in environ


def test_header_names_are_upper_cased_with_underscores(make_head: HeadFactory) -> None:
    headers = ((b"x-Request-ID", b"abc"), (b"Accept", b"*/*"), (b"DNT", b"1"))
    environ = build(make_head(headers=headers))
    assert environ["HTTP_X_REQUEST_ID"] == "abc"
    assert environ["HTTP_ACCEPT"] == "*/*"
    assert environ["HTTP_DNT"] == "1"


def test_duplicate_headers_are_joined(make_head: HeadFactory) -> None:
    headers = (
        (b"Accept", b"text/html"),
        (b"X-Forwarded-For", b"10.0.0.1"),
        (b"accept", b"application/json"),
        (b"Cookie", b"a=1"),
        (b"Cookie", b"b=2"),
        (b"x-forwarded-for", b"10.0.0.2"),
        # Equal one-character and empty values are one shared str object each in
        # CPython: still two fields, joined.
        (b"X-One", b"1"),
        (b"X-One", b"1"),
        (b"X-Empty", b""),
        (b"X-Empty", b""),
        (b"X-Empty", b""),
    )
    environ = build(make_head(headers=headers))
    assert environ["HTTP_ACCEPT"] == "text/html,application/json"
    assert environ["HTTP_COOKIE"] == "a=1; b=2"
    assert environ["HTTP_X_FORWARDED_FOR"] == "10.0.0.1,10.0.0.2"
    assert environ["HTTP_X_ONE"] == "1,1"
    assert environ["HTTP_X_EMPTY"] == ",,"


def test_header_names_with_underscore_are_dropped(make_head: HeadFactory) -> None:
    headers = (
        (b"X-Forwarded-For", b"203.0.113.9"),
        (b"X_Forwarded_For", b"127.0.0.1"),
        (b"Content_Length", b"999"),
        (b"SCRIPT_NAME", b"/evil"),
    )
    environ = build(make_head(headers=headers))
    assert environ["HTTP_X_FORWARDED_FOR"] == "203.0.113.9"
    assert "CONTENT_LENGTH" not in environ
    assert environ["SCRIPT_NAME"] == ""
    assert not any("SCRIPT" in key and key != "SCRIPT_NAME" for key in environ)


def test_header_values_are_latin1(make_head: HeadFactory) -> None:
    environ = build(make_head(headers=((b"X-Name", b"Jos\xe9"),)))
    assert environ["HTTP_X_NAME"] == "Jos\xe9"


@pytest.mark.parametrize(
    ("host", "scheme", "name", "port"),
    [
        (b"example.com", "http", "example.com", "80"),
        (b"example.com", "https", "example.com", "443"),
        (b"example.com:8080", "http", "example.com", "8080"),
        (b"[::1]", "https", "[::1]", "443"),
        (b"[::1]:9000", "http", "[::1]", "9000"),
        (b"192.0.2.1:81", "http", "192.0.2.1", "81"),
    ],
)
def test_server_name_and_port_from_host(
    make_head: HeadFactory, host: bytes, scheme: str, name: str, port: str
) -> None:
    head = make_head(headers=((b"Host", host),), host=host)
    environ = build(head, make_base(scheme=scheme))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == (name, port)
    assert environ["HTTP_HOST"] == host.decode()


def test_empty_host_keeps_the_listener_address(make_head: HeadFactory) -> None:
    environ = build(make_head(headers=((b"Host", b""),), host=b""))
    assert (environ["SERVER_NAME"], environ["SERVER_PORT"]) == ("fallback.internal", "8000")


def test_absolute_form_authority_wins_over_host_header(make_head: HeadFactory) -> None:
    # RFC 9112 §3.2.2: the target's authority replaces the Host header.
    head = make_head(headers=((b"Host", b"ignored.example"),), host=b"real.example:8443")
    environ = build(head)
    assert environ["HTTP_HOST"] == "real.example:8443"
    assert environ["SERVER_NAME"] == "real.example"


@pytest.mark.parametrize(
    ("path", "script_name", "path_info"),
    [
        (b"/app/users", "/app", "/users"),
        (b"/app", "/app", ""),
        (b"/application", "/app", "/application"),  # not a path-segment boundary
        (b"/other", "/app", "/other"),
        (b"/app/x", "/app/", "/x"),  # trailing slash of SCRIPT_NAME is removed
    ],
)
def test_script_name(make_head: HeadFactory, path: bytes, script_name: str, path_info: str) -> None:
    environ = build(make_head(path=path), make_base(script_name=script_name))
    assert environ["SCRIPT_NAME"] == script_name.rstrip("/")
    assert environ["PATH_INFO"] == path_info


def test_script_name_from_process_environment(
    make_head: HeadFactory, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SCRIPT_NAME", "/mounted")
    base = base_environ(
        server_name="h",
        server_port="80",
        url_scheme="http",
        multithread=True,
        multiprocess=False,
        errors=io.StringIO(),
        file_wrapper=FileWrapper,
    )
    environ = build(make_head(path=b"/mounted/page"), base)
    assert (environ["SCRIPT_NAME"], environ["PATH_INFO"]) == ("/mounted", "/page")


def test_environ_key() -> None:
    assert environ_key(b"Content-Type") == "CONTENT_TYPE"
    assert environ_key(b"CONTENT-length") == "CONTENT_LENGTH"
    assert environ_key(b"If-None-Match") == "HTTP_IF_NONE_MATCH"
    assert environ_key(b"X_Y") is None


def test_key_cache_is_bounded(make_head: HeadFactory) -> None:
    headers = tuple((b"X-Random-%d" % i, b"v") for i in range(2000))
    environ = build(make_head(headers=headers))
    assert environ["HTTP_X_RANDOM_1999"] == "v"
    assert len(environ_module._KEY_CACHE) <= environ_module._KEY_CACHE_MAX


TCHAR = st.sampled_from(list(b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCXYZ"))
NAMES = st.lists(TCHAR, min_size=1, max_size=12).map(bytes)
VALUES = st.binary(max_size=20).filter(lambda v: b"\r" not in v and b"\n" not in v)


# make_head is a pure factory: sharing it across examples is safe.
@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=st.lists(st.tuples(NAMES, VALUES), max_size=12))
def test_any_headers_give_a_valid_environ(
    make_head: HeadFactory, headers: list[tuple[bytes, bytes]]
) -> None:
    head = make_head(headers=tuple(headers), host=None)
    environ = build(head)
    for name, value in headers:
        key = environ_key(name)
        if key is None:
            continue
        assert value.decode("latin-1") in environ[key]
    for key in environ:
        if key.startswith("HTTP_"):
            assert any(environ_key(name) == key for name, _ in headers)


FORWARDING_NAMES = st.sampled_from(
    [
        b"X-Forwarded-For",
        b"x-forwarded-proto",
        b"FORWARDED",
        b"X-Forwarded-Prefix",
        b"X-FORWARDED-host",
        b"x-Forwarded-Port",
        b"X_Forwarded_For",  # dropped (an underscore): not a forwarding header
    ]
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(headers=st.lists(st.tuples(st.one_of(NAMES, FORWARDING_NAMES), VALUES), max_size=8))
def test_on_forwarding_runs_exactly_when_a_forwarding_header_came(
    make_head: HeadFactory, headers: list[tuple[bytes, bytes]]
) -> None:
    # The worker skips trusted-proxy handling for requests without these headers.
    head = make_head(headers=tuple(headers), host=None)
    expected = any(environ_key(name) in FORWARDING_KEYS for name, _ in headers)
    for _ in range(2):  # the first build may fill the name caches, the second reads them
        seen: list[Environ] = []
        environ = build(head, on_forwarding=seen.append)
        assert seen == ([environ] if expected else [])


def test_forwarding_names_stay_out_of_the_key_cache_and_their_cache_is_bounded(
    make_head: HeadFactory,
) -> None:
    spellings = [
        ("x-" + "".join(c.upper() if i >> n & 1 else c for n, c in enumerate("forwarded"))).encode()
        + suffix
        for i in range(512)
        for suffix in (b"-for", b"-For")
    ]
    assert len(set(spellings)) == 1024
    seen: list[Environ] = []
    for name in spellings:
        build(make_head(headers=((name, b"198.51.100.1"),)), on_forwarding=seen.append)
    assert len(seen) == len(spellings)  # noticed with the cache full too
    assert len(environ_module._FORWARDING_CACHE) <= environ_module._KEY_CACHE_MAX
    assert not any(key in FORWARDING_KEYS for key in environ_module._KEY_CACHE.values())


# --- HeaderMemo: a connection's requests one after another ------------------------------

FIELDS = st.lists(
    st.tuples(st.one_of(NAMES, FORWARDING_NAMES, st.just(b"Host")), VALUES), max_size=8
)


@settings(suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(requests=st.lists(FIELDS, min_size=1, max_size=6), repeat=st.booleans())
def test_a_memo_gives_the_environs_built_without_one(
    make_head: HeadFactory, requests: list[list[tuple[bytes, bytes]]], repeat: bool
) -> None:
    # One memo across a connection's requests: fields repeated, changed, moved, added,
    # dropped. Every environ, and whether on_forwarding ran, is as if built afresh.
    memo = HeaderMemo()
    if repeat:  # the usual client: the same fields again, some values changed
        requests = [requests[0], requests[0], *requests, requests[-1]]
    for fields in requests:
        host = next((value for name, value in fields if name == b"Host"), None)
        head = make_head(headers=tuple(fields), host=host)
        plain_seen: list[Environ] = []
        plain = build(head, on_forwarding=plain_seen.append)
        memo_seen: list[Environ] = []
        remembered = build(head, on_forwarding=memo_seen.append, memo=memo)
        assert remembered == plain
        assert len(memo_seen) == len(plain_seen)


def test_a_memo_never_lets_a_forwarding_field_past_unnoticed(make_head: HeadFactory) -> None:
    memo = HeaderMemo()
    for _ in range(3):  # the same spoofed field on every request of a connection
        head = make_head(headers=((b"X-Forwarded-For", b"6.6.6.6"), (b"Accept", b"*/*")))
        seen: list[Environ] = []
        build(head, on_forwarding=seen.append, memo=memo)
        assert len(seen) == 1


def test_a_memo_follows_changed_values_and_moved_fields(make_head: HeadFactory) -> None:
    memo = HeaderMemo()
    sequence = [
        ((b"Host", b"a.example"), (b"Cookie", b"x=1"), (b"Accept", b"*/*")),
        ((b"Host", b"a.example"), (b"Cookie", b"x=2"), (b"Accept", b"*/*")),
        ((b"Host", b"b.example:8080"), (b"Cookie", b"x=2"), (b"Cookie", b"y=3")),
        ((b"Accept", b"*/*"), (b"Host", b"a.example"), (b"Cookie", b"x=2")),
        ((b"Host", b"a.example"), (b"Cookie", b"x=2"), (b"Accept", b"text/html")),
        ((b"Host", b"a.example"), (b"Cookie", b"x=2"), (b"Accept", b"text/html")),
    ]
    for fields in sequence:
        host = next(value for name, value in fields if name == b"Host")
        head = make_head(headers=fields, host=host)
        assert build(head, memo=memo) == build(head)
