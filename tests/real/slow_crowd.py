"""Hundreds of slow clients on raw non-blocking sockets, driven by one thread: uploaders
trickle a request body, readers take a response one byte per tick; and a probe that
times one ordinary request on a fresh connection."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

TICK_SECONDS = 0.1
TRICKLE = b"abcd"  # body bytes each uploader sends per tick
READER_RCVBUF_BYTES = 4096  # a small receive window: the server must hold the rest


def _address(url: str) -> tuple[str, int]:
    host, _, port = url.removeprefix("http://").rpartition(":")
    return host, int(port)


def open_connection(url: str, head: bytes, *, rcvbuf: int | None = None) -> socket.socket:
    """Connect, send ``head`` whole, and return the socket non-blocking."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    if rcvbuf is not None:  # before connect, so that it bounds the advertised window
        sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, rcvbuf)
    sock.settimeout(10)
    sock.connect(_address(url))
    sock.sendall(head)
    sock.setblocking(False)
    return sock


@dataclass
class SlowCrowd:
    """Slow connections and the thread that keeps them slow until stop()."""

    uploaders: list[socket.socket] = field(default_factory=list)
    readers: list[socket.socket] = field(default_factory=list)
    received: list[bytearray] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    ticks: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def add_uploader(self, url: str, head: bytes) -> None:
        self.uploaders.append(open_connection(url, head))

    def add_reader(self, url: str, request: bytes) -> None:
        self.readers.append(open_connection(url, request, rcvbuf=READER_RCVBUF_BYTES))
        self.received.append(bytearray())

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="slow-crowd", daemon=True)
        self._thread.start()

    def _run(self) -> None:
        closed: set[int] = set()
        while not self._stop.wait(TICK_SECONDS):
            self.ticks += 1
            for index, sock in enumerate(self.uploaders):
                try:
                    sock.send(TRICKLE)
                except BlockingIOError:
                    pass
                except OSError as exc:
                    if id(sock) not in closed:
                        closed.add(id(sock))
                        self.problems.append(f"uploader {index}: {exc!r}")
            for index, sock in enumerate(self.readers):
                if id(sock) in closed:
                    continue
                try:
                    byte = sock.recv(1)
                except BlockingIOError:
                    continue
                except OSError as exc:
                    byte, reason = b"", repr(exc)
                else:
                    reason = "closed by the server"
                if byte:
                    self.received[index] += byte
                else:
                    closed.add(id(sock))
                    self.problems.append(f"reader {index}: {reason} after {self.received[index]!r}")

    def readers_answered(self) -> int:
        return sum(1 for data in self.received if data)

    def wait_until(self, condition: Callable[[], bool], what: str, timeout: float) -> None:
        """Wait (the crowd ticking on) until ``condition()`` holds; else fail saying ``what``."""
        deadline = time.monotonic() + timeout
        while not condition():
            assert time.monotonic() < deadline, (
                f"not within {timeout}s: {what}; {self.problems[:5]}"
            )
            time.sleep(TICK_SECONDS)

    def assert_all_still_waiting(self) -> None:
        """No uploader was answered or dropped (its body is unfinished), no reader was cut off."""
        for index, sock in enumerate(self.uploaders):
            try:
                data = sock.recv(1024)
            except BlockingIOError:
                continue
            except OSError as exc:
                self.problems.append(f"uploader {index}: {exc!r}")
                continue
            self.problems.append(f"uploader {index} got {data[:60]!r} before its body was sent")
        assert self.problems == [], self.problems[:10]

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(5)
        for sock in self.uploaders + self.readers:
            sock.close()


def timed_get(url: str, target: str = "/", *, timeout: float = 5.0) -> tuple[float, bytes]:
    """Seconds for one ``GET target`` on a fresh connection (connect to last byte), and the
    response; a server that does not answer within ``timeout`` is a failure."""
    started = time.monotonic()
    with socket.create_connection(_address(url), timeout=timeout) as sock:
        sock.sendall(f"GET {target} HTTP/1.1\r\nHost: probe\r\nConnection: close\r\n\r\n".encode())
        chunks = []
        try:
            while data := sock.recv(65536):
                chunks.append(data)
        except TimeoutError:
            raise AssertionError(f"GET {target} not answered within {timeout}s") from None
    return time.monotonic() - started, b"".join(chunks)
