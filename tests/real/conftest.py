"""Fixtures for tests that drive real programs (nginx, Chromium, hundreds of raw sockets)
against the real ``porch`` command, started through tests/e2e's PorchProcess."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest

from tests.e2e.conftest import PorchProcess

StartPorch = Callable[..., PorchProcess]


@pytest.fixture
def start_porch() -> Iterator[StartPorch]:
    """Start ``porch ARGS`` and wait for its ready line; every one started is stopped after."""
    started: list[PorchProcess] = []

    def start(*args: str) -> PorchProcess:
        server = PorchProcess(list(args))
        started.append(server)
        return server

    yield start
    for server in started:
        server.stop()
