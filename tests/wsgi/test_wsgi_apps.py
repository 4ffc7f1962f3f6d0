"""Sample apps (plain and Flask) through the whole PEP 3333 layer under wsgiref's validator.

``serve`` plays the worker's part without sockets: environ from a RequestHead,
a fed BufferedInput, a StartResponse whose sink marks the head as sent.
"""

from __future__ import annotations

import io
import json
import sys
import wsgiref.validate
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from typing import Any
from wsgiref.validate import validator

import flask
import pytest

from porch.protocol.events import RequestHead
from porch.types import Environ, WSGIApp
from porch.types import StartResponse as StartResponseType
from porch.wsgi import (
    EMPTY_INPUT,
    BufferedInput,
    FileWrapper,
    StartResponse,
    base_environ,
    build_environ,
)

HeadFactory = Callable[..., RequestHead]


@dataclass
class Served:
    status: str = ""
    headers: list[tuple[str, str]] = field(default_factory=list)
    body: bytes = b""


def serve(
    app: WSGIApp,
    head: RequestHead,
    body: bytes = b"",
    *,
    memory_limit: int = 1 << 16,
) -> Served:
    """Run ``app`` for one request the way the worker does, with ``validator`` around it."""
    served = Served()
    wsgi_input: Any = EMPTY_INPUT
    if body:
        wsgi_input = BufferedInput(memory_limit=memory_limit)
        for start in range(0, len(body), 5):
            wsgi_input.feed(body[start : start + 5])
        wsgi_input.finish()
    base = base_environ(
        server_name="127.0.0.1",
        server_port="8000",
        url_scheme="http",
        multithread=False,
        multiprocess=True,
        errors=io.StringIO(),
        file_wrapper=FileWrapper,
    )
    environ = build_environ(
        head, base, wsgi_input=wsgi_input, remote_addr="127.0.0.1", remote_port="50000"
    )

    def send(data: bytes) -> None:
        if not start_response.headers_sent:
            served.status, served.headers = start_response.status, start_response.headers
            start_response.headers_sent = True
        served.body += data

    start_response = StartResponse(send)
    result = validator(app)(environ, start_response)
    try:
        for chunk in result:
            if chunk:
                send(chunk)
    finally:
        result.close()  # type: ignore[attr-defined]
        wsgi_input.close()
    if not start_response.headers_sent:
        send(b"")
    return served


def hello(environ: Environ, start_response: StartResponseType) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", "5")])
    return [b"hello"]


def echo(environ: Environ, start_response: StartResponseType) -> Iterable[bytes]:
    length = int(environ.get("CONTENT_LENGTH") or 0)
    data = environ["wsgi.input"].read(length)
    start_response("200 OK", [("Content-Type", "application/octet-stream")])
    return [data]


def lines(environ: Environ, start_response: StartResponseType) -> Iterable[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    return [b"%d:%s" % (len(line), line) for line in environ["wsgi.input"]]


def show_environ(environ: Environ, start_response: StartResponseType) -> Iterable[bytes]:
    keys = ["PATH_INFO", "QUERY_STRING", "SERVER_NAME", "SERVER_PORT", "HTTP_X_FORWARDED_FOR"]
    start_response("200 OK", [("Content-Type", "application/json")])
    return [json.dumps({key: environ.get(key) for key in keys}).encode()]


def uses_write(environ: Environ, start_response: StartResponseType) -> Iterable[bytes]:
    write = start_response("200 OK", [("Content-Type", "text/plain")])
    write(b"written ")
    return [b"then returned"]


def error_before_body(environ: Environ, start_response: StartResponseType) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    try:
        raise RuntimeError("late failure")
    except RuntimeError:
        headers = [("Content-Type", "text/plain")]
        start_response("500 Internal Server Error", headers, sys.exc_info())
    yield b"sorry"


def error_after_body(environ: Environ, start_response: StartResponseType) -> Iterator[bytes]:
    start_response("200 OK", [("Content-Type", "text/plain")])
    yield b"partial"
    try:
        raise RuntimeError("too late")
    except RuntimeError:
        headers = [("Content-Type", "text/plain")]
        start_response("500 Internal Server Error", headers, sys.exc_info())
    yield b"never"


def get(make_head: HeadFactory, target: bytes, **overrides: Any) -> RequestHead:
    path, _, query = target.partition(b"?")
    return make_head(path=path, query=query, **overrides)


def post(make_head: HeadFactory, target: bytes, body: bytes, content_type: bytes) -> RequestHead:
    headers = (
        (b"Host", b"example.com"),
        (b"Content-Type", content_type),
        (b"Content-Length", b"%d" % len(body)),
    )
    path, _, query = target.partition(b"?")
    return make_head(
        method="POST", path=path, query=query, headers=headers, content_length=len(body)
    )


def test_hello(make_head: HeadFactory) -> None:
    served = serve(hello, get(make_head, b"/"))
    assert (served.status, served.body) == ("200 OK", b"hello")
    assert ("Content-Length", "5") in served.headers


@pytest.mark.parametrize("memory_limit", [1 << 16, 10], ids=["memory", "spilled"])
def test_echo_body(make_head: HeadFactory, memory_limit: int) -> None:
    body = bytes(range(256)) * 3
    head = post(make_head, b"/echo", body, b"application/octet-stream")
    assert serve(echo, head, body, memory_limit=memory_limit).body == body


def test_iterate_body_lines(make_head: HeadFactory) -> None:
    body = b"one\ntwo\n\nend"
    served = serve(lines, post(make_head, b"/", body, b"text/plain"), body, memory_limit=4)
    assert served.body == b"4:one\n4:two\n1:\n3:end"


def test_environ_seen_by_the_app(make_head: HeadFactory) -> None:
    headers = ((b"Host", b"example.com:8080"), (b"X_Forwarded_For", b"spoofed"))
    head = get(make_head, b"/a%2Fb/caf%C3%A9?x=%20", headers=headers, host=b"example.com:8080")
    assert json.loads(serve(show_environ, head).body) == {
        "PATH_INFO": "/a/b/caf\xc3\xa9",
        "QUERY_STRING": "x=%20",
        "SERVER_NAME": "example.com",
        "SERVER_PORT": "8080",
        "HTTP_X_FORWARDED_FOR": None,
    }


def test_write_callable(make_head: HeadFactory) -> None:
    assert serve(uses_write, get(make_head, b"/")).body == b"written then returned"


def test_exc_info_before_the_head_was_sent(make_head: HeadFactory) -> None:
    served = serve(error_before_body, get(make_head, b"/"))
    assert (served.status, served.body) == ("500 Internal Server Error", b"sorry")


def test_exc_info_after_the_head_was_sent_reraises(make_head: HeadFactory) -> None:
    with pytest.raises(RuntimeError, match="too late"):
        serve(error_after_body, get(make_head, b"/"))


def test_file_wrapper_fallback_iteration(make_head: HeadFactory) -> None:
    def send_file(environ: Environ, start_response: StartResponseType) -> Iterable[bytes]:
        start_response("200 OK", [("Content-Type", "application/octet-stream")])
        wrapper: FileWrapper = environ["wsgi.file_wrapper"](io.BytesIO(b"z" * 10_000), 4096)
        return wrapper

    assert serve(send_file, get(make_head, b"/")).body == b"z" * 10_000


# -- a real framework ------------------------------------------------------

flask_app = flask.Flask(__name__)


class TerminatedInputWrapper(wsgiref.validate.InputWrapper):
    """wsgiref's input checks, but ``read()`` without a size is allowed.

    porch sets ``wsgi.input_terminated`` (the body ends with EOF), so Werkzeug
    calls ``read()`` with no argument; the validator predates that extension.
    """

    def read(self, *args: Any) -> bytes:
        if args:
            return super().read(*args)
        data = self.input.read()
        assert type(data) is bytes
        return data


@pytest.fixture
def allow_terminated_input(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(wsgiref.validate, "InputWrapper", TerminatedInputWrapper)


@flask_app.get("/caf\xe9/<name>")
def flask_path(name: str) -> dict[str, Any]:
    return {"name": name, "args": flask.request.args.to_dict()}


@flask_app.post("/form")
def flask_form() -> dict[str, Any]:
    return {"form": flask.request.form.to_dict(), "host": flask.request.host}


@flask_app.post("/json")
def flask_json() -> dict[str, Any]:
    return {"got": flask.request.get_json()}


@pytest.mark.usefixtures("allow_terminated_input")
def test_flask_utf8_path_and_query(make_head: HeadFactory) -> None:
    head = get(make_head, b"/caf%C3%A9/J%C3%BCrgen?q=%E2%9C%93&n=1")
    served = serve(flask_app.wsgi_app, head)
    assert served.status == "200 OK"
    assert json.loads(served.body) == {"name": "J\xfcrgen", "args": {"q": "\u2713", "n": "1"}}


@pytest.mark.usefixtures("allow_terminated_input")
@pytest.mark.parametrize("memory_limit", [1 << 16, 10], ids=["memory", "spilled"])
def test_flask_form_post(make_head: HeadFactory, memory_limit: int) -> None:
    body = b"a=1&b=caf%C3%A9&c=" + b"x" * 100
    head = post(make_head, b"/form", body, b"application/x-www-form-urlencoded")
    served = serve(flask_app.wsgi_app, head, body, memory_limit=memory_limit)
    assert json.loads(served.body) == {
        "form": {"a": "1", "b": "caf\xe9", "c": "x" * 100},
        "host": "example.com",
    }


@pytest.mark.usefixtures("allow_terminated_input")
def test_flask_json_post(make_head: HeadFactory) -> None:
    body = json.dumps({"k": [1, 2, "\u2713"]}).encode()
    head = post(make_head, b"/json", body, b"application/json")
    served = serve(flask_app.wsgi_app, head, body)
    assert json.loads(served.body) == {"got": {"k": [1, 2, "\u2713"]}}


@pytest.mark.usefixtures("allow_terminated_input")
def test_flask_404(make_head: HeadFactory) -> None:
    assert serve(flask_app.wsgi_app, get(make_head, b"/missing")).status == "404 NOT FOUND"
