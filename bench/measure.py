"""Measurements: a server's process tree (CPU, RSS), core busy time, readiness, probe, wrk.

CPU accounting: user+sys of every process in the server's tree, read from
``/proc/PID/stat`` (utime, stime, plus cutime/cstime so a child reaped during the
run still counts), summed before and after the measured wrk run. ``/proc/PID/stat``
of a process covers all its threads, so Rust/C I/O threads are included.
"""

from __future__ import annotations

import http.client
import json
import os
import socket
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")
WRK_MARKER = "BENCH_JSON "


def _stat_fields(pid: int) -> list[str] | None:
    """Fields of /proc/PID/stat after the command name (which may hold spaces)."""
    try:
        text = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    return text[text.rindex(")") + 2 :].split()


def process_tree(root_pid: int) -> list[int]:
    """``root_pid`` and all its live descendants."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        fields = _stat_fields(int(entry))
        if fields is not None:
            children.setdefault(int(fields[1]), []).append(int(entry))
    tree, todo = [], [root_pid]
    while todo:
        pid = todo.pop()
        tree.append(pid)
        todo.extend(children.get(pid, []))
    return tree


def tree_cpu_seconds(root_pid: int) -> float:
    """user+sys seconds of the whole tree, including children it has reaped."""
    ticks = 0
    for pid in process_tree(root_pid):
        fields = _stat_fields(pid)
        if fields is not None:
            ticks += sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    return ticks / CLOCK_TICKS


def _rss_kib(pid: int) -> int:
    try:
        resident_pages = int(Path(f"/proc/{pid}/statm").read_text().split()[1])
    except (OSError, IndexError, ValueError):
        return 0
    return resident_pages * PAGE_BYTES // 1024


def _uss_kib(pid: int) -> int:
    """Memory only this process holds (private pages), from /proc/PID/smaps_rollup."""
    total = 0
    try:
        for line in Path(f"/proc/{pid}/smaps_rollup").read_text().splitlines():
            if line.startswith(("Private_Clean:", "Private_Dirty:")):
                total += int(line.split()[1])
    except (OSError, ValueError):
        return 0
    return total


@dataclass(frozen=True, slots=True)
class Memory:
    worker_rss_kib: int  # largest leaf process of the tree (the worker)
    worker_uss_kib: int  # its private memory: RSS minus pages shared with the master or libs
    tree_rss_kib: int  # every process of the tree, master included
    processes: int


def tree_memory(root_pid: int) -> Memory:
    """RSS of the worker (a process without children; the root if it has none) and the tree."""
    tree = process_tree(root_pid)
    parents = {int(f[1]) for pid in tree if (f := _stat_fields(pid)) is not None}
    leaves = [pid for pid in tree if pid not in parents] or [root_pid]
    worker = max(leaves, key=_rss_kib)
    return Memory(
        worker_rss_kib=_rss_kib(worker),
        worker_uss_kib=_uss_kib(worker),
        tree_rss_kib=sum(_rss_kib(pid) for pid in tree),
        processes=len(tree),
    )


def describe_tree(root_pid: int) -> list[str]:
    """One line per process of the tree: pid, state, kernel wait channel, command (diagnostics)."""
    lines = []
    for pid in process_tree(root_pid):
        fields = _stat_fields(pid)
        try:
            wchan = Path(f"/proc/{pid}/wchan").read_text()
            argv = Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode()
        except OSError:
            continue
        state = fields[0] if fields else "?"
        lines.append(f"{pid} {state} {wchan or '-'} {argv.strip()}")
    return lines


def core_busy_seconds(core: int) -> float:
    """Non-idle seconds of one CPU core since boot, from /proc/stat."""
    for line in Path("/proc/stat").read_text().splitlines():
        if line.startswith(f"cpu{core} "):
            values = [int(v) for v in line.split()[1:]]
            idle = values[3] + values[4]  # idle + iowait
            return (sum(values[:8]) - idle) / CLOCK_TICKS
    return 0.0


def wait_for_port(port: int, process: subprocess.Popen[bytes], timeout_s: float) -> None:
    """Poll until something accepts on the port (bounded); fail early if the server died."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise RuntimeError(f"server exited with code {process.returncode} before listening")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=0.2):
                return
        except OSError:
            time.sleep(0.05)
    raise RuntimeError(f"nothing listened on port {port} within {timeout_s:g}s")


def probe(port: int, path: str, post_body_bytes: int, timeout_s: float) -> tuple[int, bytes]:
    """One request as the scenario sends it; returns (status, body)."""
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
    try:
        if post_body_bytes:
            body = b"x" * post_body_bytes
            connection.request(
                "POST", path, body=body, headers={"Content-Type": "application/octet-stream"}
            )
        else:
            connection.request("GET", path)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def stalled_connection(port: int, path: str, connections: int, timeout_s: float) -> int | None:
    """Open connections one after another, leaving earlier ones idle; each must be answered.

    A server that keeps serving an idle keep-alive connection while new ones wait
    would look fast under wrk (one busy connection) while most of wrk's
    connections are never served. Returns the index of the first connection not
    answered within ``timeout_s``, or None when all were.
    """
    opened: list[http.client.HTTPConnection] = []
    try:
        for index in range(connections):
            connection = http.client.HTTPConnection("127.0.0.1", port, timeout=timeout_s)
            opened.append(connection)
            try:
                connection.request("GET", path)
                connection.getresponse().read()
            except (OSError, http.client.HTTPException):
                return index
        return None
    finally:
        for connection in opened:
            connection.close()


@dataclass(frozen=True, slots=True)
class WrkResult:
    requests: int
    duration_s: float
    bytes_read: int
    errors: dict[str, int]
    latency_us: dict[str, float]

    @property
    def requests_per_s(self) -> float:
        return self.requests / self.duration_s if self.duration_s else 0.0

    @property
    def socket_errors(self) -> int:
        return sum(v for k, v in self.errors.items() if k != "status")


def run_wrk(command: list[str], env: dict[str, str], timeout_s: float) -> WrkResult:
    """Run wrk with bench/wrk/report.lua and read its JSON summary line."""
    completed = subprocess.run(
        command, env=env, capture_output=True, text=True, timeout=timeout_s, check=False
    )
    for line in completed.stdout.splitlines():
        if line.startswith(WRK_MARKER):
            data = json.loads(line[len(WRK_MARKER) :])
            return WrkResult(
                requests=data["requests"],
                duration_s=data["duration_us"] / 1e6,
                bytes_read=data["bytes"],
                errors=data["errors"],
                latency_us=data["latency_us"],
            )
    raise RuntimeError(
        f"wrk exited {completed.returncode} without a summary: "
        f"{(completed.stderr or completed.stdout).strip()[-500:]}"
    )
