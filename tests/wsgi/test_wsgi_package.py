"""The wsgi package's public surface and its purity (no I/O-layer imports)."""

from __future__ import annotations

import ast
from pathlib import Path

import porch.wsgi
from porch.wsgi import environ, file_wrapper, input, loader, response

FORBIDDEN = {"asyncio", "socket", "ssl", "threading", "logging", "selectors", "uvloop"}
WSGI_DIR = Path(porch.wsgi.__file__).parent


def imported_roots(path: Path) -> set[str]:
    roots: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            roots.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and not node.level:
            roots.add(node.module.split(".")[0])
    return roots


def test_wsgi_modules_import_no_io_layer() -> None:
    modules = sorted(WSGI_DIR.glob("*.py"))
    assert len(modules) >= 6
    for path in modules:
        assert not imported_roots(path) & FORBIDDEN, path.name


def test_public_names() -> None:
    assert sorted(porch.wsgi.__all__) == sorted(
        [
            "EMPTY_INPUT",
            "BufferedInput",
            "EmptyInput",
            "FileWrapper",
            "StartResponse",
            "base_environ",
            "build_environ",
            "load_app",
            "prepare_import_path",
        ]
    )
    for module in (porch.wsgi, environ, file_wrapper, input, loader, response):
        for name in module.__all__:
            assert hasattr(module, name), f"{module.__name__}.{name}"
