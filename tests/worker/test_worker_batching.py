"""Inline mode runs apps after the loop delivered every ready read (WorkerContext.start_soon);
and a connection that ends is freed by reference counting, with no cycle left behind.

The connection driver and the worker context are real and so is the event
loop. The transport is a recorder, standing in for the socket at the asyncio
seam, so the test controls which reads arrive in one loop iteration.
"""

from __future__ import annotations

import asyncio
import gc
import sys
from collections.abc import Iterable
from typing import Any

import pytest

from porch.access_log import AccessLog
from porch.config.settings import Config
from porch.worker import connection as connection_module
from porch.worker.connection import HTTPConnection
from porch.worker.context import WorkerContext
from porch.wsgi.environ import base_environ
from porch.wsgi.file_wrapper import FileWrapper


class RecordingTransport:
    """What an asyncio transport does for the driver, minus the socket."""

    def __init__(self) -> None:
        self.written = b""
        self.closed = False

    def write(self, data: bytes) -> None:
        self.written += data

    def writelines(self, parts: Iterable[bytes]) -> None:
        self.written += b"".join(parts)

    def is_closing(self) -> bool:
        return self.closed

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return ("127.0.0.1", 40000) if name == "peername" else default

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True


def request(path: str) -> bytes:
    return f"GET {path} HTTP/1.1\r\nHost: test\r\n\r\n".encode()


@pytest.fixture
def loop() -> Any:
    loop = asyncio.new_event_loop()
    yield loop
    loop.close()


def connect(loop: asyncio.AbstractEventLoop, events: list[str], threads: int = 1) -> Any:
    def app(environ: dict[str, Any], start_response: Any) -> list[bytes]:
        events.append("app " + environ["PATH_INFO"])
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    config = Config(app="test:app", threads=threads)
    environ = base_environ(
        server_name="127.0.0.1",
        server_port="8000",
        url_scheme="http",
        multithread=threads > 1,
        multiprocess=False,
        errors=sys.stderr,
        file_wrapper=FileWrapper,
    )
    ctx = WorkerContext(
        config=config,
        app=app,
        loop=loop,
        access_log=AccessLog(config),
        base_environ=environ,
        on_request_limit=lambda: None,
    )

    def open_connection() -> tuple[HTTPConnection, RecordingTransport]:
        conn, transport = HTTPConnection(ctx), RecordingTransport()
        conn.connection_made(transport)  # type: ignore[arg-type]
        return conn, transport

    return open_connection


def run_until(loop: asyncio.AbstractEventLoop, done: Any) -> None:
    async def wait() -> None:
        for _ in range(100):
            if done():
                return
            await asyncio.sleep(0)
        raise AssertionError("the responses were not written")

    loop.run_until_complete(wait())


def test_requests_read_together_are_all_parsed_before_any_app_runs(loop: Any) -> None:
    events: list[str] = []
    open_connection = connect(loop, events)
    (a, a_out), (b, b_out) = open_connection(), open_connection()

    def one_loop_iteration_of_reads() -> None:
        a.data_received(request("/a"))
        events.append("read /a")
        b.data_received(request("/b"))
        events.append("read /b")

    loop.call_soon(one_loop_iteration_of_reads)
    run_until(loop, lambda: a_out.written and b_out.written)
    assert events == ["read /a", "read /b", "app /a", "app /b"]
    for out in (a_out.written, b_out.written):
        assert out.startswith(b"HTTP/1.1 200 OK\r\n") and out.endswith(b"\r\n\r\nok")


def test_a_request_with_a_large_body_starts_its_app_at_once(loop: Any) -> None:
    # Queued requests hold their bodies: past 64 KiB the app is not batched.
    events: list[str] = []
    open_connection = connect(loop, events)
    (a, a_out), (b, b_out) = open_connection(), open_connection()
    body = b"x" * (64 * 1024 + 1)
    upload = b"POST /big HTTP/1.1\r\nHost: test\r\nContent-Length: %d\r\n\r\n" % len(body)

    def one_loop_iteration_of_reads() -> None:
        a.data_received(upload + body)
        events.append("read /big")
        b.data_received(request("/b"))
        events.append("read /b")

    loop.call_soon(one_loop_iteration_of_reads)
    run_until(loop, lambda: a_out.written and b_out.written)
    assert events == ["app /big", "read /big", "read /b", "app /b"]


def test_a_full_batch_runs_without_waiting_for_the_end_of_the_loop_iteration(loop: Any) -> None:
    events: list[str] = []
    open_connection = connect(loop, events)
    connections = [open_connection() for _ in range(65)]

    def one_loop_iteration_of_reads() -> None:
        for number, (conn, _) in enumerate(connections):
            conn.data_received(request(f"/{number}"))
            events.append(f"read /{number}")

    loop.call_soon(one_loop_iteration_of_reads)
    run_until(loop, lambda: all(out.written for _, out in connections))
    # The 64th request fills the batch: its read runs the 64 apps.
    batch = [f"read /{n}" for n in range(63)] + [f"app /{n}" for n in range(64)]
    assert events == [*batch, "read /63", "read /64", "app /64"]


def test_the_next_request_on_a_connection_waits_for_the_queued_one(loop: Any) -> None:
    events: list[str] = []
    conn, out = connect(loop, events)()
    loop.call_soon(conn.data_received, request("/1") + request("/2"))
    run_until(loop, lambda: out.written.count(b"HTTP/1.1 200 OK") == 2)
    assert events == ["app /1", "app /2"]


def test_pipelined_requests_arriving_while_one_is_queued_wait_in_order(loop: Any) -> None:
    # Reads 2 and 3 arrive while /1 is queued: their events wait in the connection
    # (the second read's list is adopted, the third's appended to it).
    events: list[str] = []
    conn, out = connect(loop, events)()
    stream = request("/1") + request("/2") + request("/3")
    first_end = len(request("/1"))
    second_end = first_end + len(request("/2"))

    def three_reads() -> None:
        conn.data_received(stream[: first_end + 5])
        conn.data_received(stream[first_end + 5 : second_end])
        conn.data_received(stream[second_end:])
        events.append("read all")

    loop.call_soon(three_reads)
    run_until(loop, lambda: out.written.count(b"HTTP/1.1 200 OK") == 3)
    assert events == ["read all", "app /1", "app /2", "app /3"]
    assert not conn.has_pending()
    assert connection_module._NO_EVENTS == []  # the shared placeholder is never filled


def test_a_client_gone_before_its_app_ran_is_not_served(loop: Any) -> None:
    events: list[str] = []
    open_connection = connect(loop, events)
    (a, a_out), (b, b_out) = open_connection(), open_connection()

    def reads_then_b_disconnects() -> None:
        a.data_received(request("/a"))
        b.data_received(request("/b"))
        b.connection_lost(None)

    loop.call_soon(reads_then_b_disconnects)
    run_until(loop, lambda: a_out.written)
    loop.run_until_complete(asyncio.sleep(0))
    assert events == ["app /a"]
    assert b_out.written == b""
    assert b.exchange is None  # the queued exchange was finished, not left behind


def test_threads_mode_hands_each_request_to_the_pool_at_once(loop: Any) -> None:
    events: list[str] = []
    conn, out = connect(loop, events, threads=2)()
    loop.call_soon(conn.data_received, request("/t"))

    async def wait_for_response() -> None:
        for _ in range(500):
            if out.written:
                return
            await asyncio.sleep(0.01)

    loop.run_until_complete(wait_for_response())
    assert events == ["app /t"] and out.written.endswith(b"ok")
    assert conn.ctx.executor is not None
    conn.ctx.executor.shutdown()


def test_a_finished_connection_leaves_nothing_for_the_cycle_collector(loop: Any) -> None:
    # With Connection: close on every request, cycles left by each connection kept
    # the collector busy (7% of a worker's CPU).
    events: list[str] = []
    open_connection = connect(loop, events)
    gc.collect()
    gc.freeze()  # what earlier tests left is not this test's to judge
    gc.set_debug(gc.DEBUG_SAVEALL)
    try:
        for n in range(3):
            conn, out = open_connection()
            loop.call_soon(conn.data_received, request(f"/{n}"))
            run_until(loop, lambda out=out: out.written)  # type: ignore[misc]
            conn.connection_lost(None)
            del conn, out
        gc.collect()
        assert not {type(o).__name__ for o in gc.garbage} & {"HTTPConnection", "H1Parser"}
    finally:
        gc.set_debug(0)
        gc.garbage.clear()
        gc.unfreeze()
