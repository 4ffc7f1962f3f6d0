"""Accept connections on the worker's listening sockets: every pending one per wake-up.

uvloop's own server (``loop.create_server``) accepts about one connection per
loop iteration while the loop is busy: when 64 clients connect at once to a
worker already serving others, the last ones wait in the kernel's accept
queue for dozens of iterations (measured: a 150 us-per-request app gave
p99 100-300 ms, and 1,000 connections p99 1.5-1.9 s; the stdlib loop does not
do this). The acceptor watches each listening socket itself and accepts
until the queue is empty (at most ``BATCH`` per wake-up, so a flood cannot
hold the loop), handing each socket to ``connect_accepted_socket``.

Pausing (``--worker-connections``) just stops watching: the listening sockets
stay open, so nothing queued is lost and another worker may take it.

Each accepted socket is an instance of a ``socket.socket`` subclass made for its
listener (``_Listener``), whose ``family`` and ``type`` are plain class
attributes: socket.socket reads them through properties that convert to enums,
about 1.3 µs each, and accepting one connection read them five times
(``socket.accept`` twice, uvloop's ``connect_accepted_socket`` three times).
Non-blocking mode and ``TCP_NODELAY`` are the loop's: libuv's ``uv_tcp_open``
and uvloop's TCP transport set them, as asyncio's transport does.
"""

from __future__ import annotations

import asyncio
import errno
import logging
import socket
from collections.abc import Callable, Coroutine
from functools import partial
from typing import Any

error_log = logging.getLogger("porch.error")

__all__ = ["Acceptor"]

BATCH = 256  # connections accepted per wake-up of one listening socket
_RETRY_S = 0.5  # after running out of file descriptors
# The peer left before we accepted it: nothing to serve, not a server problem.
_GONE = frozenset({errno.ECONNABORTED, errno.EPROTO, errno.EPERM})
_NO_FDS = frozenset({errno.EMFILE, errno.ENFILE, errno.ENOBUFS, errno.ENOMEM})


class Acceptor:
    """Accepts on ``listeners`` and adopts each connection with ``factory``'s protocol."""

    __slots__ = (
        "_factory",
        "_listeners",
        "_loop",
        "_out_of_fds",
        "_watching",
        "adopting",
        "wanted",
    )

    def __init__(
        self,
        *,
        loop: asyncio.AbstractEventLoop,
        listeners: list[socket.socket],
        factory: Callable[[], asyncio.Protocol],
    ) -> None:
        self._loop = loop
        self._listeners = [_Listener(sock) for sock in listeners]
        self._factory = factory
        self._out_of_fds = False
        self._watching = False
        self.wanted = False  # accepting, as the worker asked (paused by --worker-connections)
        # Accepted, but connection_made() has not run yet: the connection is in
        # no connection set, and a graceful stop must wait for it too.
        self.adopting: set[Coroutine[Any, Any, object]] = set()
        for sock in listeners:
            sock.setblocking(False)

    def start(self) -> None:
        self.wanted = True
        self._watch(True)

    def pause(self) -> None:
        self.wanted = False
        self._watch(False)

    def drain(self) -> None:
        """Stop watching, then accept what the kernel already queued (it was promised)."""
        self.pause()
        for listener in self._listeners:
            while self._accept(listener) == BATCH:
                pass

    def _accept(self, listener: _Listener) -> int:
        """Accept up to BATCH pending connections; return how many."""
        adopted = 0
        sock, new = listener.sock, listener.new
        family, kind, proto = listener.family, listener.kind, listener.proto
        while adopted < BATCH:
            try:
                # What socket.accept() calls, without its enum lookups (not in typeshed).
                fd, _ = sock._accept()  # type: ignore[attr-defined]
            except (BlockingIOError, InterruptedError):
                break
            except OSError as exc:
                if exc.errno in _GONE:
                    continue
                if exc.errno in _NO_FDS:
                    self._wait_for_fds(exc)
                break
            self._adopt(new(family, kind, proto, fd))
            adopted += 1
        if adopted:
            self._out_of_fds = False
        return adopted

    def _watch(self, on: bool) -> None:
        if on and not self._watching:
            self._watching = True
            for listener in self._listeners:
                self._loop.add_reader(listener.sock.fileno(), self._accept, listener)
        elif not on and self._watching:
            self._watching = False
            for listener in self._listeners:
                self._loop.remove_reader(listener.sock.fileno())

    def _adopt(self, conn: socket.socket) -> None:
        adoption = self._loop.connect_accepted_socket(self._factory, conn)
        self.adopting.add(adoption)
        self._step(adoption)

    def _step(self, adoption: Coroutine[Any, Any, object], _: object = None) -> None:
        """Drive ``connect_accepted_socket`` the way a Task would, without one.

        The coroutine makes the transport, then awaits one future (resolved once
        ``connection_made`` ran). A Task per connection cost about 6 µs of the
        ~60 µs a ``Connection: close`` request takes (its creation, registration,
        context copy, the scheduled first step and the done callback): here the
        first step runs at once and the future's callback runs the second.
        """
        try:
            awaited = adoption.send(None)
        except StopIteration:
            self.adopting.discard(adoption)
            return
        except (Exception, asyncio.CancelledError) as exc:
            self.adopting.discard(adoption)
            error_log.warning("could not set up an accepted connection: %s", exc)
            return
        if awaited is None:  # a bare yield: once more on the next iteration
            self._loop.call_soon(self._step, adoption)
        else:  # a future: what Task.__step does with one
            awaited._asyncio_future_blocking = False
            awaited.add_done_callback(partial(self._step, adoption))

    def _wait_for_fds(self, exc: OSError) -> None:
        # The listening socket stays readable: watching it now would spin the loop.
        if not self._watching:
            return
        if not self._out_of_fds:
            error_log.error(
                "cannot accept connections: %s; retrying every %.1fs", exc.strerror, _RETRY_S
            )
        self._out_of_fds = True
        self._watch(False)
        self._loop.call_later(_RETRY_S, self._retry)

    def _retry(self) -> None:
        if self.wanted:
            self._watch(True)


class _Listener:
    """A listening socket, and how to make its connections' socket objects (see the
    module doc)."""

    __slots__ = ("family", "kind", "new", "proto", "sock")

    def __init__(self, sock: socket.socket) -> None:
        self.sock = sock
        self.family, self.kind, self.proto = int(sock.family), int(sock.type), sock.proto
        if self.family != socket.AF_UNIX:
            # TCP, named: a listener made with protocol 0 reports 0, and asyncio's
            # transport sets TCP_NODELAY only on sockets that say IPPROTO_TCP.
            self.proto = socket.IPPROTO_TCP
        attributes = {"__slots__": (), "family": sock.family, "type": sock.type}
        self.new: type[socket.socket] = type("AcceptedSocket", (socket.socket,), attributes)
