"""Run nginx in the foreground on an inherited listening socket, its files in one directory."""

from __future__ import annotations

import os
import socket
import subprocess
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from tests.programs import stop_process


@dataclass
class Nginx:
    """A running nginx: its process, the URL it listens on and its log directory."""

    process: subprocess.Popen[bytes]
    url: str
    directory: Path

    def log(self) -> str:
        parts = []
        for name in ("error.log", "access.log", "stderr.log"):
            path = self.directory / name
            if path.exists():
                parts.append(f"--- {name}\n{path.read_text(errors='replace')}")
        return "\n".join(parts)

    def assert_running(self) -> None:
        code = self.process.poll()
        assert code is None, f"nginx exited with {code}:\n{self.log()}"


def _config(directory: Path, port: int, server_block: str) -> str:
    """A self-contained nginx.conf: every path nginx writes to lies in ``directory``.

    ``master_process on`` because nginx 1.22 crashes (SIGSEGV) on inherited
    sockets without a master; ``user root`` so that, run as root, the worker
    needs no ``www-data`` user (nginx ignores the line with a warning otherwise).
    """
    temp = "\n".join(
        f"    {kind}_temp_path {directory / kind};"
        for kind in ("client_body", "proxy", "fastcgi", "uwsgi", "scgi")
    )
    return f"""
daemon off;
master_process on;
worker_processes 1;
user root;
pid {directory / "nginx.pid"};
error_log {directory / "error.log"} notice;
events {{ worker_connections 1024; }}
http {{
    access_log {directory / "access.log"};
{temp}
    server {{
        listen 127.0.0.1:{port};
{server_block}
    }}
}}
"""


@contextmanager
def run_nginx(binary: str, directory: Path, server_block: str) -> Iterator[Nginx]:
    """Run ``nginx`` in the foreground with ``server_block`` as its one server's body.

    The listening socket is created here, on a port the kernel picks, and handed
    to nginx the way its binary upgrade does (``NGINX="fd;"``): nginx adopts it
    for the matching ``listen`` line. Clients can connect at once (the kernel
    queues them), so there is no port race and no readiness polling. Stopped by
    PID: TERM (nginx's fast shutdown), then KILL.
    """
    directory.mkdir(parents=True, exist_ok=True)
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(512)
    listener.set_inheritable(True)
    port = listener.getsockname()[1]
    config_path = directory / "nginx.conf"
    config_path.write_text(_config(directory, port, server_block))
    env = {**os.environ, "NGINX": f"{listener.fileno()};"}
    with (directory / "stderr.log").open("wb") as stderr:
        process = subprocess.Popen(
            [
                binary,
                "-p",
                str(directory),
                "-e",
                str(directory / "error.log"),
                "-c",
                str(config_path),
            ],
            pass_fds=(listener.fileno(),),
            env=env,
            stdin=subprocess.DEVNULL,
            stdout=stderr,
            stderr=subprocess.STDOUT,
        )
    listener.close()  # nginx holds it now: if nginx dies, clients are refused, not left hanging
    nginx = Nginx(process=process, url=f"http://127.0.0.1:{port}", directory=directory)
    try:
        yield nginx
    finally:
        stop_process(process)
