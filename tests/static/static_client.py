"""Helpers for the static tests: a client calling StaticFiles.match() directly, and a site."""

from __future__ import annotations

import os
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from porch.static import StaticFiles, StaticResponse
from porch.static.urls import Mount

TEXT = b"hello, static world\n"
BIG = bytes(range(256)) * 40  # 10240 bytes, every offset identifiable


@dataclass
class Answer:
    """A StaticResponse with its body read out (and its file closed)."""

    status: int
    headers: dict[str, str]
    header_list: list[tuple[str, str]]
    body: bytes
    sent_by_sendfile: bool
    head_only: bool

    def __getitem__(self, name: str) -> str:
        return self.headers[name.lower()]

    def get(self, name: str) -> str | None:
        return self.headers.get(name.lower())


def read_out(response: StaticResponse) -> Answer:
    """What the worker would send: the head's fields and the body bytes."""
    try:
        if response.file is not None:
            assert response.body == b""
            assert not response.head_only
            body = os.pread(response.file.fd, response.file.count, response.file.offset)
            assert len(body) == response.file.count
        else:
            body = response.body
        assert response.body_bytes == len(body)
    finally:
        response.close()
    names = [name.lower() for name, _ in response.headers]
    assert len(names) == len(set(names)), f"a header is repeated: {response.headers}"
    return Answer(
        status=response.status,
        headers={name.lower(): value for name, value in response.headers},
        header_list=list(response.headers),
        body=body,
        sent_by_sendfile=response.file is not None,
        head_only=response.head_only,
    )


class Client:
    """Requests against one StaticFiles; every answer is checked for self-consistency."""

    def __init__(self, static: StaticFiles) -> None:
        self.static = static

    def raw(
        self, path: bytes | str, *headers: tuple[str, str], method: str = "GET"
    ) -> StaticResponse | None:
        target = path.encode("latin-1") if isinstance(path, str) else path
        raw_path, _, query = target.partition(b"?")
        fields = [(name.encode(), value.encode("latin-1")) for name, value in headers]
        return self.static.match(method, raw_path, fields, query)

    def request(self, path: bytes | str, *headers: tuple[str, str], method: str = "GET") -> Answer:
        response = self.raw(path, *headers, method=method)
        assert response is not None, f"{path!r} was passed to the app"
        answer = read_out(response)
        length = answer.get("Content-Length")
        if answer.status == 304:
            assert length is None and answer.body == b""
        elif method == "HEAD":
            assert answer.body == b"" and answer.head_only
        else:
            assert length is not None and int(length) == len(answer.body)
        return answer

    def get(self, path: bytes | str, *headers: tuple[str, str]) -> Answer:
        return self.request(path, *headers)

    def head(self, path: bytes | str, *headers: tuple[str, str]) -> Answer:
        return self.request(path, *headers, method="HEAD")


@pytest.fixture
def site(tmp_path: Path) -> Path:
    """tmp_path/public is served at /static; tmp_path itself holds secrets outside it."""
    root = tmp_path / "public"
    (root / "css").mkdir(parents=True)
    (root / "docs").mkdir()
    (root / "docs" / "index.html").write_bytes(b"<h1>docs</h1>\n")
    (root / "empty").mkdir()
    (root / "hello.txt").write_bytes(TEXT)
    (root / "big.bin").write_bytes(BIG)
    (root / "css" / "site.css").write_bytes(b"body { color: red }\n")
    (root / "zero.txt").write_bytes(b"")
    (tmp_path / "secret.txt").write_bytes(b"TOP SECRET\n")
    (tmp_path / "outside").mkdir()
    (tmp_path / "outside" / "passwd").write_bytes(b"root:x:0:0\n")
    return root


def make_static(root: Path, prefix: str = "/static", **options: object) -> StaticFiles:
    """The static layer over ``root``; small files go out with sendfile too, unless
    ``inline_max_bytes`` says otherwise (the tests of the file contract need it)."""
    mount = Mount.parse(f"{prefix}={root}")
    options.setdefault("inline_max_bytes", 0)
    return StaticFiles(mounts=[mount], **options)  # type: ignore[arg-type]


@pytest.fixture
def client(site: Path) -> Client:
    return Client(make_static(site, cache_control="public, max-age=3600"))


@pytest.fixture
def open_fds() -> Iterator[None]:
    """Fail the test when it leaves file descriptors open."""
    before = set(os.listdir("/proc/self/fd"))
    yield
    after = set(os.listdir("/proc/self/fd"))
    assert after <= before, f"file descriptors leaked: {sorted(after - before)}"
