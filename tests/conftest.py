"""Which porch build the suite runs against: the source tree, or a compiled build.

``scripts/test`` runs the suite twice: on ``src/`` (pure Python), then with
``PYTHONPATH`` naming a directory where ``pip`` installed a compiled wheel and
``PORCH_EXPECT_COMPILED=1``, so a build that silently fell back to pure Python
fails instead of passing as if compiled.
"""

from __future__ import annotations

import os

import pytest

import porch
from tests.under_test import PORCH_PATH


def pytest_report_header() -> str:
    build = "compiled" if porch.compiled() else "pure Python"
    return f"porch under test: {PORCH_PATH} ({build})"


def pytest_sessionstart(session: pytest.Session) -> None:
    if os.environ.get("PORCH_EXPECT_COMPILED") == "1" and not porch.compiled():
        raise pytest.UsageError(f"PORCH_EXPECT_COMPILED=1 but {PORCH_PATH} holds pure Python")
