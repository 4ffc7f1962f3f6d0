"""A real nginx in front of the real porch command, setting X-Forwarded-* (and, on a
second location, RFC 7239 Forwarded): what the app sees when porch trusts nginx, and
that nothing forwarded reaches the app when it does not, through nginx or directly.

The client connects from 127.0.0.2 (all of 127/8 is loopback on Linux) so that its
address differs from nginx's (127.0.0.1): a REMOTE_ADDR of 127.0.0.2 can only have
come from the forwarding headers.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest

from tests.e2e.conftest import PorchProcess
from tests.programs import require_program
from tests.real.nginx_process import Nginx, run_nginx

pytestmark = pytest.mark.timeout(60)

CLIENT_ADDR = "127.0.0.2"
PUBLIC_HOST = "shop.example.test"
SPOOFED_ADDR = "6.6.6.6"
FORWARDING_KEYS = (
    "HTTP_FORWARDED",
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
)
SPOOFED_HEADERS = {
    "X-Forwarded-For": SPOOFED_ADDR,
    "X-Forwarded-Proto": "https",
    "X-Forwarded-Host": "evil.example.test",
    "X-Forwarded-Port": "8443",
    "X-Forwarded-Prefix": "/evil",
    "Forwarded": f'for={SPOOFED_ADDR};proto=https;host="evil.example.test"',
}


def server_block(porch_url: str) -> str:
    """/app/ sets the X-Forwarded-* family (pretending nginx terminated TLS); /rfc7239/
    sets Forwarded. Each clears the other style, so a client cannot smuggle it past.
    /typical/ is the snippet most nginx guides give: it leaves Forwarded alone."""
    upstream = porch_url.removeprefix("http://")
    return f"""
        location /app/ {{
            proxy_pass http://{upstream}/;
            proxy_http_version 1.1;
            proxy_set_header Connection "";
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto https;
            proxy_set_header X-Forwarded-Host $http_host;
            proxy_set_header X-Forwarded-Prefix /app;
            proxy_set_header X-Forwarded-Port "";
            proxy_set_header Forwarded "";
        }}
        location /typical/ {{
            proxy_pass http://{upstream}/;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_set_header Host $http_host;
        }}
        location /rfc7239/ {{
            proxy_pass http://{upstream}/;
            proxy_set_header Forwarded 'for=$remote_addr;proto=https;host="$http_host"';
            proxy_set_header X-Forwarded-For "";
            proxy_set_header X-Forwarded-Proto "";
            proxy_set_header X-Forwarded-Host "";
            proxy_set_header X-Forwarded-Port "";
            proxy_set_header X-Forwarded-Prefix "";
        }}
    """


@pytest.fixture(scope="module")
def nginx_binary() -> str:
    return require_program("nginx", "nginx-light")


def _stack(
    binary: str, directory: Path, porch_flags: list[str]
) -> Iterator[tuple[PorchProcess, Nginx]]:
    porch = PorchProcess(["examples/hello.py", "-b", "127.0.0.1:0", *porch_flags])
    try:
        with run_nginx(binary, directory, server_block(porch.url)) as nginx:
            yield porch, nginx
            nginx.assert_running()
    finally:
        porch.stop()


@pytest.fixture(scope="module")
def trusting(
    nginx_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PorchProcess, Nginx]]:
    """porch with its default --forwarded-allow-ips (127.0.0.1,::1): nginx is trusted."""
    yield from _stack(nginx_binary, tmp_path_factory.mktemp("nginx-trusted"), [])


@pytest.fixture(scope="module")
def trusting_rfc7239(
    nginx_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PorchProcess, Nginx]]:
    """porch trusting nginx and believing RFC 7239 Forwarded (--forwarded-headers forwarded)."""
    flags = ["--forwarded-headers", "forwarded"]
    yield from _stack(nginx_binary, tmp_path_factory.mktemp("nginx-rfc7239"), flags)


@pytest.fixture(scope="module")
def distrusting(
    nginx_binary: str, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[PorchProcess, Nginx]]:
    """porch trusting only 10.0.0.1: neither nginx nor a direct client is believed."""
    flags = ["--forwarded-allow-ips", "10.0.0.1"]
    yield from _stack(nginx_binary, tmp_path_factory.mktemp("nginx-distrusted"), flags)


def environ_at(
    url: str, *, local_address: str = CLIENT_ADDR, headers: dict[str, str] | None = None
) -> dict[str, Any]:
    """GET ``url`` (an /environ route) from ``local_address``; the app's environ as a dict."""
    transport = httpx.HTTPTransport(local_address=local_address)
    with httpx.Client(transport=transport, timeout=10) as client:
        response = client.get(url, headers={"Host": PUBLIC_HOST, **(headers or {})})
    assert response.status_code == 200, response.text
    environ: dict[str, Any] = json.loads(response.text)
    return environ


def assert_nothing_forwarded(environ: dict[str, Any]) -> None:
    present = [key for key in FORWARDING_KEYS if key in environ]
    assert present == [], f"forwarding headers reached the app: {present}"
    leaked = [key for key, value in environ.items() if SPOOFED_ADDR in value or "evil" in value]
    assert leaked == [], f"spoofed values reached the app in {leaked}"


def test_trusted_nginx_sets_client_address_scheme_host_and_prefix(
    trusting: tuple[PorchProcess, Nginx],
) -> None:
    _, nginx = trusting
    with httpx.Client(timeout=10) as client:
        assert client.get(f"{nginx.url}/app/").text == "Hello, World!"
        echoed = client.post(f"{nginx.url}/app/echo", content=b"through nginx" * 1000)
        assert echoed.content == b"through nginx" * 1000
    environ = environ_at(f"{nginx.url}/app/environ")
    assert environ["REMOTE_ADDR"] == CLIENT_ADDR
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTP_HOST"] == PUBLIC_HOST
    assert environ["SERVER_NAME"] == PUBLIC_HOST
    assert environ["SERVER_PORT"] == "443"  # the default port of the forwarded scheme
    assert environ["SCRIPT_NAME"] == "/app"
    assert environ["PATH_INFO"] == "/environ"


def test_trusted_nginx_keeps_a_client_spoofed_address_out_of_remote_addr(
    trusting: tuple[PorchProcess, Nginx],
) -> None:
    """nginx appends the real peer to the client's X-Forwarded-For; porch takes the
    right-most hop it does not trust, so 6.6.6.6 (sent by the client) is never chosen."""
    _, nginx = trusting
    environ = environ_at(f"{nginx.url}/app/environ", headers=SPOOFED_HEADERS)
    assert environ["HTTP_X_FORWARDED_FOR"] == f"{SPOOFED_ADDR}, {CLIENT_ADDR}"  # nginx's chain
    assert environ["REMOTE_ADDR"] == CLIENT_ADDR
    assert environ["HTTP_HOST"] == PUBLIC_HOST  # nginx overwrote the spoofed host,
    assert environ["SCRIPT_NAME"] == "/app"  # prefix
    assert environ["SERVER_PORT"] == "443"  # and port (cleared)
    assert "HTTP_FORWARDED" not in environ  # and dropped the other header style


def test_trusted_nginx_sending_rfc7239_forwarded(
    trusting_rfc7239: tuple[PorchProcess, Nginx],
) -> None:
    _, nginx = trusting_rfc7239
    environ = environ_at(f"{nginx.url}/rfc7239/environ", headers={"X-Forwarded-For": SPOOFED_ADDR})
    assert environ["HTTP_FORWARDED"] == f'for={CLIENT_ADDR};proto=https;host="{PUBLIC_HOST}"'
    assert environ["REMOTE_ADDR"] == CLIENT_ADDR
    assert environ["wsgi.url_scheme"] == "https"
    assert environ["HTTP_HOST"] == PUBLIC_HOST
    assert environ["SERVER_PORT"] == "443"
    assert environ["SCRIPT_NAME"] == ""


def test_untrusted_nginx_forwards_nothing_to_the_app(
    distrusting: tuple[PorchProcess, Nginx],
) -> None:
    porch, nginx = distrusting
    for location in ("app", "rfc7239"):
        environ = environ_at(f"{nginx.url}/{location}/environ", headers=SPOOFED_HEADERS)
        assert environ["REMOTE_ADDR"] == "127.0.0.1", location  # nginx, the real peer
        assert environ["wsgi.url_scheme"] == "http", location
        assert environ["SCRIPT_NAME"] == "", location
        assert environ["HTTP_HOST"] == porch.url.removeprefix("http://"), location  # nginx's Host
        assert_nothing_forwarded(environ)


def test_untrusted_direct_client_spoofing_both_styles(
    distrusting: tuple[PorchProcess, Nginx],
) -> None:
    porch, _ = distrusting
    for local_address in ("127.0.0.1", CLIENT_ADDR):
        environ = environ_at(
            f"{porch.url}/environ", local_address=local_address, headers=SPOOFED_HEADERS
        )
        assert environ["REMOTE_ADDR"] == local_address
        assert environ["wsgi.url_scheme"] == "http"
        assert environ["HTTP_HOST"] == environ["SERVER_NAME"] == PUBLIC_HOST
        assert environ["SERVER_PORT"] == "80"  # from the Host header and the real scheme
        assert environ["SCRIPT_NAME"] == ""
        assert_nothing_forwarded(environ)


def test_default_trust_is_exactly_the_loopback_addresses(
    trusting: tuple[PorchProcess, Nginx],
) -> None:
    """By default 127.0.0.1 (and ::1) are trusted, not all of 127/8: a direct client on
    127.0.0.1 is believed (it could be a local proxy), one on 127.0.0.2 is not."""
    porch, _ = trusting
    believed = environ_at(
        f"{porch.url}/environ", local_address="127.0.0.1", headers=SPOOFED_HEADERS
    )
    assert believed["REMOTE_ADDR"] == SPOOFED_ADDR  # from X-Forwarded-For (the default style)
    assert "HTTP_FORWARDED" not in believed  # the other style is always removed
    assert believed["wsgi.url_scheme"] == "https"
    assert believed["HTTP_HOST"] == "evil.example.test"
    stripped = environ_at(
        f"{porch.url}/environ", local_address=CLIENT_ADDR, headers=SPOOFED_HEADERS
    )
    assert stripped["REMOTE_ADDR"] == CLIENT_ADDR
    assert stripped["wsgi.url_scheme"] == "http"
    assert_nothing_forwarded(stripped)


def test_typical_nginx_config_does_not_let_a_client_choose_forwarded(
    trusting: tuple[PorchProcess, Nginx],
) -> None:
    _, nginx = trusting
    spoof = {"Forwarded": f"for={SPOOFED_ADDR};proto=https"}
    environ = environ_at(f"{nginx.url}/typical/environ", headers=spoof)
    assert environ["HTTP_X_FORWARDED_FOR"] == CLIENT_ADDR  # what nginx vouches for
    assert environ["REMOTE_ADDR"] == CLIENT_ADDR
    assert environ["wsgi.url_scheme"] == "http"
    assert "HTTP_FORWARDED" not in environ
