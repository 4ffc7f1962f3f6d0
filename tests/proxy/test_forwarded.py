"""Trusted-proxy rules applied to real environs built by porch.wsgi.environ."""

from __future__ import annotations

import io
from typing import Any

import pytest

from porch.protocol.events import RequestHead
from porch.proxy.forwarded import ForwardedRules, parse_forwarded
from porch.wsgi.environ import base_environ, build_environ
from porch.wsgi.file_wrapper import FileWrapper
from porch.wsgi.input import EMPTY_INPUT

BASE = base_environ(
    server_name="127.0.0.1",
    server_port="8000",
    url_scheme="http",
    multithread=False,
    multiprocess=False,
    errors=io.StringIO(),
    file_wrapper=FileWrapper,
    script_name="",
)


def environ_for(peer: str, *headers: tuple[str, str], host: str = "app.local") -> dict[str, Any]:
    raw = ((b"Host", host.encode()), *((n.encode(), v.encode()) for n, v in headers))
    head = RequestHead(
        method="GET",
        path=b"/p",
        query=b"",
        http_version="1.1",
        headers=raw,
        host=host.encode(),
        keep_alive=True,
        expect_continue=False,
        content_length=None,
        chunked=False,
    )
    return build_environ(head, BASE, wsgi_input=EMPTY_INPUT, remote_addr=peer, remote_port="5555")


LOCAL = ForwardedRules(["127.0.0.1", "::1"])
SPOOF = (
    ("X-Forwarded-For", "6.6.6.6"),
    ("X-Forwarded-Proto", "https"),
    ("X-Forwarded-Host", "evil.example"),
    ("X-Forwarded-Port", "1"),
    ("X-Forwarded-Prefix", "/evil"),
    ("Forwarded", "for=6.6.6.6;proto=https;host=evil.example"),
)


def test_untrusted_peer_headers_are_removed_and_ignored() -> None:
    env = environ_for("203.0.113.9", *SPOOF)
    LOCAL.apply(env)
    assert env["REMOTE_ADDR"] == "203.0.113.9"
    assert env["wsgi.url_scheme"] == "http"
    assert env["HTTP_HOST"] == "app.local"
    assert env["SCRIPT_NAME"] == ""
    assert not [k for k in env if "FORWARDED" in k]


def test_trusted_peer_x_forwarded_family() -> None:
    env = environ_for(
        "127.0.0.1",
        ("X-Forwarded-For", "198.51.100.7"),
        ("X-Forwarded-Proto", "https"),
        ("X-Forwarded-Host", "shop.example"),
        ("X-Forwarded-Prefix", "/shop/"),
    )
    LOCAL.apply(env)
    assert env["REMOTE_ADDR"] == "198.51.100.7"
    assert env["wsgi.url_scheme"] == "https"
    assert (env["HTTP_HOST"], env["SERVER_NAME"], env["SERVER_PORT"]) == (
        "shop.example",
        "shop.example",
        "443",
    )
    assert env["SCRIPT_NAME"] == "/shop"


@pytest.mark.parametrize("host", ["evil.example/p?q", "a b", "x:1:2", "[::1", "h\u00e9st"])
@pytest.mark.parametrize("style", ["x-forwarded", "forwarded"])
def test_a_malformed_forwarded_host_is_ignored(host: str, style: str) -> None:
    # Trusted proxies pass a client's own X-Forwarded-Host through unless told not to:
    # it gets the Host header's rules (RFC 9112 §3.2), or it is as if absent.
    if style == "forwarded":
        header = ("Forwarded", f'proto=https;host="{host}"')
    else:
        header = ("X-Forwarded-Host", host)
    env = environ_for("127.0.0.1", header, ("X-Forwarded-Proto", "https"))
    ForwardedRules(["127.0.0.1"], style=style).apply(env)
    assert (env["HTTP_HOST"], env["SERVER_NAME"]) == ("app.local", "app.local")
    assert (env["wsgi.url_scheme"], env["SERVER_PORT"]) == ("https", "443")


@pytest.mark.parametrize("port", ["\u00b2", "99999", "-1", "8 0", "0x50", ""])
def test_a_malformed_forwarded_port_is_ignored(port: str) -> None:
    env = environ_for("127.0.0.1", ("X-Forwarded-Port", port))
    LOCAL.apply(env)
    assert env["SERVER_PORT"] == "80"  # from the Host header, as without the field
    env = environ_for("127.0.0.1", ("X-Forwarded-Port", " 8443 "))
    LOCAL.apply(env)
    assert env["SERVER_PORT"] == "8443"


def test_chain_client_is_rightmost_untrusted_hop() -> None:
    rules = ForwardedRules(["127.0.0.1", "10.0.0.0/8"])
    # The client put a fake address first; two trusted proxies appended theirs.
    env = environ_for("127.0.0.1", ("X-Forwarded-For", "1.1.1.1, 198.51.100.7, 10.1.2.3"))
    rules.apply(env)
    assert env["REMOTE_ADDR"] == "198.51.100.7"


RFC7239 = ForwardedRules(["127.0.0.1", "::1"], style="forwarded")


def test_forwarded_style_with_quoted_ipv6_and_port() -> None:
    env = environ_for(
        "::1",
        ("Forwarded", 'for="[2001:db8::1]:4711";proto=https;host="api.example:8443"'),
        ("X-Forwarded-For", "6.6.6.6"),
    )
    RFC7239.apply(env)
    assert "HTTP_X_FORWARDED_FOR" not in env  # the other style is removed
    assert env["REMOTE_ADDR"] == "2001:db8::1"
    assert env["wsgi.url_scheme"] == "https"
    assert (env["SERVER_NAME"], env["SERVER_PORT"]) == ("api.example", "8443")


def test_default_style_ignores_and_removes_forwarded() -> None:
    # nginx's usual config sets X-Forwarded-For and passes a client's Forwarded through.
    env = environ_for(
        "127.0.0.1", ("Forwarded", "for=6.6.6.6;proto=https"), ("X-Forwarded-For", "198.51.100.7")
    )
    LOCAL.apply(env)
    assert env["REMOTE_ADDR"] == "198.51.100.7"
    assert env["wsgi.url_scheme"] == "http"
    assert "HTTP_FORWARDED" not in env


def test_forwarded_obfuscated_for_keeps_peer() -> None:
    env = environ_for("127.0.0.1", ("Forwarded", "for=_hidden;proto=http"))
    RFC7239.apply(env)
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_trust_all_and_unix_peer() -> None:
    env = environ_for("203.0.113.9", ("X-Forwarded-For", "198.51.100.7"))
    ForwardedRules(["*"]).apply(env)
    assert env["REMOTE_ADDR"] == "198.51.100.7"
    env = environ_for("", ("X-Forwarded-Proto", "https"))
    LOCAL.apply(env)
    assert env["wsgi.url_scheme"] == "https"


@pytest.mark.parametrize("style", ["x-forwarded", "forwarded"])
def test_trust_all_takes_the_entry_the_proxy_added_not_the_clients(style: str) -> None:
    # nginx's $proxy_add_x_forwarded_for appends the address it saw to whatever the
    # client sent: with '*' the peer is trusted, the client's own entries are not.
    rules = ForwardedRules(["*"], style=style)
    if style == "forwarded":
        header = ("Forwarded", "for=10.6.6.1, for=198.51.100.7")
    else:
        header = ("X-Forwarded-For", "10.6.6.1, 198.51.100.7")
    env = environ_for("203.0.113.9", header)
    rules.apply(env)
    assert env["REMOTE_ADDR"] == "198.51.100.7"
    # Listed proxies in the chain are still skipped.
    rules = ForwardedRules(["*", "10.0.0.0/8"])
    env = environ_for("203.0.113.9", ("X-Forwarded-For", "6.6.6.6, 198.51.100.7, 10.1.2.3"))
    rules.apply(env)
    assert env["REMOTE_ADDR"] == "198.51.100.7"


@pytest.mark.parametrize("value", ["<script>x</script>", "unknown-host", "1.2.3", "::g"])
def test_a_forwarded_client_that_is_no_address_is_ignored(value: str) -> None:
    env = environ_for("127.0.0.1", ("X-Forwarded-For", value))
    LOCAL.apply(env)
    assert env["REMOTE_ADDR"] == "127.0.0.1"


def test_ipv4_mapped_peer_matches_ipv4_rule() -> None:
    assert LOCAL.trusts("::ffff:127.0.0.1")
    assert not LOCAL.trusts("::ffff:127.0.0.2")
    assert not LOCAL.trusts("not-an-ip")


@pytest.mark.parametrize(
    ("value", "expected"),
    [
        ("for=1.2.3.4", [{"for": "1.2.3.4"}]),
        (
            'For="[::1]:80";Proto=https, for=5.6.7.8',
            [{"for": "[::1]:80", "proto": "https"}, {"for": "5.6.7.8"}],
        ),
        ('for="a\\"b"', [{"for": 'a"b'}]),
        ("garbage", []),
    ],
)
def test_parse_forwarded(value: str, expected: list[dict[str, str]]) -> None:
    assert parse_forwarded(value) == expected
