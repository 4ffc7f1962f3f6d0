"""Run the real ``porch`` command and wait for its ready line (no sleep-and-poll)."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.under_test import PORCH_PATH

ROOT = Path(__file__).resolve().parents[2]
READY = re.compile(r"porch ready: \d+ workers? serving (\S+)")


class PorchProcess:
    """A running ``python -m porch`` whose stderr is collected line by line."""

    def __init__(self, args: list[str], *, cwd: Path = ROOT, ready_timeout: float = 20.0) -> None:
        env = dict(os.environ)
        env["PYTHONPATH"] = os.pathsep.join([PORCH_PATH, env.get("PYTHONPATH", "")])
        self.proc = subprocess.Popen(
            [sys.executable, "-m", "porch", *args],
            cwd=cwd,
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            text=True,
        )
        self.lines: list[str] = []
        self._ready = threading.Event()
        self.url = ""
        threading.Thread(target=self._read, daemon=True).start()
        if not self._ready.wait(ready_timeout):
            self.stop()
            raise AssertionError("porch did not become ready:\n" + "".join(self.lines))

    def _read(self) -> None:
        assert self.proc.stdout is not None
        for line in self.proc.stdout:
            self.lines.append(line)
            match = READY.search(line)
            if match and not self._ready.is_set():
                self.url = match.group(1)
                self._ready.set()
        self._ready.set()

    def logged(self, text: str, timeout: float = 5.0) -> bool:
        """Whether a line containing ``text`` appears in the output within ``timeout``.

        The output is read by a thread: a line the server wrote just before
        answering may not be in ``lines`` yet when the answer arrives.
        """
        deadline = time.monotonic() + timeout
        while not any(text in line for line in self.lines):
            if time.monotonic() > deadline:
                return False
            time.sleep(0.02)
        return True

    def stop(self) -> int:
        if self.proc.poll() is None:
            self.proc.terminate()
        try:
            return self.proc.wait(15)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait(5)


@pytest.fixture
def porch() -> Iterator[type[PorchProcess]]:
    started: list[PorchProcess] = []

    class Tracked(PorchProcess):
        def __init__(self, args: list[str], **kw: object) -> None:
            started.append(self)
            super().__init__(args, **kw)  # type: ignore[arg-type]

    yield Tracked
    for p in started:
        p.stop()
