"""The StaticResponse contract with the worker: full 200, HEAD, error pages, open files."""

from __future__ import annotations

import errno
import os
from pathlib import Path
from typing import Any
from wsgiref.util import setup_testing_defaults
from wsgiref.validate import validator

import pytest
from static_client import BIG, TEXT, Client, make_static

from porch.config import load_config
from porch.static import StaticFiles, StaticResponse
from porch.static import files as static_files
from porch.wsgi.file_wrapper import FileWrapper
from porch.wsgi.response import StartResponse


def test_full_200(client: Client) -> None:
    answer = client.get("/static/hello.txt")
    assert answer.status == 200
    assert answer.body == TEXT
    assert answer.sent_by_sendfile
    assert answer["Content-Length"] == str(len(TEXT))
    assert answer["Content-Type"] == "text/plain; charset=utf-8"
    assert answer.get("Content-Encoding") is None


def test_small_files_are_read_into_the_response(site: Path) -> None:
    # Up to inline_max_bytes the body is bytes (one write with the head), not a file.
    client = Client(make_static(site, inline_max_bytes=len(TEXT)))
    response = client.raw("/static/hello.txt")
    assert response is not None and response.file is None
    assert response.body == TEXT and response.content_length == len(TEXT)
    answer = client.get("/static/hello.txt")
    assert answer.body == TEXT and not answer.sent_by_sendfile
    larger = client.raw("/static/big.bin")  # past the bound: sendfile as before
    assert larger is not None and larger.file is not None
    larger.close()
    head = client.head("/static/hello.txt")
    assert head.body == b"" and head["Content-Length"] == str(len(TEXT))


def test_file_body_is_the_whole_file_from_offset_zero(client: Client) -> None:
    response = client.raw("/static/hello.txt")
    assert response is not None
    try:
        assert response.file is not None
        assert (response.file.offset, response.file.count) == (0, len(TEXT))
        assert os.fstat(response.file.fd).st_size == len(TEXT)
        assert response.status_line == "200 OK"
        assert response.content_length == len(TEXT)
    finally:
        response.close()
    with pytest.raises(ValueError):
        response.file.fd  # noqa: B018  (closed: the descriptor is gone)
    response.close()  # a second close is harmless


def test_head_has_the_get_headers_and_no_body(client: Client) -> None:
    get = client.get("/static/hello.txt")
    head = client.head("/static/hello.txt")
    assert head.status == 200
    assert head.header_list == get.header_list
    assert head.body == b""
    assert head.head_only and not head.sent_by_sendfile


def test_head_of_errors(client: Client) -> None:
    answer = client.head("/static/missing.txt")
    assert answer.status == 404
    assert answer["Content-Length"] == str(len(b"404 Not Found\n"))
    assert answer.body == b""


def test_empty_file(client: Client) -> None:
    answer = client.get("/static/zero.txt")
    assert (answer.status, answer.body, answer["Content-Length"]) == (200, b"", "0")


def test_error_pages_look_like_porchs(client: Client) -> None:
    response = client.raw("/static/missing")
    assert response == StaticResponse(
        status=404,
        headers=[("Content-Type", "text/plain; charset=utf-8"), ("Content-Length", "14")],
        body=b"404 Not Found\n",
    )
    assert response.status_line == "404 Not Found"


def test_no_file_descriptor_is_left_open(client: Client, site: Path, open_fds: None) -> None:
    (site / "hello.txt.gz").write_bytes(b"gz")
    etag = client.get("/static/hello.txt")["ETag"]
    requests = [
        ("GET", "/static/hello.txt", ()),
        ("HEAD", "/static/hello.txt", ()),
        ("GET", "/static/hello.txt", (("If-None-Match", etag),)),
        ("GET", "/static/hello.txt", (("If-Match", '"x"'),)),
        ("GET", "/static/hello.txt", (("Range", "bytes=999-"),)),
        ("GET", "/static/big.bin", (("Range", "bytes=0-9,5000-5009"),)),
        ("GET", "/static/hello.txt", (("Accept-Encoding", "gzip"),)),
        ("GET", "/static/missing", ()),
        ("POST", "/static/hello.txt", ()),
    ]
    for method, path, headers in requests * 3:
        response = client.raw(path, *headers, method=method)
        assert response is not None
        response.close()


def test_responses_without_a_file_hold_no_descriptor(client: Client, open_fds: None) -> None:
    # Nothing to close: HEAD, 304, 412, 416 and multipart bodies are complete values.
    etag = client.get("/static/hello.txt")["ETag"]
    for headers, method in [
        ((), "HEAD"),
        ((("If-None-Match", etag),), "GET"),
        ((("If-Match", '"x"'),), "GET"),
        ((("Range", "bytes=999-"),), "GET"),
        ((("Range", "bytes=0-9,5000-5009"),), "GET"),
    ]:
        path = "/static/big.bin" if "5000" in str(headers) else "/static/hello.txt"
        response = client.raw(path, *headers, method=method)
        assert response is not None and response.file is None


def test_permission_denied_is_403(
    client: Client, monkeypatch: pytest.MonkeyPatch, open_fds: None
) -> None:
    def refuse(path: str, flags: int, *args: object) -> int:
        raise PermissionError(errno.EACCES, "Permission denied", path)

    monkeypatch.setattr(static_files.os, "open", refuse)
    answer = client.get("/static/hello.txt")
    assert (answer.status, answer.body) == (403, b"403 Forbidden\n")


def test_unexpected_os_errors_are_raised(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    def exhausted(path: str, flags: int, *args: object) -> int:
        raise OSError(errno.EMFILE, "Too many open files")

    monkeypatch.setattr(static_files.os, "open", exhausted)
    with pytest.raises(OSError) as info:
        client.raw("/static/hello.txt")
    assert info.value.errno == errno.EMFILE


def test_file_replaced_between_check_and_open_is_not_served(
    client: Client, site: Path, monkeypatch: pytest.MonkeyPatch, open_fds: None
) -> None:
    real_open = os.open

    def swap_then_open(path: str, flags: int, *args: int) -> int:
        os.replace(site / "css" / "site.css", path)  # a new inode under the same name
        return real_open(path, flags, *args)

    monkeypatch.setattr(static_files.os, "open", swap_then_open)
    assert client.get("/static/hello.txt").status == 404


def test_opened_with_nofollow_and_nonblock(client: Client, monkeypatch: pytest.MonkeyPatch) -> None:
    seen: list[int] = []
    real_open = os.open

    def spy(path: str, flags: int, *args: int) -> int:
        seen.append(flags)
        return real_open(path, flags, *args)

    monkeypatch.setattr(static_files.os, "open", spy)
    client.get("/static/hello.txt")
    assert seen and all(flags & os.O_NOFOLLOW and flags & os.O_NONBLOCK for flags in seen)


# --- built from the configuration -------------------------------------------------------------


def test_from_config_without_static_is_none() -> None:
    assert StaticFiles.from_config(load_config(["app:app"], {}).config) is None


def test_from_config(site: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    argv = [
        *("--static", "/assets/=public", "--static", "/docs=public/docs"),
        *("--static-cache-control", "no-cache", "--static-index", "index.html"),
        "app:app",
    ]
    static = StaticFiles.from_config(load_config(argv, {}).config)
    assert static is not None
    client = Client(static)
    monkeypatch.chdir("/")  # directories were made absolute when the config was loaded
    answer = client.get("/assets/hello.txt")
    assert (answer.status, answer.body, answer["Cache-Control"]) == (200, TEXT, "no-cache")
    assert client.get("/docs/").body == b"<h1>docs</h1>\n"
    assert client.raw("/app") is None
    assert not static.follow_symlinks


def test_from_config_follow_symlinks(site: Path) -> None:
    (site / "out").symlink_to(site.parent / "secret.txt")
    argv = ["--static", f"/s={site}", "--static-follow-symlinks", "app:app"]
    static = StaticFiles.from_config(load_config(argv, {}).config)
    assert static is not None
    assert Client(static).get("/s/out").body == b"TOP SECRET\n"
    assert Client(make_static(site, prefix="/s")).get("/s/out").status == 404


# --- as a WSGI app, for the worker's ordinary exchange -------------------------------------------


def run_app(response: StaticResponse) -> tuple[StartResponse, object]:
    """Call the adapter the way the worker does, with porch's own start_response checks."""
    start = StartResponse(lambda data: None)
    result = response.as_wsgi_app()({"REQUEST_METHOD": "GET"}, start)
    return start, result


def test_wsgi_app_of_a_file_is_a_file_wrapper_for_sendfile(client: Client) -> None:
    response = client.raw("/static/big.bin", ("Range", "bytes=100-199"))
    assert response is not None and response.file is not None
    start, result = run_app(response)
    assert (start.status, start.content_length) == ("206 Partial Content", 100)
    assert type(result) is FileWrapper
    fd, offset, count = result.sendfile_source()  # type: ignore[misc]
    assert (fd, offset) == (response.file.fd, 100)
    assert count >= 100  # the worker caps it at Content-Length
    assert b"".join(result) == BIG[100:200]  # the fallback stops at the span's end
    result.close()
    with pytest.raises(ValueError):
        response.file.fd  # noqa: B018  (closing the result closed the file)


def test_wsgi_app_of_a_full_file(client: Client) -> None:
    response = client.raw("/static/hello.txt")
    assert response is not None
    start, result = run_app(response)
    assert start.status == "200 OK"
    assert start.content_length == len(TEXT)
    assert type(result) is FileWrapper
    assert result.sendfile_source()[1:] == (0, len(TEXT))  # type: ignore[index]
    assert b"".join(result) == TEXT
    result.close()


@pytest.mark.parametrize(
    ("path", "headers", "method", "status", "body"),
    [
        ("/static/missing", (), "GET", "404 Not Found", b"404 Not Found\n"),
        ("/static/hello.txt", (), "HEAD", "200 OK", b""),
        ("/static/hello.txt", (("If-None-Match", "*"),), "GET", "304 Not Modified", b""),
        ("/static/hello.txt", (), "DELETE", "405 Method Not Allowed", b"405 Method Not Allowed\n"),
    ],
)
def test_wsgi_app_of_bodies_in_memory(
    client: Client,
    path: str,
    headers: tuple[tuple[str, str], ...],
    method: str,
    status: str,
    body: bytes,
    open_fds: None,
) -> None:
    response = client.raw(path, *headers, method=method)
    assert response is not None
    start, result = run_app(response)
    assert start.status == status
    assert result == [body]


def test_wsgi_app_passes_the_wsgiref_validator(client: Client) -> None:
    statuses: list[str] = []

    def start_response(status: str, headers: list[tuple[str, str]], exc_info: Any = None) -> Any:
        statuses.append(status)
        return lambda data: None

    for headers in ((), (("Range", "bytes=0-4"),), (("Range", "bytes=0-9,5000-5009"),)):
        path = "/static/big.bin" if "5000" in str(headers) else "/static/hello.txt"
        response = client.raw(path, *headers)
        assert response is not None
        environ: dict[str, Any] = {"QUERY_STRING": ""}
        setup_testing_defaults(environ)
        result = validator(response.as_wsgi_app())(environ, start_response)
        try:
            body = b"".join(result)
        finally:
            result.close()  # type: ignore[attr-defined]
        assert statuses[-1] == response.status_line
        assert len(body) == response.content_length
    assert [status[:3] for status in statuses] == ["200", "206", "206"]
