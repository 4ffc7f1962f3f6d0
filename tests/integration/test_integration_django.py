"""A real Django project behind a real worker, driven by httpx.

Django's settings are process-wide, so they are configured lazily inside the
forked worker (on the first request) and never touch the test process.
"""

from __future__ import annotations

import hashlib
import os
import sys
import threading
import types
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from live_worker import LiveWorker, Probe, Serve, validated_framework, validated_passthrough

URLCONF = "porch_integration_urls"


def build_django(static: Path, upload_dir: Path) -> Any:
    """Configure Django and return its WSGI handler (runs inside the worker)."""
    import django
    from django.conf import settings
    from django.core.handlers.wsgi import WSGIHandler
    from django.http import FileResponse, HttpRequest, JsonResponse, StreamingHttpResponse
    from django.urls import path
    from django.views.decorators.csrf import csrf_exempt

    def hello(request: HttpRequest) -> JsonResponse:
        return JsonResponse(
            {"path": request.path, "q": request.GET.get("q"), "host": request.get_host()}
        )

    @csrf_exempt
    def upload(request: HttpRequest) -> JsonResponse:
        f = request.FILES["file"]
        data = f.read()
        return JsonResponse(
            {
                "size": len(data),
                "sha": hashlib.sha256(data).hexdigest(),
                "on_disk": hasattr(f, "temporary_file_path"),  # past the memory limit
                "note": request.POST["note"],
            }
        )

    def stream(request: HttpRequest) -> StreamingHttpResponse:
        return StreamingHttpResponse(f"part {i}\n".encode() for i in range(4))

    def file(request: HttpRequest) -> FileResponse:
        return FileResponse(open(static, "rb"))

    def boom(request: HttpRequest) -> JsonResponse:
        raise ArithmeticError("django view failed")

    urls = types.ModuleType(URLCONF)
    urls.urlpatterns = [  # type: ignore[attr-defined]
        path("hello/", hello),
        path("upload/", upload),
        path("stream/", stream),
        path("file/", file),
        path("boom/", boom),
    ]
    sys.modules[URLCONF] = urls
    settings.configure(
        DEBUG=False,
        SECRET_KEY="integration",
        ROOT_URLCONF=URLCONF,
        ALLOWED_HOSTS=["*"],
        INSTALLED_APPS=[],
        MIDDLEWARE=["django.middleware.common.CommonMiddleware"],
        FILE_UPLOAD_MAX_MEMORY_SIZE=50_000,
        FILE_UPLOAD_TEMP_DIR=str(upload_dir),
        USE_TZ=True,
    )
    django.setup()
    return WSGIHandler()


class LazyDjango:
    """A WSGI app that builds the Django handler on its first call, in the worker."""

    def __init__(self, static: Path, upload_dir: Path) -> None:
        self.static, self.upload_dir = static, upload_dir
        self.handler: Any = None
        self.lock = threading.Lock()

    def __call__(self, environ: dict[str, Any], start_response: Any) -> Iterable[bytes]:
        with self.lock:
            if self.handler is None:
                self.handler = build_django(self.static, self.upload_dir)
        result: Iterable[bytes] = self.handler(environ, start_response)
        return result


@pytest.fixture
def static(tmp_path: Path) -> Path:
    path = tmp_path / "static.bin"
    path.write_bytes(os.urandom(150_000))
    return path


@pytest.fixture
def lazy_django(static: Path, tmp_path: Path) -> LazyDjango:
    upload_dir = tmp_path / "uploads"
    upload_dir.mkdir()
    return LazyDjango(static, upload_dir)


@pytest.fixture
def django_worker(serve: Serve, lazy_django: LazyDjango) -> LiveWorker:
    return serve(validated_framework(lazy_django))


@pytest.fixture
def client(django_worker: LiveWorker) -> Iterator[httpx.Client]:
    with httpx.Client(base_url=django_worker.url, timeout=10) as c:
        yield c


def test_views_and_common_middleware(client: httpx.Client) -> None:
    r = client.get("/hello/", params={"q": "ä b"})
    assert r.json() == {"path": "/hello/", "q": "ä b", "host": client.base_url.netloc.decode()}
    r = client.get("/hello")  # APPEND_SLASH redirect
    assert r.status_code == 301
    assert r.headers["location"] == "/hello/"
    assert client.get("/nowhere/").status_code == 404


def test_upload_spills_to_a_temp_file(client: httpx.Client) -> None:
    data = os.urandom(200_000)
    r = client.post("/upload/", files={"file": ("x.bin", data)}, data={"note": "n"})
    assert r.json() == {
        "size": len(data),
        "sha": hashlib.sha256(data).hexdigest(),
        "on_disk": True,
        "note": "n",
    }


def test_streaming_response(client: httpx.Client) -> None:
    with client.stream("GET", "/stream/") as r:
        assert r.headers["transfer-encoding"] == "chunked"
        assert b"".join(r.iter_bytes()) == b"".join(f"part {i}\n".encode() for i in range(4))


def test_view_exception_is_djangos_500(client: httpx.Client, django_worker: LiveWorker) -> None:
    django_worker.expect_errors = True
    r = client.get("/boom/")
    assert r.status_code == 500
    assert client.get("/hello/").status_code == 200


@pytest.mark.usefixtures("sendfile_calls")
def test_file_response_goes_out_with_sendfile(
    serve: Serve, probe: Probe, lazy_django: LazyDjango, static: Path
) -> None:
    worker = serve(validated_passthrough(lazy_django))
    with httpx.Client(base_url=worker.url, timeout=10) as client:
        r = client.get("/file/")
        assert r.content == static.read_bytes()
        probe.expect_prefix("sendfile 0 ")  # (reported after the bytes went out)
        assert client.get("/hello/").status_code == 200  # still in sync
