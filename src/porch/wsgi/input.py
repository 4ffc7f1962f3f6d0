"""``wsgi.input``: the request body, buffered (memory, then a temp file) or streamed.

Buffered (the default): the event loop ``feed``s body bytes as they arrive and
calls ``finish`` at the end of the message; the application reads afterwards.
Streamed (``--no-request-buffering``): the application reads while the body
arrives, each read pulling pieces from the server until it has enough.
Either way reads never go past the body, so EOF is the end of the body
(PEP 3333 ``wsgi.input_terminated``).
"""

from __future__ import annotations

import io
from collections.abc import Callable, Iterator
from typing import Final

__all__ = ["EMPTY_INPUT", "BufferedInput", "EmptyInput", "StreamingInput"]


class BufferedInput:
    """A request body that lives in memory up to ``memory_limit`` bytes, then on disk."""

    __slots__ = ("_chunks", "_file", "_memory_limit", "_stream", "received_bytes")

    def __init__(self, *, memory_limit: int) -> None:
        self._memory_limit = memory_limit
        self._chunks: list[bytes] = []
        self._file: io.BufferedRandom | None = None  # set once spilled
        # Set by finish(): exactly the body, what the app reads.
        self._stream: io.BytesIO | io.BufferedRandom | None = None
        self.received_bytes = 0

    @property
    def spilled(self) -> bool:
        """True once the body went past ``memory_limit`` and lives in a temp file."""
        return self._file is not None

    # -- event-loop side ---------------------------------------------------

    def feed(self, data: bytes) -> None:
        """Append body bytes; spill to a temp file once past ``memory_limit``."""
        if self._stream is not None:
            raise RuntimeError("BufferedInput.feed() after finish()")
        self.received_bytes += len(data)
        if self._file is not None:
            self._file.write(data)
        elif self.received_bytes > self._memory_limit:
            import tempfile  # here: a worker whose bodies all fit in memory never needs it

            # Outlives this call: close() releases it (SIM115 does not apply).
            spill = tempfile.TemporaryFile()  # noqa: SIM115
            spill.writelines(self._chunks)
            spill.write(data)
            self._chunks.clear()
            self._file = spill
        elif data:
            self._chunks.append(data)

    def finish(self) -> None:
        """Mark the end of the body; reads may start."""
        if self._stream is not None:
            return
        if self._file is not None:
            self._file.seek(0)
            self._stream = self._file
        else:
            # join() of a single chunk returns it as is: no copy.
            self._stream = io.BytesIO(b"".join(self._chunks))
            self._chunks.clear()

    def close(self) -> None:
        """Release the memory or the temp file; further reads raise ``ValueError``."""
        self._chunks.clear()
        if self._stream is None:
            self._stream = io.BytesIO()
        self._stream.close()
        if self._file is not None:
            self._file.close()

    # -- application side (PEP 3333 "input stream") ------------------------

    def _ready(self) -> io.BytesIO | io.BufferedRandom:
        stream = self._stream
        if stream is None:
            raise RuntimeError("wsgi.input read before the request body was complete")
        return stream

    def read(self, size: int | None = -1) -> bytes:
        """Read up to ``size`` bytes, or the rest of the body when ``size`` is negative or None."""
        stream = self._stream
        if stream is None:
            stream = self._ready()
        if size is None or size < 0:
            size = -1  # a buffered file refuses sizes below -1; BytesIO reads all: the same
        elif size > self.received_bytes:
            size = self.received_bytes  # a file would allocate ``size`` bytes first
        return stream.read(size)

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line (up to ``size`` bytes), including its newline."""
        stream = self._stream
        if stream is None:
            stream = self._ready()
        return stream.readline(size)

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """Read lines until EOF, or until ``hint`` bytes or more were read.

        Implemented here because BytesIO and buffered files disagree on whether
        a total equal to ``hint`` stops (PEP 3333 lets servers ignore ``hint``).
        """
        stream = self._ready()
        if hint is None or hint <= 0:
            return stream.readlines()
        return _read_lines(stream.readline, hint)

    def __iter__(self) -> Iterator[bytes]:
        """Iterate over the lines of the body."""
        return iter(self._ready().readline, b"")


class StreamingInput:
    """A request body read while it arrives: each read pulls pieces until it has enough.

    :meth:`pull` (the ``pull`` callable, or a subclass's override) returns the
    next piece of the body, ``b""`` once the body is complete, or raises when it
    never will be; it may block. Reads follow buffered files: ``read(n)``
    returns ``n`` bytes unless the body ends first, so apps see the same results
    as with :class:`BufferedInput`.
    """

    __slots__ = ("_buffer", "_closed", "_eof", "_source")

    def __init__(self, *, pull: Callable[[], bytes] | None = None) -> None:
        self._source = pull
        self._buffer = bytearray()  # pulled, not yet read (del from the front is cheap)
        self._eof = False
        self._closed = False

    def pull(self) -> bytes:
        """The next piece of the body; ``b""`` at its end."""
        if self._source is None:
            raise NotImplementedError("StreamingInput needs pull= or a pull() override")
        return self._source()

    def _fill(self) -> bool:
        """Pull one more piece into the buffer; False at the end of the body."""
        if self._closed:
            raise ValueError("I/O operation on a closed wsgi.input")
        if self._eof:
            return False
        data = self.pull()
        if not data:
            self._eof = True
            return False
        self._buffer += data
        return True

    def _take(self, size: int) -> bytes:
        buffer = self._buffer
        data = bytes(buffer[:size])
        del buffer[:size]
        return data

    def read(self, size: int | None = -1) -> bytes:
        """Read ``size`` bytes (fewer only at the end of the body), or the rest when negative."""
        if size is None or size < 0:
            while self._fill():
                pass
            return self._take(len(self._buffer))
        while len(self._buffer) < size and self._fill():
            pass
        return self._take(size)

    def readline(self, size: int | None = -1) -> bytes:
        """Read one line (up to ``size`` bytes), including its newline."""
        limit = size if size is not None and size >= 0 else None
        buffer = self._buffer
        searched = 0
        while True:
            newline = buffer.find(b"\n", searched)
            if newline >= 0:
                end = newline + 1
                break
            if limit is not None and len(buffer) >= limit:
                end = limit
                break
            searched = len(buffer)
            if not self._fill():
                end = len(buffer)
                break
        return self._take(end if limit is None else min(end, limit))

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        """Read lines until EOF, or until ``hint`` bytes or more were read."""
        return _read_lines(self.readline, hint)

    def __iter__(self) -> Iterator[bytes]:
        """Iterate over the lines of the body."""
        return iter(self.readline, b"")

    def close(self) -> None:
        """Drop what was pulled and not read; further reads raise ``ValueError``."""
        self._closed = True
        self._buffer.clear()


class EmptyInput:
    """``wsgi.input`` for a request without a body: always at EOF, nothing to free."""

    __slots__ = ()

    def read(self, size: int | None = -1) -> bytes:
        return b""

    def readline(self, size: int | None = -1) -> bytes:
        return b""

    def readlines(self, hint: int | None = -1) -> list[bytes]:
        return []

    def __iter__(self) -> Iterator[bytes]:
        return iter(())

    def close(self) -> None:
        pass


EMPTY_INPUT: Final = EmptyInput()
"""Shared, stateless input for bodiless requests."""


def _read_lines(readline: Callable[[], bytes], hint: int | None) -> list[bytes]:
    """Lines until EOF, or until ``hint`` bytes or more were read (no bound when <= 0)."""
    lines: list[bytes] = []
    total = 0
    while hint is None or hint <= 0 or total < hint:
        line = readline()
        if not line:
            break
        lines.append(line)
        total += len(line)
    return lines
