"""The fused fast path gives the same responses as the general path it short-cuts.

Fast: a list result in inline mode (one write, no iteration), and a response
head seen before (validated and serialized once, then looked up). General: the
same response produced by an iterator, and a head built from ``[name, value]``
lists, which cannot be remembered. Every pair must match byte for byte, apart
from the Date value.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Iterable
from typing import Any

import pytest
from live_worker import Serve, get

pytestmark = pytest.mark.parametrize("mode", ["inline-uvloop", "threads-asyncio"], indirect=True)

DATE = re.compile(rb"\r\nDate: [^\r]*\r\n")

App = Callable[[dict[str, Any], Any], Iterable[bytes]]

# Every head declares its length: without one, a list gets a computed
# Content-Length and an iterator is chunked (tested below), by design.
HEADS: list[tuple[str, list[tuple[str, str]]]] = [
    ("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")]),
    (
        "404 Not Found",
        [("Content-Type", "text/html"), ("X-Custom", "a, b"), ("Content-Length", "5")],
    ),
    ("200 OK", [("Server", "mine"), ("Content-Length", "5")]),  # no second Server
    ("200 OK", [("Content-Length", "3")]),  # shorter than the body: cut, then closed
    ("204 No Content", [("Content-Length", "5")]),  # no body, no Content-Length
    ("200 OK", [("Connection", "close"), ("Content-Length", "5")]),
]


def app_for(status: str, headers: list[tuple[str, str]], *, fast: bool) -> App:
    def app(environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        if fast:
            start_response(status, headers)
            return [b"hello"]
        start_response(status, [[name, value] for name, value in headers])
        return iter([b"hel", b"lo"]) if "Content-Length" in dict(headers) else iter([b"hello"])

    return app


@pytest.mark.parametrize(("status", "headers"), HEADS)
@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_fast_and_general_paths_send_the_same_bytes(
    serve: Serve, status: str, headers: list[tuple[str, str]], method: str
) -> None:
    # Twice on one connection: the second request takes the remembered head.
    request = get().replace(b"GET", method.encode(), 1)
    closing = request.replace(b"\r\n\r\n", b"\r\nConnection: close\r\n\r\n")
    answers = []
    for fast in (True, False):
        worker = serve(app_for(status, headers, fast=fast))
        with worker.connect() as conn:
            conn.send(request + closing)
            data, _ = conn.read_to_eof()
            answers.append(DATE.sub(b"\r\nDate: -\r\n", data))
    fast_bytes, general_bytes = answers
    assert fast_bytes.startswith(b"HTTP/1.1 ")
    assert fast_bytes == general_bytes


@pytest.mark.parametrize("method", ["GET", "HEAD"])
def test_a_list_without_a_length_gets_one_computed(serve: Serve, method: str) -> None:
    worker = serve(app_for("200 OK", [("Content-Type", "text/plain")], fast=True))
    request = get().replace(b"GET", method.encode(), 1)
    for _ in range(2):  # the second time from the remembered head
        response = worker.request(request, method=method)
        assert response.status == 200 and response.header("Content-Length") == "5"
        assert response.body == (b"hello" if method == "GET" else b"")
