"""Run haproxy in the foreground on inherited listening sockets (tests/programs.py finds it)."""

from __future__ import annotations

import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.programs import stop_process


def listening_socket(host: str) -> socket.socket | None:
    """A socket listening on an ephemeral port of ``host``; None if that address is unusable."""
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    try:
        sock = socket.socket(family, socket.SOCK_STREAM)
    except OSError:
        return None
    try:
        sock.bind((host, 0))
        sock.listen(64)
    except OSError:
        sock.close()
        return None
    sock.set_inheritable(True)
    return sock


@dataclass
class HAProxy:
    """A running haproxy: its process and the file it logs to."""

    process: subprocess.Popen[bytes]
    log_path: Path

    def log(self) -> str:
        return self.log_path.read_text(errors="replace")

    def assert_running(self) -> None:
        code = self.process.poll()
        assert code is None, f"haproxy exited with {code}:\n{self.log()}"


@contextmanager
def run_haproxy(
    binary: str, config: str, directory: Path, listeners: list[socket.socket]
) -> Iterator[HAProxy]:
    """Run ``haproxy -db`` on ``config``, whose ``bind fd@N`` lines name ``listeners``.

    The listeners are listening before haproxy starts, so clients can connect at
    once (the kernel queues them): no port race, no readiness polling. Our copies
    are closed once haproxy holds them, so a haproxy that dies refuses clients
    instead of leaving them hanging. Stopped by PID (TERM, then KILL).
    """
    config_path = directory / "haproxy.cfg"
    config_path.write_text(config)
    fds = tuple(sock.fileno() for sock in listeners)
    check = subprocess.run(
        [binary, "-c", "-q", "-f", str(config_path)],
        pass_fds=fds,
        capture_output=True,
        text=True,
        timeout=30,
    )
    assert check.returncode == 0, f"haproxy rejected the config:\n{check.stderr}\n{config}"
    log_path = directory / "haproxy.log"
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [binary, "-db", "-f", str(config_path)],
            pass_fds=fds,
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    for sock in listeners:
        sock.close()
    try:
        yield HAProxy(process=process, log_path=log_path)
    finally:
        stop_process(process)
