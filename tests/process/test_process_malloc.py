"""The worker's glibc malloc settings: applied on glibc, the operator's environment wins; an
idle worker hands back what a burst freed."""

from __future__ import annotations

import os
import platform
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import pytest
from tests.under_test import PORCH_PATH

from conftest import Porch

StartPorch = Callable[..., Porch]
MALLOC_NAMES = ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_")

SRC = PORCH_PATH
CALL = "from porch.worker.malloc import tune_malloc; print(tune_malloc())"


def run_tune(extra_env: dict[str, str]) -> str:
    env = {**os.environ, "PYTHONPATH": SRC, **extra_env}
    for name in MALLOC_NAMES:
        if name not in extra_env:
            env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", CALL], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_applied_on_glibc() -> None:
    assert run_tune({}) == "True"


@pytest.mark.parametrize("name", MALLOC_NAMES)
def test_the_operators_malloc_environment_wins(name: str) -> None:
    assert run_tune({name: "1048576"}) == "False"


def _rss_mib(pid: int) -> float:
    return (
        int(Path(f"/proc/{pid}/statm").read_text().split()[1]) * os.sysconf("SC_PAGE_SIZE") / 2**20
    )


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="malloc_trim is glibc's")
@pytest.mark.skipif(
    any(name in os.environ for name in MALLOC_NAMES), reason="the operator's malloc settings"
)
def test_an_idle_worker_gives_back_what_a_burst_freed(start_porch: StartPorch) -> None:
    # The raised trim threshold keeps a burst's freed memory (64 MiB at most) for
    # the next burst; once the worker has been idle for a tick, it goes back.
    porch = start_porch("procapp:app", "-b", "127.0.0.1:0", "-w", "1")
    porch.wait_ready()
    (worker,) = porch.worker_pids()
    with porch.client() as client:
        before = _rss_mib(worker)
        assert client.get("/churn", params={"mib": "48"}).text == "churned 48 MiB"
        kept = _rss_mib(worker)
        # Kept by glibc: freed, not returned (the worker's next tick is >= 0.25 s away).
        assert kept > before + 40, (before, kept)
        deadline = time.monotonic() + 5
        while _rss_mib(worker) > before + 8 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert _rss_mib(worker) <= before + 8, (before, kept, _rss_mib(worker))
        assert client.get("/").text == "ok"  # and it serves on
