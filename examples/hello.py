"""A standard-library WSGI app: hello world plus routes for manual checks and tests.

Run it with ``porch examples/hello.py`` (or ``porch hello:app --chdir examples``).

Routes:

    /               Hello, World! (text/plain)
    /sleep?s=1.5    sleeps that many seconds (at most 3600) then answers: timeout/TERM demos
    /echo           returns the request body (reads wsgi.input fully), same Content-Type
    /stream?n=5     yields n chunks without Content-Length (&delay=0.1 between chunks)
    /environ        JSON of the str-valued environ keys
    /error          raises RuntimeError (the server answers 500 and logs it)
    /pid            the worker's process id
"""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable, Iterable, Iterator
from typing import Any
from urllib.parse import parse_qs

StartResponse = Callable[..., Callable[[bytes], object]]
Environ = dict[str, Any]

MAX_SLEEP_S = 3600.0
MAX_CHUNKS = 100_000
READ_CHUNK_BYTES = 64 * 1024


def _query_number(environ: Environ, name: str, default: float) -> float:
    values = parse_qs(environ.get("QUERY_STRING", "")).get(name)
    if not values:
        return default
    try:
        return float(values[0])
    except ValueError:
        return default


def _respond(
    start_response: StartResponse,
    body: bytes,
    content_type: str = "text/plain; charset=utf-8",
    status: str = "200 OK",
) -> list[bytes]:
    start_response(status, [("Content-Type", content_type), ("Content-Length", str(len(body)))])
    return [body]


def _read_body(environ: Environ) -> bytes:
    """Read the whole request body, with a size on every read() (PEP 3333)."""
    stream = environ["wsgi.input"]
    length_text = environ.get("CONTENT_LENGTH") or ""
    remaining = int(length_text) if length_text.isdigit() else None
    if remaining is None and not environ.get("wsgi.input_terminated"):
        return b""  # no length and no EOF promise: reading could block forever
    chunks = []
    while remaining is None or remaining > 0:
        size = READ_CHUNK_BYTES if remaining is None else min(READ_CHUNK_BYTES, remaining)
        chunk = stream.read(size)
        if not chunk:
            break
        chunks.append(chunk)
        if remaining is not None:
            remaining -= len(chunk)
    return b"".join(chunks)


def hello(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    return _respond(start_response, b"Hello, World!")


def sleep(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    seconds = min(max(_query_number(environ, "s", 1.0), 0.0), MAX_SLEEP_S)
    time.sleep(seconds)
    return _respond(start_response, f"slept {seconds:g}s\n".encode())


def echo(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    body = _read_body(environ)
    content_type = environ.get("CONTENT_TYPE") or "application/octet-stream"
    return _respond(start_response, body, content_type=content_type)


def stream(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    count = int(min(max(_query_number(environ, "n", 5), 0), MAX_CHUNKS))
    delay_s = min(max(_query_number(environ, "delay", 0.0), 0.0), MAX_SLEEP_S)
    start_response("200 OK", [("Content-Type", "text/plain; charset=utf-8")])

    def chunks() -> Iterator[bytes]:
        for index in range(count):
            if delay_s and index:
                time.sleep(delay_s)
            yield f"chunk {index}\n".encode()

    return chunks()


def show_environ(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    values = {key: value for key, value in sorted(environ.items()) if isinstance(value, str)}
    body = json.dumps(values, indent=2).encode()
    return _respond(start_response, body, content_type="application/json")


def error(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    raise RuntimeError("/error was requested: this exception is on purpose")


def pid(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    return _respond(start_response, f"{os.getpid()}\n".encode())


ROUTES: dict[str, Callable[[Environ, StartResponse], Iterable[bytes]]] = {
    "/": hello,
    "/sleep": sleep,
    "/echo": echo,
    "/stream": stream,
    "/environ": show_environ,
    "/error": error,
    "/pid": pid,
}


def app(environ: Environ, start_response: StartResponse) -> Iterable[bytes]:
    """The WSGI entry point: dispatch on PATH_INFO."""
    route = ROUTES.get(environ.get("PATH_INFO") or "/")
    if route is None:
        return _respond(start_response, b"Not Found\n", status="404 Not Found")
    return route(environ, start_response)


application = app
