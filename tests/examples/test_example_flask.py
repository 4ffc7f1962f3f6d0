"""examples/flask_app.py under the PEP 3333 validator, no server."""

from __future__ import annotations

import hashlib
import json
import os
from collections.abc import Callable
from types import ModuleType
from urllib.parse import urlencode

import pytest
from wsgi_call import call_wsgi

FORM = "application/x-www-form-urlencoded"


@pytest.fixture(scope="module")
def flask_app(example_loader: Callable[[str], ModuleType]) -> ModuleType:
    return example_loader("flask_app.py")


def test_is_a_flask_app(flask_app: ModuleType) -> None:
    from flask import Flask

    assert isinstance(flask_app.app, Flask)
    assert flask_app.application is flask_app.app


def test_hello(flask_app: ModuleType) -> None:
    result = call_wsgi(flask_app.app)
    assert result.status == "200 OK"
    assert result.body == b"Hello from Flask!"
    assert (
        result.header(
            "Content-Type",
        )
        == "text/plain; charset=utf-8"
    )


def test_json(flask_app: ModuleType) -> None:
    result = call_wsgi(flask_app.app, path="/json")
    assert result.header("Content-Type") == "application/json"
    assert json.loads(result.body) == {
        "message": "Hello, JSON!",
        "server": "porch",
        "numbers": [1, 2, 3],
    }


@pytest.mark.parametrize("size", [0, 10, 2_000_000])
def test_upload_reports_size_and_sha256(flask_app: ModuleType, size: int) -> None:
    body = os.urandom(size)
    result = call_wsgi(
        flask_app.app,
        "POST",
        "/upload",
        body=body,
        headers={"Content-Type": "application/octet-stream"},
    )
    assert result.status_code == 200
    assert json.loads(result.body) == {"size": size, "sha256": hashlib.sha256(body).hexdigest()}


def test_upload_with_porch_style_terminated_input(flask_app: ModuleType) -> None:
    # porch sets wsgi.input_terminated, so Werkzeug reads wsgi.input to EOF with
    # read() (no size), which the validator forbids: call the app bare.
    body = os.urandom(100_000)
    result = call_wsgi(
        flask_app.app, "POST", "/upload", body=body, input_terminated=True, validate=False
    )
    assert json.loads(result.body)["sha256"] == hashlib.sha256(body).hexdigest()


def test_upload_is_post_only(flask_app: ModuleType) -> None:
    assert call_wsgi(flask_app.app, path="/upload").status_code == 405


def test_form_page(flask_app: ModuleType) -> None:
    result = call_wsgi(flask_app.app, path="/form")
    assert result.status_code == 200
    assert result.header("Content-Type") == "text/html; charset=utf-8"
    assert '<form method="post" action="/form">' in result.text
    assert "You sent" not in result.text


def test_form_post_shows_escaped_fields(flask_app: ModuleType) -> None:
    body = urlencode({"name": "Ada", "message": "<script>alert(1)</script>"}).encode()
    result = call_wsgi(flask_app.app, "POST", "/form", body=body, headers={"Content-Type": FORM})
    assert result.status_code == 200
    assert "<dt>name</dt><dd>Ada</dd>" in result.text
    assert "&lt;script&gt;alert(1)&lt;/script&gt;" in result.text
    assert "<script>" not in result.text


def test_unknown_route_is_404(flask_app: ModuleType) -> None:
    assert call_wsgi(flask_app.app, path="/missing").status_code == 404
