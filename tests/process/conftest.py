"""Run the real ``porch`` command and follow its error log (stderr) line by line.

Tests wait on log lines (``porch ready: ...``, ``reload complete``...) with a bounded
wait on a condition variable fed by a reader thread: never sleep-and-poll.
"""

from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from tests.under_test import PORCH_PATH

ROOT = Path(__file__).resolve().parents[2]
SRC = PORCH_PATH
APPS = Path(__file__).resolve().parent / "apps"
READY = re.compile(r"porch ready: (\d+) workers? serving (\S+)")
WAIT_SECONDS = 20.0


class Porch:
    """One ``python -m porch`` subprocess and the lines of its error log."""

    def __init__(
        self,
        args: list[str],
        *,
        cwd: Path,
        env: dict[str, str] | None = None,
        command: list[str] | None = None,
        pass_fds: tuple[int, ...] = (),
    ) -> None:
        pythonpath = os.pathsep.join([str(SRC), str(APPS), os.environ.get("PYTHONPATH", "")])
        full_env = {**os.environ, "PYTHONPATH": pythonpath, **(env or {})}
        full_env.pop("WEB_CONCURRENCY", None)
        self.args = args
        self.proc = subprocess.Popen(
            [*(command or [sys.executable, "-m", "porch"]), *args], cwd=cwd, env=full_env,
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE,
            text=True, errors="replace", pass_fds=pass_fds,
        )  # fmt: skip
        self.pid = self.proc.pid
        self.lines: list[str] = []
        self.eof = False
        self.url = ""
        self._cond = threading.Condition()
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()

    def _read(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            with self._cond:
                self.lines.append(line.rstrip("\n"))
                self._cond.notify_all()
        with self._cond:
            self.eof = True
            self._cond.notify_all()

    def log(self) -> str:
        with self._cond:
            return "\n".join(self.lines)

    def mark(self) -> int:
        """Position in the log; pass it as ``after`` to wait only for later lines."""
        with self._cond:
            return len(self.lines)

    def wait_for(
        self, pattern: str, *, after: int = 0, timeout: float = WAIT_SECONDS
    ) -> re.Match[str]:
        """The first log line at or after ``after`` matching ``pattern``; fail after ``timeout``."""
        regex = re.compile(pattern)
        deadline = time.monotonic() + timeout
        start = after
        with self._cond:
            while True:
                for line in self.lines[start:]:
                    match = regex.search(line)
                    if match:
                        return match
                start = len(self.lines)
                remaining = deadline - time.monotonic()
                if self.eof or remaining <= 0:
                    why = "porch exited" if self.eof else f"{timeout}s passed"
                    pytest.fail(f"no log line matching {pattern!r} ({why}); log:\n{self.log()}")
                self._cond.wait(remaining)

    def count(self, pattern: str) -> int:
        regex = re.compile(pattern)
        with self._cond:
            return sum(1 for line in self.lines if regex.search(line))

    def wait_ready(self) -> str:
        """Wait for the ready line; return (and remember) the first listener's URL."""
        match = self.wait_for(READY.pattern)
        self.url = match.group(2).split(",")[0]
        return self.url

    def worker_pids(self, *, after: int = 0) -> list[int]:
        """Pids of the workers booted (logged) at or after the log position ``after``."""
        with self._cond:
            text = "\n".join(self.lines[after:])
        return [int(m) for m in re.findall(r"Booting worker with pid: (\d+)", text)]

    def signal(self, signum: int) -> None:
        self.proc.send_signal(signum)

    def wait_exit(self, timeout: float = WAIT_SECONDS) -> int:
        try:
            code = self.proc.wait(timeout)
        except subprocess.TimeoutExpired:
            pytest.fail(f"porch did not exit within {timeout}s; log:\n{self.log()}")
        self._reader.join(5)
        return code

    def client(self, **kwargs: object) -> httpx.Client:
        return httpx.Client(base_url=self.url, timeout=WAIT_SECONDS, **kwargs)  # type: ignore[arg-type]

    def _children(self) -> list[int]:
        try:
            text = Path(f"/proc/{self.pid}/task/{self.pid}/children").read_text()
        except OSError:
            return []
        return [int(pid) for pid in text.split()]

    def stop(self) -> None:
        """Teardown: make sure the master and the workers it forked are gone."""
        if self.proc.poll() is None:
            children = self._children()
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(5)
                for pid in children:  # e.g. a SIGSTOPped worker left by a failed test
                    try:
                        os.kill(pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
        if self.proc.stderr is not None:
            self._reader.join(5)
            self.proc.stderr.close()


@pytest.fixture
def start_porch(tmp_path: Path) -> Iterator[object]:
    """``start_porch(*args, cwd=None, env=None, ...) -> Porch``; every process is stopped after."""
    started: list[Porch] = []

    def start(*args: str, cwd: Path | None = None, **kwargs: Any) -> Porch:
        porch = Porch(list(args), cwd=cwd or tmp_path, **kwargs)
        started.append(porch)
        return porch

    yield start
    for porch in started:
        porch.stop()
