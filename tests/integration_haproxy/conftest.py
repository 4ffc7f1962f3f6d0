"""The haproxy binary for these tests: found, else installed, else the tests skip saying why."""

from __future__ import annotations

import pytest
from tests.programs import require_program


@pytest.fixture(scope="session")
def haproxy_binary() -> str:
    return require_program("haproxy", "haproxy")
