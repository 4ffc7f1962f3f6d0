"""A real haproxy sends PROXY v1 and v2 headers; ProxyHeaderParser recovers the client's address.

haproxy (``send-proxy`` / ``send-proxy-v2`` on a ``server`` line, mode tcp)
relays clients to a tiny asyncio server that parses the header with porch's
parser and answers the HTTP request behind it with what it found, as JSON.
"""

from __future__ import annotations

import asyncio
import json
import queue
import socket
import threading
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
from haproxy_process import HAProxy, listening_socket, run_haproxy

from porch.protocol.proxy_protocol import ProxyHeaderError, ProxyHeaderParser, ProxyResult

# Generous: the first test may install haproxy with apt-get.
pytestmark = pytest.mark.timeout(300)

CLIENT_TIMEOUT_SECONDS = 10.0


class EchoBackend:
    """An asyncio TCP server (own thread and loop) answering what the PROXY header said.

    Every header it parses, or the error it refused one with, is also put on
    ``seen`` (health checks send a header and no request).
    """

    def __init__(self) -> None:
        self.seen: queue.Queue[ProxyResult | str] = queue.Queue()
        self._loop = asyncio.new_event_loop()
        self._server: asyncio.Server | None = None
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._thread.start()
        started = asyncio.run_coroutine_threadsafe(self._start(), self._loop)
        self.port: int = started.result(timeout=10)

    async def _start(self) -> int:
        self._server = await asyncio.start_server(self._serve, "127.0.0.1", 0)
        port: int = self._server.sockets[0].getsockname()[1]
        return port

    async def _serve(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            result = await self._read_header(reader)
            if result is None:
                return
            request = result.rest
            while b"\r\n\r\n" not in request:
                data = await reader.read(4096)
                if not data:
                    return  # a health check: header only
                request += data
            body = json.dumps(
                {
                    "source": result.source,
                    "destination": result.destination,
                    "version": result.version,
                    "request_line": request.split(b"\r\n", 1)[0].decode("latin-1"),
                }
            ).encode()
            writer.write(
                b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\n"
                b"Content-Length: %d\r\nConnection: close\r\n\r\n%s" % (len(body), body)
            )
            await writer.drain()
        except ConnectionError:
            pass
        finally:
            writer.close()

    async def _read_header(self, reader: asyncio.StreamReader) -> ProxyResult | None:
        parser = ProxyHeaderParser()
        try:
            while True:
                data = await reader.read(4096)
                if not data:
                    return None
                result = parser.feed(data)
                if result is not None:
                    self.seen.put(result)
                    return result
        except ProxyHeaderError as exc:
            self.seen.put(str(exc))
            return None

    def close(self) -> None:
        async def stop() -> None:
            assert self._server is not None
            self._server.close()
            await self._server.wait_closed()

        asyncio.run_coroutine_threadsafe(stop(), self._loop).result(timeout=10)
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=10)
        self._loop.close()


@dataclass
class Relay:
    """haproxy in front of the echo backend; ``frontends`` maps a name to (host, port)."""

    haproxy: HAProxy
    backend: EchoBackend
    frontends: dict[str, tuple[str, int]]


def _config(backend_port: int, fds: dict[str, int]) -> str:
    target = f"127.0.0.1:{backend_port}"
    send = {"v1": "send-proxy", "v2": "send-proxy-v2 proxy-v2-options crc32c,unique-id"}
    lines = [
        "global",
        "    maxconn 256",
        "    nbthread 1",
        "defaults",
        "    mode tcp",
        "    timeout connect 5s",
        "    timeout client 15s",
        "    timeout server 15s",
    ]
    for name, fd in fds.items():
        version = name.split("_")[0]
        lines += [
            f"frontend {name}",
            f"    bind fd@{fd}",
            "    unique-id-format %{+X}o\\ %ci:%cp",  # sent as a PP2_TYPE_UNIQUE_ID TLV
            f"    default_backend to_{name}",
            f"backend to_{name}",
            f"    server echo {target} {send[version]}",
        ]
    # No frontend: only haproxy's own health checks, which send a v2 LOCAL header.
    lines += [
        "backend health_checks",
        f"    server echo {target} send-proxy-v2 check check-send-proxy inter 100ms",
    ]
    return "\n".join(lines) + "\n"


@pytest.fixture(scope="module")
def relay(haproxy_binary: str, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Relay]:
    backend = EchoBackend()
    listeners: dict[str, socket.socket] = {}
    for name, host in (
        ("v1_ipv4", "127.0.0.1"),
        ("v2_ipv4", "127.0.0.1"),
        ("v1_ipv6", "::1"),
        ("v2_ipv6", "::1"),
    ):
        sock = listening_socket(host)
        if sock is not None:
            listeners[name] = sock
    frontends = {name: sock.getsockname()[:2] for name, sock in listeners.items()}
    config = _config(backend.port, {name: sock.fileno() for name, sock in listeners.items()})
    directory: Path = tmp_path_factory.mktemp("haproxy")
    try:
        with run_haproxy(haproxy_binary, config, directory, list(listeners.values())) as haproxy:
            yield Relay(haproxy=haproxy, backend=backend, frontends=frontends)
    finally:
        backend.close()


def ask(
    address: tuple[str, int], path: str = "/probe"
) -> tuple[tuple[str, int], dict[str, object]]:
    """GET ``path`` through haproxy; the client's own (host, port) and the JSON answer."""
    family = socket.AF_INET6 if ":" in address[0] else socket.AF_INET
    with socket.socket(family, socket.SOCK_STREAM) as client:
        client.settimeout(CLIENT_TIMEOUT_SECONDS)
        client.connect(address)
        local = client.getsockname()[:2]
        client.sendall(f"GET {path} HTTP/1.1\r\nHost: porch.test\r\n\r\n".encode())
        response = b""
        while chunk := client.recv(65536):
            response += chunk
    head, _, body = response.partition(b"\r\n\r\n")
    assert head.startswith(b"HTTP/1.1 200 OK"), response
    answer: dict[str, object] = json.loads(body)
    return local, answer


def _frontend(relay: Relay, name: str) -> tuple[str, int]:
    if name not in relay.frontends:
        pytest.skip(f"cannot listen on {name.split('_')[1]} loopback here")
    relay.haproxy.assert_running()
    return relay.frontends[name]


@pytest.mark.parametrize("name", ["v1_ipv4", "v2_ipv4", "v1_ipv6", "v2_ipv6"])
def test_the_client_address_arrives(relay: Relay, name: str) -> None:
    frontend = _frontend(relay, name)
    local, answer = ask(frontend, path=f"/{name}?x=1")
    assert answer == {
        "source": [local[0], local[1]],
        "destination": [frontend[0], frontend[1]],
        "version": int(name[1]),
        "request_line": f"GET /{name}?x=1 HTTP/1.1",
    }, relay.haproxy.log()


@pytest.mark.parametrize("name", ["v1_ipv4", "v2_ipv4"])
def test_each_connection_carries_its_own_client(relay: Relay, name: str) -> None:
    frontend = _frontend(relay, name)
    results = [ask(frontend) for _ in range(5)]
    ports = {local[1] for local, _ in results}
    assert len(ports) == 5
    for local, answer in results:
        assert answer["source"] == [local[0], local[1]]


def test_health_checks_send_a_v2_local_header(relay: Relay) -> None:
    relay.haproxy.assert_running()
    deadline_seconds = 10.0
    while True:
        try:
            seen = relay.backend.seen.get(timeout=deadline_seconds)
        except queue.Empty:
            pytest.fail(f"no LOCAL header from haproxy's health checks:\n{relay.haproxy.log()}")
        assert not isinstance(seen, str), f"the parser refused haproxy's header: {seen}"
        if seen.source is None:
            break
    assert seen == ProxyResult(source=None, destination=None, rest=b"", version=2)


def test_no_header_haproxy_sent_was_refused(relay: Relay) -> None:
    ask(_frontend(relay, "v1_ipv4"))
    ask(_frontend(relay, "v2_ipv4"))
    refused = []
    while True:
        try:
            seen = relay.backend.seen.get_nowait()
        except queue.Empty:
            break
        if isinstance(seen, str):
            refused.append(seen)
    assert refused == []
