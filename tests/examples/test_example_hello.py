"""examples/hello.py under the PEP 3333 validator, every route, no server."""

from __future__ import annotations

import json
import os
import time
from collections.abc import Callable
from types import ModuleType

import pytest
from wsgi_call import call_wsgi


@pytest.fixture(scope="module")
def hello(example_loader: Callable[[str], ModuleType]) -> ModuleType:
    return example_loader("hello.py")


def test_exposes_app_and_application(hello: ModuleType) -> None:
    assert callable(hello.app)
    assert hello.application is hello.app


def test_hello_world(hello: ModuleType) -> None:
    result = call_wsgi(hello.app)
    assert result.status == "200 OK"
    assert result.body == b"Hello, World!"
    assert result.header("Content-Type") == "text/plain; charset=utf-8"
    assert result.header("Content-Length") == "13"


def test_unknown_route_is_404(hello: ModuleType) -> None:
    result = call_wsgi(hello.app, path="/nope")
    assert result.status_code == 404


def test_sleep(hello: ModuleType) -> None:
    started = time.monotonic()
    result = call_wsgi(hello.app, path="/sleep", query="s=0.2")
    assert time.monotonic() - started >= 0.2
    assert result.text == "slept 0.2s\n"


def test_sleep_negative_is_zero(hello: ModuleType) -> None:
    assert call_wsgi(hello.app, path="/sleep", query="s=-5").text == "slept 0s\n"


@pytest.mark.parametrize("size", [0, 1, 65536, 65537, 300_000])
def test_echo_returns_the_body(hello: ModuleType, size: int) -> None:
    body = os.urandom(size)
    result = call_wsgi(
        hello.app, "POST", "/echo", body=body, headers={"Content-Type": "application/x-test"}
    )
    assert result.body == body
    assert result.header("Content-Length") == str(size)
    assert result.header("Content-Type") == "application/x-test"


def test_echo_without_content_length_or_eof_promise_is_empty(hello: ModuleType) -> None:
    # Without a length or wsgi.input_terminated, reading could block forever.
    result = call_wsgi(hello.app, "POST", "/echo", environ={"CONTENT_LENGTH": ""}, body=b"abc")
    assert result.body == b""


def test_echo_without_content_length_reads_to_eof(hello: ModuleType) -> None:
    # A chunked request: no CONTENT_LENGTH, the server promises EOF.
    body = b"x" * 100_000
    result = call_wsgi(
        hello.app, "POST", "/echo", environ={"CONTENT_LENGTH": ""}, body=body, input_terminated=True
    )
    assert result.body == body


def test_stream_yields_n_chunks_without_length(hello: ModuleType) -> None:
    result = call_wsgi(hello.app, path="/stream", query="n=7")
    assert result.header("Content-Length") is None
    assert result.chunks == [f"chunk {index}\n".encode() for index in range(7)]


def test_stream_default_and_delay(hello: ModuleType) -> None:
    started = time.monotonic()
    result = call_wsgi(hello.app, path="/stream", query="delay=0.05")
    assert len(result.chunks) == 5
    assert time.monotonic() - started >= 0.2  # four delays between five chunks


def test_environ_lists_only_str_values(hello: ModuleType) -> None:
    result = call_wsgi(hello.app, path="/environ", query="a=1", headers={"X-Probe": "yes"})
    assert result.header("Content-Type") == "application/json"
    values = json.loads(result.body)
    assert values["QUERY_STRING"] == "a=1"
    assert values["HTTP_X_PROBE"] == "yes"
    assert values["REQUEST_METHOD"] == "GET"
    assert "wsgi.input" not in values
    assert all(isinstance(value, str) for value in values.values())


def test_error_raises(hello: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="on purpose"):
        call_wsgi(hello.app, path="/error")


def test_pid(hello: ModuleType) -> None:
    assert call_wsgi(hello.app, path="/pid").text == f"{os.getpid()}\n"


def test_uses_only_the_standard_library(examples_dir: os.PathLike[str]) -> None:
    import ast
    import sys
    from pathlib import Path

    tree = ast.parse(Path(examples_dir, "hello.py").read_text())
    imported = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            imported.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module:
            imported.add(node.module.split(".")[0])
    assert imported <= set(sys.stdlib_module_names) | {"__future__"}
