"""The worker's glibc malloc settings: applied on glibc, the operator's environment wins."""

from __future__ import annotations

import os
import platform
import subprocess
import sys

import pytest
from tests.under_test import PORCH_PATH

SRC = PORCH_PATH
CALL = "from porch.worker.malloc import tune_malloc; print(tune_malloc())"


def run_tune(extra_env: dict[str, str]) -> str:
    env = {**os.environ, "PYTHONPATH": SRC, **extra_env}
    for name in ("MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"):
        if name not in extra_env:
            env.pop(name, None)
    done = subprocess.run(
        [sys.executable, "-c", CALL], env=env, capture_output=True, text=True, check=True
    )
    return done.stdout.strip()


@pytest.mark.skipif(platform.libc_ver()[0] != "glibc", reason="mallopt is glibc's")
def test_applied_on_glibc() -> None:
    assert run_tune({}) == "True"


@pytest.mark.parametrize("name", ["MALLOC_TRIM_THRESHOLD_", "MALLOC_MMAP_THRESHOLD_"])
def test_the_operators_malloc_environment_wins(name: str) -> None:
    assert run_tune({name: "1048576"}) == "False"
