"""Fixtures for the pure tests of the PEP 3333 layer."""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from porch.protocol.events import RequestHead

HeadFactory = Callable[..., RequestHead]


@pytest.fixture
def make_head() -> HeadFactory:
    """Build a ``RequestHead`` with sensible defaults; keyword arguments override them."""

    def build(**overrides: Any) -> RequestHead:
        fields: dict[str, Any] = {
            "method": "GET",
            "path": b"/",
            "query": b"",
            "http_version": "1.1",
            "headers": ((b"Host", b"example.com"),),
            "host": b"example.com",
            "keep_alive": True,
            "expect_continue": False,
            "content_length": None,
            "chunked": False,
        }
        fields.update(overrides)
        return RequestHead(**fields)

    return build


@pytest.fixture
def app_dir(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A temporary cwd for app modules; sys.path, sys.modules and cwd are restored after."""
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr(sys, "path", list(sys.path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]
