"""The real porch command with --no-request-buffering: uploads reach the app as they arrive."""

from __future__ import annotations

import socket
from collections.abc import Callable

from conftest import Porch

StartPorch = Callable[..., Porch]
APP = "procapp:app"
INLINE_WARNING = "--no-request-buffering with --threads 1"


def _connect(url: str) -> socket.socket:
    host, port = url.removeprefix("http://").rsplit(":", 1)
    return socket.create_connection((host, int(port)), timeout=20)


def test_an_upload_reaches_the_app_before_it_is_complete(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "--threads", "2", "--no-request-buffering")
    url = porch.wait_ready()
    with _connect(url) as sock:
        sock.sendall(
            b"POST /upload HTTP/1.1\r\nHost: x\r\nConnection: close\r\n"
            b"Transfer-Encoding: chunked\r\n\r\n5\r\nhello\r\n"
        )
        porch.wait_for(r"procapp: upload started")  # the rest of the body is not sent yet
        sock.sendall(b"6\r\n world\r\n0\r\n\r\n")
        response = b""
        while data := sock.recv(65536):
            response += data
    assert response.startswith(b"HTTP/1.1 200 ")
    assert response.endswith(b"\r\n\r\nreceived 11")
    assert porch.count(INLINE_WARNING) == 0


def test_inline_mode_warns_that_a_slow_upload_holds_the_worker(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", env={"PORCH_REQUEST_BUFFERING": "false"})
    porch.wait_ready()
    assert porch.count(INLINE_WARNING) == 1
    with porch.client() as client:
        assert client.post("/upload", content=b"x" * 100_000).text == "received 100000"
