"""Edge features through the real porch command: --static, PROXY protocol from a real
haproxy, --worker-connections, and workers that outlive a killed master."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
from pathlib import Path

import httpx
import pytest

from porch.protocol.dates import parse_http_date
from tests.e2e.conftest import PorchProcess
from tests.e2e.raw_http import parse_url, raw_request, status_of
from tests.integration_haproxy.haproxy_process import listening_socket, run_haproxy
from tests.programs import require_program

pytestmark = pytest.mark.timeout(120)

TRAVERSALS = [
    b"/assets/../README.md",
    b"/assets/..%2f..%2fREADME.md",
    b"/assets/%2e%2e/%2e%2e/README.md",
    b"/assets/%252e%252e/secret.txt",
    b"/assets/..\\secret.txt",
    b"/assets/.hidden",
    b"/assets/sub/../../secret.txt",
    b"/assets/%00style.css",
    b"/assets/%c0%ae%c0%ae/secret.txt",
    b"/assets/outside/secret.txt",
]


@pytest.fixture
def site(tmp_path: Path) -> Path:
    public = tmp_path / "public"
    (public / "sub").mkdir(parents=True)
    (public / "style.css").write_text("body { color: green }\n")
    (public / "big.bin").write_bytes(bytes(range(256)) * 4096)  # 1 MiB
    (public / ".hidden").write_text("no")
    (tmp_path / "secret.txt").write_text("secret")
    (public / "outside").symlink_to(tmp_path)
    return public


def test_static_files_served_before_the_app(porch: type[PorchProcess], site: Path) -> None:
    server = porch(["examples/hello.py", "-b", "127.0.0.1:0", "--static", f"/assets={site}"])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        css = client.get("/assets/style.css")
        assert css.status_code == 200 and css.text == "body { color: green }\n"
        assert css.headers["content-type"].startswith("text/css")
        again = client.get("/assets/style.css", headers={"If-None-Match": css.headers["etag"]})
        assert again.status_code == 304 and again.content == b""
        part = client.get("/assets/big.bin", headers={"Range": "bytes=256-511"})
        assert part.status_code == 206 and part.content == bytes(range(256))
        big = client.get("/assets/big.bin")
        assert big.content == bytes(range(256)) * 4096  # sendfile path
        assert client.post("/assets/style.css").status_code == 405
        assert client.get("/").text == "Hello, World!"  # everything else: the app
    for target in TRAVERSALS:
        response = raw_request(
            server.url, b"GET %s HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n" % target
        )
        assert status_of(response) in (400, 404), (target, response[:200])
        assert b"secret" not in response.split(b"\r\n\r\n", 1)[-1]


def test_static_last_modified_is_never_after_the_date(
    porch: type[PorchProcess], site: Path
) -> None:
    # RFC 9110 §8.8.2.1: a file dated 2030 is served with the worker's Date instead.
    future = 1893456000  # 2030-01-01
    os.utime(site / "style.css", (future, future))
    server = porch(["examples/hello.py", "-b", "127.0.0.1:0", "--static", f"/assets={site}"])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        css = client.get("/assets/style.css")
        date = parse_http_date(css.headers["date"])
        last_modified = parse_http_date(css.headers["last-modified"])
        assert date is not None and last_modified is not None
        assert date - 2 <= last_modified <= date
        since = {"If-Modified-Since": "Tue, 01 Jan 2030 00:00:00 GMT"}
        assert client.get("/assets/style.css", headers=since).status_code == 200
        again = client.get("/assets/style.css", headers={"If-None-Match": css.headers["etag"]})
        assert again.status_code == 304


@pytest.fixture(scope="module")
def haproxy() -> str:
    return require_program("haproxy", "haproxy")


@pytest.mark.parametrize("send", ["send-proxy", "send-proxy-v2"])
def test_proxy_protocol_from_real_haproxy(
    porch: type[PorchProcess], haproxy: str, tmp_path: Path, send: str
) -> None:
    server = porch(["examples/hello.py", "-b", "127.0.0.1:0", "--proxy-protocol"])
    _, port = parse_url(server.url)
    front = listening_socket("::1") or listening_socket("127.0.0.1")
    assert front is not None
    front_host, front_port = front.getsockname()[:2]
    config = "\n".join(
        [
            "defaults",
            "    mode tcp",
            "    timeout connect 5s",
            "    timeout client 15s",
            "    timeout server 15s",
            "listen front",
            f"    bind fd@{front.fileno()}",
            f"    server porch 127.0.0.1:{port} {send}",
            "",
        ]
    )
    with run_haproxy(haproxy, config, tmp_path, [front]):
        family = socket.AF_INET6 if ":" in front_host else socket.AF_INET
        with socket.socket(family) as client:
            client.settimeout(10)
            client.connect((front_host, front_port))
            client_host, client_port = client.getsockname()[:2]
            client.sendall(b"GET /environ HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
            response = b""
            while chunk := client.recv(65536):
                response += chunk
    environ = json.loads(response.split(b"\r\n\r\n", 1)[1])
    assert (environ["REMOTE_ADDR"], environ["REMOTE_PORT"]) == (client_host, str(client_port))
    # Plain HTTP to a PROXY-protocol port is refused, not misparsed.
    assert status_of(raw_request(server.url, b"GET / HTTP/1.1\r\nHost: x\r\n\r\n")) == 400


def test_proxy_protocol_peer_not_allowed(porch: type[PorchProcess]) -> None:
    server = porch(
        [
            "examples/hello.py",
            "-b",
            "127.0.0.1:0",
            "--proxy-protocol",
            "--proxy-allow-from",
            "10.9.8.7",
        ]
    )
    header = b"PROXY TCP4 203.0.113.5 127.0.0.1 5555 80\r\n"
    assert raw_request(server.url, header + b"GET / HTTP/1.1\r\nHost: x\r\n\r\n") == b""
    assert server.logged("not in --proxy-allow-from")


def test_worker_connections_leaves_extra_clients_in_the_backlog(
    porch: type[PorchProcess],
) -> None:
    server = porch(["examples/hello.py", "-b", "127.0.0.1:0", "--worker-connections", "2"])
    host, port = parse_url(server.url)
    request = b"GET / HTTP/1.1\r\nHost: x\r\n\r\n"
    held = [socket.create_connection((host, port), timeout=10) for _ in range(2)]
    for sock in held:
        sock.sendall(request)
        assert sock.recv(65536).startswith(b"HTTP/1.1 200")
    waiting = socket.create_connection((host, port), timeout=10)
    waiting.sendall(request)
    waiting.settimeout(0.5)
    with pytest.raises(TimeoutError):
        waiting.recv(65536)  # queued in the backlog, not refused
    held[0].close()
    waiting.settimeout(10)
    assert waiting.recv(65536).startswith(b"HTTP/1.1 200")
    for sock in (held[1], waiting):
        sock.close()
    assert server.logged("--worker-connections 2")


def test_workers_leave_when_the_master_is_killed(porch: type[PorchProcess]) -> None:
    server = porch(["examples/hello.py", "-b", "127.0.0.1:0", "-w", "2"])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        worker = int(client.get("/pid").text)
    os.kill(server.proc.pid, signal.SIGKILL)
    server.proc.wait(10)
    pidfd = os.pidfd_open(worker)
    try:
        poller = select.poll()
        poller.register(pidfd, select.POLLIN)
        assert poller.poll(10_000), "worker still running 10 s after its master died"
    finally:
        os.close(pidfd)


@pytest.mark.parametrize("chunked", [False, True])
def test_curl_http2_upgrade_with_a_body_is_served_as_http11(
    porch: type[PorchProcess], chunked: bool
) -> None:
    # curl --http2 on an http:// URL asks for h2c with Upgrade on every request,
    # body included; porch ignores the Upgrade (RFC 9110 §7.8) and reads the body.
    curl = require_program("curl", "curl")
    server = porch(["examples/hello.py", "-b", "127.0.0.1:0"])
    command = [curl, "-sS", "-v", "--http2", "--data-binary", "hello upgrade", server.url + "/echo"]
    if chunked:
        command += ["-H", "Transfer-Encoding: chunked"]
    done = subprocess.run(
        command,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert done.returncode == 0, done.stderr
    assert "Upgrade: h2c" in done.stderr  # curl did ask for the upgrade
    assert "HTTP/1.1 200" in done.stderr
    assert done.stdout == "hello upgrade"
    assert server.stop() == 0
