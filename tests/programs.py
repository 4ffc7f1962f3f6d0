"""Find a program the tests drive for real, installing its Debian package when missing."""

from __future__ import annotations

import os
import shutil
import signal
import subprocess

import pytest

_SBIN = "/usr/local/sbin:/usr/sbin:/sbin"
_APT_TIMEOUT_SECONDS = 300


def find_program(name: str) -> str | None:
    """``name`` on PATH or in an sbin directory (not on every user's PATH)."""
    return shutil.which(name) or shutil.which(name, path=_SBIN)


def install_package(package: str) -> str:
    """``apt-get install package``; returns "" on success, else why it failed."""
    if not shutil.which("apt-get"):
        return "apt-get is not available"
    if os.geteuid() != 0:
        return "installing needs root"
    env = {**os.environ, "DEBIAN_FRONTEND": "noninteractive"}
    for command in (["apt-get", "update", "-qq"], ["apt-get", "install", "-y", "-qq", package]):
        try:
            done = subprocess.run(
                command, env=env, capture_output=True, text=True, timeout=_APT_TIMEOUT_SECONDS
            )
        except subprocess.TimeoutExpired:
            return f"{' '.join(command)} took longer than {_APT_TIMEOUT_SECONDS}s"
        if done.returncode != 0:
            return f"{' '.join(command)} failed: {done.stderr.strip()[-300:]}"
    return ""


def require_program(name: str, package: str) -> str:
    """The path of ``name``; installs ``package`` if needed, else skips the test saying why."""
    found = find_program(name)
    if found is None:
        why = install_package(package)
        found = find_program(name)
        if found is None:
            why = why or f"{package} installed but no {name} binary was found"
            pytest.skip(
                f"{name} is missing and could not be installed ({why}); scripts/test installs it"
            )
    return found


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a program the test started, by its PID: TERM, then KILL after 5 s."""
    if process.poll() is None:
        os.kill(process.pid, signal.SIGTERM)
        try:
            process.wait(timeout=5)
        except subprocess.TimeoutExpired:
            os.kill(process.pid, signal.SIGKILL)
            process.wait(timeout=5)
