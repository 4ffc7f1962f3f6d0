"""The haproxy binary for these tests: found, else installed, else the tests skip saying why."""

from __future__ import annotations

import pytest
from haproxy_process import find_haproxy, install_haproxy


@pytest.fixture(scope="session")
def haproxy_binary() -> str:
    binary = find_haproxy()
    if binary is None:
        why = install_haproxy()
        binary = find_haproxy()
        if binary is None:
            why = why or "the package installed but no haproxy binary was found"
            pytest.skip(
                f"haproxy is not installed and could not be installed ({why}); "
                "scripts/test installs it with apt-get"
            )
    return binary
