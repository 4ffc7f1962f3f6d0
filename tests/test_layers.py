"""The import contract of docs/architecture.md: each layer imports only layers below it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src" / "porch"

# Lowest first. A module may import porch modules of a lower rank, or its own package.
RANKS = {
    "errors": 0,
    "types": 0,
    "protocol": 1,
    "wsgi": 2,
    "config": 3,
    "log": 4,
    "ipc": 4,
    "static": 5,
    "proxy": 5,
    "edge": 5,
    "access_log": 5,
    "worker": 6,
    "supervisor": 7,
    "cli": 8,
    "__main__": 9,
    "__init__": 0,
}
PURE = {"protocol", "wsgi"}
PURE_FORBIDDEN = {"asyncio", "socket", "ssl", "threading", "logging", "selectors"}


def _layer(module: str) -> str:
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else "__init__"


def _modules() -> list[tuple[str, Path]]:
    out = []
    for path in sorted(SRC.rglob("*.py")):
        rel = path.relative_to(SRC.parent).with_suffix("")
        out.append((".".join(rel.parts), path))
    return out


def _imports(path: Path) -> list[str]:
    names = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.Import):
            names += [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            names.append(node.module)
    return names


MODULES = _modules()


@pytest.mark.parametrize(("module", "path"), MODULES, ids=[m for m, _ in MODULES])
def test_imports_point_down(module: str, path: Path) -> None:
    layer = _layer(module)
    assert layer in RANKS, f"{module}: add its layer to RANKS and docs/architecture.md"
    for name in _imports(path):
        top = name.split(".")[0]
        if layer in PURE:
            assert top not in PURE_FORBIDDEN, f"{module} (pure layer) imports {name}"
        if top == "httptools":
            assert module == "porch.protocol.h1", (
                f"only protocol/h1.py may import httptools, not {module}"
            )
        if top != "porch" or name == "porch":
            continue
        target = _layer(name)
        if target == layer:
            continue
        assert RANKS[target] < RANKS[layer], (
            f"{module} imports {name}: {layer} may not use {target}"
        )
