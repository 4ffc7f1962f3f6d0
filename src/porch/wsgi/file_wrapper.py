"""``wsgi.file_wrapper``: a file response the worker may send with ``os.sendfile``.

PEP 3333 "Optional Platform-Specific File Handling". The worker checks
``type(result) is FileWrapper``; when ``sendfile_source()`` gives
``(fd, offset, count)`` it sends that span (capped by the app's Content-Length),
otherwise it iterates the wrapper like any other response. The offset is
``filelike.tell()``, not the descriptor's OS offset: a buffered file object
that was partly read has read ahead of its logical position.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from typing import Any

__all__ = ["FileWrapper"]


class FileWrapper:
    """Wrap a binary file-like object as an iterable of ``block_size`` chunks."""

    __slots__ = ("block_size", "filelike")

    # PEP 3333 forces Any: "file-like" means anything with read(), maybe close().
    def __init__(self, filelike: Any, block_size: int = 8192) -> None:
        self.filelike = filelike
        self.block_size = block_size

    def __iter__(self) -> Iterator[bytes]:
        """Yield blocks read from the file until it returns an empty read."""
        read = self.filelike.read
        size = self.block_size
        while True:
            block = read(size)
            if not block:
                return
            yield block

    def close(self) -> None:
        """Close the wrapped file, if it can be closed (PEP 3333)."""
        close = getattr(self.filelike, "close", None)
        if close is not None:
            close()

    def fileno_or_none(self) -> int | None:
        """Return the descriptor when the file is a regular file ``os.sendfile`` can send."""
        fileno = getattr(self.filelike, "fileno", None)
        if fileno is None:
            return None
        try:
            fd = fileno()
            if not isinstance(fd, int) or not stat.S_ISREG(os.fstat(fd).st_mode):
                return None
        except (OSError, ValueError):  # io.UnsupportedOperation is both
            return None
        return fd

    def sendfile_source(self) -> tuple[int, int, int] | None:
        """Return ``(fd, offset, count)`` from the file's current position to its end, or None."""
        fd = self.fileno_or_none()
        if fd is None:
            return None
        try:
            offset = self.filelike.tell()
            size = os.fstat(fd).st_size
        except (AttributeError, OSError, ValueError):
            return None
        if not isinstance(offset, int) or offset < 0:
            return None
        return fd, offset, max(size - offset, 0)
