"""Call a WSGI app in-process under ``wsgiref.validate.validator``: no sockets, no server."""

from __future__ import annotations

import io
import warnings
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import WSGIWarning, validator

WSGIApp = Callable[[dict[str, Any], Callable[..., Any]], Iterable[bytes]]


@dataclass
class WSGIResult:
    """What one call of the app produced."""

    status: str
    headers: list[tuple[str, str]]
    chunks: list[bytes]
    errors: str = ""
    environ: dict[str, Any] = field(default_factory=dict)

    @property
    def status_code(self) -> int:
        return int(self.status.split(" ", 1)[0])

    @property
    def body(self) -> bytes:
        return b"".join(self.chunks)

    @property
    def text(self) -> str:
        return self.body.decode("utf-8")

    def header(self, name: str) -> str | None:
        for key, value in self.headers:
            if key.lower() == name.lower():
                return value
        return None


def call_wsgi(
    app: WSGIApp,
    method: str = "GET",
    path: str = "/",
    *,
    query: str = "",
    body: bytes = b"",
    headers: dict[str, str] | None = None,
    environ: dict[str, Any] | None = None,
    input_terminated: bool = False,
    validate: bool = True,
) -> WSGIResult:
    """Run one request through ``app`` wrapped in the PEP 3333 validator.

    Validator warnings are errors. ``headers`` become ``HTTP_*`` keys (Content-Type
    and Content-Length become ``CONTENT_*``); the body is sent with its length.
    ``input_terminated`` sets the ``wsgi.input_terminated`` extension (porch sets
    it); off by default because the validator insists on ``read(size)``, which
    frameworks skip when the server promises EOF. ``validate=False`` calls the app
    bare (for that porch-style environ).
    """
    errors = io.StringIO()
    env: dict[str, Any] = {
        "REQUEST_METHOD": method,
        "SCRIPT_NAME": "",
        "PATH_INFO": path,
        "QUERY_STRING": query,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "127.0.0.1",
        "wsgi.input": io.BytesIO(body),
        "wsgi.errors": errors,
    }
    if input_terminated:
        # Frameworks test the key's presence (Werkzeug), so only set it when on.
        env["wsgi.input_terminated"] = True
    if body:
        env["CONTENT_LENGTH"] = str(len(body))
    for name, value in (headers or {}).items():
        key = name.upper().replace("-", "_")
        env[key if key in ("CONTENT_TYPE", "CONTENT_LENGTH") else "HTTP_" + key] = value
    env.update(environ or {})
    setup_testing_defaults(env)

    started: list[tuple[str, list[tuple[str, str]]]] = []

    def start_response(
        status: str, response_headers: list[tuple[str, str]], exc_info: Any = None
    ) -> Callable[[bytes], None]:
        started.append((status, list(response_headers)))
        return lambda data: None

    chunks: list[bytes] = []
    with warnings.catch_warnings():
        warnings.simplefilter("error", WSGIWarning)
        iterable = (validator(app) if validate else app)(env, start_response)
        try:
            chunks.extend(iterable)
        finally:
            close = getattr(iterable, "close", None)
            if close is not None:
                close()
    assert started, "the app returned without calling start_response"
    status, response_headers = started[-1]
    return WSGIResult(
        status=status,
        headers=response_headers,
        chunks=chunks,
        errors=errors.getvalue(),
        environ=env,
    )
