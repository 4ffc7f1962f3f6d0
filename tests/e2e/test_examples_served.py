"""The example Flask and Django apps, served end to end by the real porch command."""

from __future__ import annotations

import hashlib

import httpx
import pytest

from tests.e2e.conftest import ROOT, PorchProcess

pytestmark = pytest.mark.timeout(60)


@pytest.mark.parametrize("threads", ["1", "4"])
def test_flask_app(porch: type[PorchProcess], threads: str) -> None:
    server = porch(["examples/flask_app.py", "-b", "127.0.0.1:0", "--threads", threads])
    with httpx.Client(base_url=server.url, timeout=10) as client:
        assert client.get("/").status_code == 200
        data = client.get("/json").json()
        assert data["server"] == "porch"
        body = bytes(range(256)) * 8000  # ~2 MB: spills to a temp file in the server
        reply = client.post("/upload", content=body).json()
        assert reply == {"size": len(body), "sha256": hashlib.sha256(body).hexdigest()}
        page = client.post("/form", data={"name": "<b>x</b>"})
        assert page.status_code == 200 and "&lt;b&gt;" in page.text
    assert server.stop() == 0


def test_django_project(porch: type[PorchProcess]) -> None:
    server = porch(
        [
            "--chdir",
            str(ROOT / "examples/django_project"),
            "mysite.wsgi:application",
            "-b",
            "127.0.0.1:0",
            "-w",
            "2",
        ]
    )
    with httpx.Client(base_url=server.url, timeout=10) as client:
        hello = client.get("/")
        assert hello.status_code == 200 and hello.text
        assert client.get("/json").headers["content-type"].startswith("application/json")
        form = client.post("/form", data={"colour": "green"})
        assert form.status_code == 200 and "green" in form.text
        assert client.get("/missing").status_code == 404
    assert server.stop() == 0
