"""Fixtures for the worker socket tests: a real forked worker per test, in each worker mode.

``serve(app, **settings)`` starts a worker (see ``live_worker.py``) with test-sized
timeouts and returns a :class:`LiveWorker`. Every test using it runs in the modes
of the ``mode`` fixture: inline (``threads=1``) and a pool (``threads=4``), on
uvloop and on the stdlib asyncio loop. A test limits the modes with
``@pytest.mark.parametrize("mode", [...], indirect=True)``.

At teardown the worker is killed by PID, and its log must hold no traceback or
warning unless the test said it expects errors (``serve(..., expect_errors=True)``).
"""

from __future__ import annotations

import sys
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_worker import Gate, LiveWorker, Probe, WSGIApp

from porch.config.settings import Config


@dataclass(frozen=True)
class Mode:
    threads: int
    loop: str


MODES = {
    "inline-uvloop": Mode(threads=1, loop="uvloop"),
    "threads-uvloop": Mode(threads=4, loop="uvloop"),
    "inline-asyncio": Mode(threads=1, loop="asyncio"),
    "threads-asyncio": Mode(threads=4, loop="asyncio"),
}

# Short enough that a stuck test fails fast, long enough for a loaded CI machine.
TEST_SETTINGS: dict[str, Any] = {
    "keep_alive": 5.0,
    "header_timeout": 5.0,
    "body_timeout": 5.0,
    "write_timeout": 5.0,
    "graceful_timeout": 5.0,
    "timeout": 10.0,
    "backlog": 64,
}

Serve = Callable[..., LiveWorker]


@pytest.fixture(params=list(MODES))
def mode(request: pytest.FixtureRequest) -> Mode:
    return MODES[request.param]


@pytest.fixture
def probe() -> Iterator[Probe]:
    """A pipe the app writes event lines to from inside the worker."""
    p = Probe()
    yield p
    p.close()


@pytest.fixture
def make_gate() -> Iterator[Callable[[], Gate]]:
    """Gates the test opens to release an app blocked inside the worker (create before serve)."""
    gates: list[Gate] = []

    def make() -> Gate:
        gates.append(Gate())
        return gates[-1]

    yield make
    for gate in gates:
        gate.close()


@pytest.fixture
def serve(mode: Mode, tmp_path: Path, probe: Probe) -> Iterator[Serve]:
    started: list[LiveWorker] = []

    def start(app: WSGIApp, *, expect_errors: bool = False, **settings: Any) -> LiveWorker:
        values = {**TEST_SETTINGS, "threads": mode.threads, **settings}
        directory = tmp_path / f"w{len(started)}"
        directory.mkdir()
        worker = LiveWorker(
            app=app, config=Config(**values), loop=mode.loop, directory=directory, probe=probe
        )
        worker.expect_errors = expect_errors
        started.append(worker)
        return worker.start()

    yield start
    problems = []
    for worker in started:
        worker.kill()
        if not worker.expect_errors and worker.unexpected_log_lines():
            problems.append(worker.log())
    if problems:
        pytest.fail("unexpected errors in the worker log:\n" + "\n---\n".join(problems))
