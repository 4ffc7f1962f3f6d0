"""examples/hello.py plus ``/bulk``: a large response that costs the app almost nothing.

``/bulk?kib=1024`` yields 64 KiB blocks from a generator (chunked); add ``&list=1`` for
one block list with a Content-Length. hello's ``/stream`` is no use for slow-reader
tests: its 12-byte chunks cost the app ~7 us each, so a backlog of them measures app
work, not whether a slow reader holds the app thread. Run with ``--pythonpath examples``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Iterator
from functools import cache
from typing import Any
from urllib.parse import parse_qs

from hello import app as hello_app

BLOCK = b"z" * (64 * 1024)


@cache
def _whole_body(blocks: int) -> bytes:
    return BLOCK * blocks  # one object shared by every response: slow readers cost no copies


def app(environ: dict[str, Any], start_response: Callable[..., Any]) -> Iterable[bytes]:
    if environ.get("PATH_INFO") != "/bulk":
        return hello_app(environ, start_response)
    query = parse_qs(environ.get("QUERY_STRING", ""))
    blocks = max(int(query.get("kib", ["1024"])[0]) // 64, 1)
    if query.get("list"):
        body = _whole_body(blocks)
        start_response(
            "200 OK",
            [("Content-Type", "application/octet-stream"), ("Content-Length", str(len(body)))],
        )
        return [body]
    start_response("200 OK", [("Content-Type", "application/octet-stream")])

    def generate() -> Iterator[bytes]:
        for _ in range(blocks):
            yield BLOCK

    return generate()
