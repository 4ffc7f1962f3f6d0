"""``wsgi.file_wrapper``: a file response the worker may send with ``os.sendfile``.

PEP 3333 "Optional Platform-Specific File Handling". The worker checks
``type(result) is FileWrapper``; when ``fileno_or_none()`` gives a descriptor
it sends from ``filelike.tell()`` (not the descriptor's OS offset: a buffered
file object may have read ahead) to the end of the file, or up to the app's
Content-Length. Otherwise it iterates the wrapper like any other response.
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
