"""A real Flask app behind a real worker, driven by httpx."""

from __future__ import annotations

import hashlib
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from flask import Flask, Response, jsonify, redirect, request, send_file, session
from live_worker import LiveWorker, Probe, Serve, validated_framework, validated_passthrough


def make_app(static: Path) -> Flask:
    app = Flask("porch_integration")
    app.secret_key = "integration"

    @app.get("/hello/<name>")
    def hello(name: str) -> Any:
        return jsonify(hello=name, args=request.args.to_dict(), host=request.host)

    @app.post("/json")
    def echo_json() -> Any:
        return jsonify(got=request.get_json(), length=request.content_length)

    @app.post("/upload")
    def upload() -> Any:
        f = request.files["file"]
        data = f.read()
        return jsonify(
            name=f.filename,
            size=len(data),
            sha=hashlib.sha256(data).hexdigest(),
            note=request.form["note"],
        )

    @app.get("/stream")
    def stream() -> Response:
        def lines() -> Iterator[str]:
            for i in range(5):
                yield f"line {i}\n"

        return Response(lines(), mimetype="text/plain")

    @app.get("/file")
    def file() -> Response:
        return send_file(static, mimetype="application/octet-stream", conditional=True)

    @app.get("/go")
    def go() -> Any:
        return redirect("/hello/redirected")

    @app.post("/login")
    def login() -> Any:
        session["user"] = request.form["user"]
        return "ok"

    @app.get("/me")
    def me() -> Any:
        return jsonify(user=session.get("user"))

    @app.get("/boom")
    def boom() -> Any:
        raise LookupError("flask view failed")

    return app


@pytest.fixture
def static(tmp_path: Path) -> Path:
    path = tmp_path / "static.bin"
    path.write_bytes(os.urandom(200_000))
    return path


@pytest.fixture
def flask_worker(serve: Serve, static: Path) -> LiveWorker:
    return serve(validated_framework(make_app(static).wsgi_app))


@pytest.fixture
def client(flask_worker: LiveWorker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=flask_worker.url, timeout=5) as c:
        yield c


def test_routes_json_and_redirects(client: httpx.Client) -> None:
    r = client.get("/hello/wörld", params={"a": "1", "b": "x y"})
    assert r.status_code == 200
    assert r.json() == {
        "hello": "wörld",
        "args": {"a": "1", "b": "x y"},
        "host": client.base_url.netloc.decode(),
    }
    r = client.post("/json", json={"k": [1, 2]})
    assert r.json() == {"got": {"k": [1, 2]}, "length": len(r.request.content)}
    r = client.get("/go", follow_redirects=True)
    assert r.json()["hello"] == "redirected"
    assert client.get("/missing").status_code == 404


def test_multipart_upload(client: httpx.Client) -> None:
    data = os.urandom(300_000)
    r = client.post("/upload", files={"file": ("d.bin", data)}, data={"note": "hi"})
    assert r.json() == {
        "name": "d.bin",
        "size": len(data),
        "sha": hashlib.sha256(data).hexdigest(),
        "note": "hi",
    }


def test_streaming_response(client: httpx.Client) -> None:
    with client.stream("GET", "/stream") as r:
        assert r.headers["transfer-encoding"] == "chunked"
        assert "".join(r.iter_text()) == "".join(f"line {i}\n" for i in range(5))


def test_session_cookie_round_trip(client: httpx.Client) -> None:
    assert client.post("/login", data={"user": "ada"}).text == "ok"
    assert client.get("/me").json() == {"user": "ada"}


def test_view_exception_is_flasks_500(client: httpx.Client, flask_worker: LiveWorker) -> None:
    flask_worker.expect_errors = True
    r = client.get("/boom")
    assert r.status_code == 500
    assert client.get("/hello/after").status_code == 200  # the worker serves on
    assert "LookupError: flask view failed" in flask_worker.log()  # Flask logged it


@pytest.mark.usefixtures("sendfile_calls")
def test_send_file_goes_out_with_sendfile(serve: Serve, probe: Probe, static: Path) -> None:
    # Passthrough validation: the result must stay a wsgi.file_wrapper for sendfile.
    worker = serve(validated_passthrough(make_app(static).wsgi_app))
    content = static.read_bytes()
    with httpx.Client(base_url=worker.url, timeout=5) as client:
        r = client.get("/file")
        assert r.content == content
        assert r.headers["content-length"] == str(len(content))
        probe.expect_prefix("sendfile 0 ")  # (reported after the bytes went out)
        etag = r.headers["etag"]
        r = client.get("/file", headers={"If-None-Match": etag})
        assert (r.status_code, r.content) == (304, b"")
        r = client.get("/file", headers={"Range": "bytes=1000-1999"})
        assert r.status_code == 206
        assert r.content == content[1000:2000]
        assert client.get("/hello/still-in-sync").json()["hello"] == "still-in-sync"


def test_concurrent_clients(serve: Serve, static: Path) -> None:
    worker = serve(validated_framework(make_app(static).wsgi_app))
    errors: list[BaseException] = []

    def run(n: int) -> None:
        try:
            with httpx.Client(base_url=worker.url, timeout=5) as client:
                for i in range(5):
                    r = client.post("/json", json={"client": n, "i": i})
                    assert r.json()["got"] == {"client": n, "i": i}
        except BaseException as exc:  # reported below, in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=run, args=(n,)) for n in range(6)]
    started = time.monotonic()
    for t in threads:
        t.start()
    for t in threads:
        t.join(10)
    assert not errors, errors
    assert time.monotonic() - started < 10
