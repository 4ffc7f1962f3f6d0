"""A raw-socket HTTP/1.1 exchange for tests that must send bytes exactly as written."""

from __future__ import annotations

import socket


def parse_url(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host.strip("[]"), int(port)


def raw_request(url: str, request: bytes, *, timeout: float = 10.0) -> bytes:
    """Send ``request`` on a fresh connection and read until the server closes it."""
    host, port = parse_url(url)
    with socket.create_connection((host, port), timeout=timeout) as sock:
        sock.sendall(request)
        chunks = []
        while True:
            try:
                data = sock.recv(65536)
            except ConnectionResetError:
                break  # an aborted connection: what was received before is the answer
            if not data:
                break
            chunks.append(data)
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    return int(response.split(b" ", 2)[1]) if response.startswith(b"HTTP/1.") else 0
