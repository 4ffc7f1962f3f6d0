"""Standard-library WSGI apps for the benchmark: one callable per scenario, no routing.

Every server in a scenario loads the same callable (``plain:hello`` and so on), so
the only difference measured is the server. Bodies are built once at import time.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable
from typing import Any

Environ = dict[str, Any]
StartResponse = Callable[..., Any]

HELLO_BODY = b"Hello, World!"
HELLO_HEADERS = [("Content-Type", "text/plain"), ("Content-Length", str(len(HELLO_BODY)))]

# A small JSON document serialised per request, as a JSON API would.
JSON_DOCUMENT = {"message": "Hello, World!", "items": list(range(10)), "ok": True}

BODY_64K = b"x" * (64 * 1024)
BODY_1M = b"x" * (1024 * 1024)
READ_CHUNK_BYTES = 64 * 1024
SLEEP_SECONDS = 0.010


def _headers(body: bytes, content_type: str = "application/octet-stream") -> list[tuple[str, str]]:
    return [("Content-Type", content_type), ("Content-Length", str(len(body)))]


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Plaintext 'Hello, World!' with Content-Length."""
    start_response("200 OK", HELLO_HEADERS)
    return [HELLO_BODY]


def json_app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A small JSON object, serialised on every request."""
    body = json.dumps(JSON_DOCUMENT).encode()
    start_response("200 OK", _headers(body, "application/json"))
    return [body]


def body_64k(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A 64 KiB response body in one chunk."""
    start_response("200 OK", _headers(BODY_64K))
    return [BODY_64K]


def body_1m(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A 1 MiB response body in one chunk."""
    start_response("200 OK", _headers(BODY_1M))
    return [BODY_1M]


def upload(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """Read the whole request body (in 64 KiB reads) and answer with its size."""
    stream = environ["wsgi.input"]
    remaining = int(environ.get("CONTENT_LENGTH") or 0)
    received = 0
    while remaining > 0:
        chunk = stream.read(min(READ_CHUNK_BYTES, remaining))
        if not chunk:
            break
        received += len(chunk)
        remaining -= len(chunk)
    body = str(received).encode()
    start_response("200 OK", _headers(body, "text/plain"))
    return [body]


def sleep_10ms(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """A blocking app: sleeps 10 ms (a stand-in for a database call), then says hello."""
    time.sleep(SLEEP_SECONDS)
    start_response("200 OK", HELLO_HEADERS)
    return [HELLO_BODY]
