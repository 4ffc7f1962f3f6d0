"""Decide the response to a request for a static file: find it safely, then answer like nginx.

``StaticFiles.match`` runs on the worker's event loop before the app is
called. It does blocking file-system calls (realpath, stat, open; nginx's
default does the same), never socket I/O. Where a file is found:

* **Containment.** URL rules first (``urls.py``). Then the candidate path
  is resolved with ``os.path.realpath`` against the *current* real path of
  the mount's directory (a deploy that switches a ``current`` symlink is
  picked up) and refused unless it stays inside it: a symlink, or a symlinked
  directory, pointing outside the root is a 404 unless
  ``--static-follow-symlinks``. Symlinks that stay inside the root are served.
  The resolved path is opened with ``O_NOFOLLOW`` (and ``O_NONBLOCK``, so a FIFO
  swapped in cannot block the loop) and the open file must be the regular
  file that was checked (same device and inode). This guards against what is in
  the tree; it does not make the tree safe from a local user racing renames in it.
* **Only regular files** are served; directories are served through the index
  file (``--static-index``) or are 404, never listed. ``/dir`` redirects (301) to
  ``/dir/`` when the index exists.
* ``match`` raises ``OSError`` only for unexpected failures (EMFILE, EIO);
  missing, unreadable (403) or refused files are ordinary responses.
* **Resolution cache.** Resolving a path (realpath of the root and of the file,
  an lstat per precompressed sibling) cost more than serving a small file, so
  a found file's resolution is reused for ``RESOLVE_TTL_S`` (1 s): a switched
  ``current`` symlink, a new sibling or a file moved out of the root is seen
  at most one second late. The file itself is still opened (and checked) on
  every request, so its content and validators are always current; when it
  is no longer there, the path is resolved again at once, in the same request.
* **Small files** (up to ``INLINE_MAX_BYTES``) are read into the response
  (one write with the head) instead of going out with ``os.sendfile``, whose
  setup costs more than copying a few KiB.
"""

from __future__ import annotations

import errno
import io
import os
import stat
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from porch.static.conditions import (
    RequestFields,
    collect_fields,
    evaluate_preconditions,
    http_date,
    if_range_allows,
    validators_of,
)
from porch.static.negotiation import CODINGS, choose_coding, load_media_types, media_type
from porch.static.ranges import (
    Span,
    multipart_fits,
    multipart_frame,
    new_boundary,
    plan_ranges,
)
from porch.static.responses import FileBody, StaticResponse, error_response
from porch.static.urls import Mount, Route, route_request

if TYPE_CHECKING:
    from porch.config.settings import Config

__all__ = ["StaticFiles"]

_METHODS = ("GET", "HEAD")
_ALLOW = [("Allow", "GET, HEAD")]  # RFC 9110 §15.5.6: a 405 lists the allowed methods
_OPEN_FLAGS = os.O_RDONLY | os.O_CLOEXEC | os.O_NONBLOCK
# The file is not there (any more), or is a symlink O_NOFOLLOW refused.
_NOT_FOUND_ERRNOS = frozenset(
    {errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.ELOOP, errno.ENAMETOOLONG, errno.ENXIO}
)
RESOLVE_TTL_S = 1.0
INLINE_MAX_BYTES = 64 * 1024
_RESOLVED_MAX = 4096  # entries; the cache is emptied when full


class _Resolved:
    """Where a URL's file was found, and until when that answer is reused."""

    __slots__ = ("available", "expires", "name", "path", "root")

    def __init__(
        self, expires: float, root: str, path: str, name: str, available: dict[str, str]
    ) -> None:
        self.expires = expires
        self.root = root
        self.path = path
        self.name = name
        self.available = available


class StaticFiles:
    """Every ``--static`` mount, and the rules that answer requests under them."""

    __slots__ = (
        "_clock",
        "_date_clock",
        "_resolved",
        "cache_control",
        "follow_symlinks",
        "index",
        "inline_max_bytes",
        "mounts",
    )

    def __init__(
        self,
        *,
        mounts: Sequence[Mount],
        follow_symlinks: bool = False,
        cache_control: str = "",
        index: str = "",
        clock: Callable[[], float] = time.monotonic,
        date_clock: Callable[[], float] = time.time,
        inline_max_bytes: int = INLINE_MAX_BYTES,
    ) -> None:
        # Longest prefix first, so /assets/img wins over /assets.
        self.mounts = tuple(sorted(mounts, key=lambda mount: -len(mount.segments)))
        self.follow_symlinks = follow_symlinks
        self.cache_control = cache_control
        self.index = index
        self._resolved: dict[tuple[object, ...], _Resolved] = {}
        self._clock = clock  # seconds, for the resolution cache (tests pass their own)
        # The time the response's Date states (the worker passes its cached Date's).
        self._date_clock = date_clock
        self.inline_max_bytes = inline_max_bytes
        load_media_types()  # now, at worker start, rather than on the first request

    @classmethod
    def from_config(
        cls, config: Config, *, date_clock: Callable[[], float] = time.time
    ) -> StaticFiles | None:
        """The static layer of ``config``, or None when no ``--static`` is given.

        ``date_clock`` gives the time the responses' Date field states.
        """
        if not config.static:
            return None
        return cls(
            mounts=[Mount.parse(item) for item in config.static],
            follow_symlinks=config.static_follow_symlinks,
            cache_control=config.static_cache_control,
            index=config.static_index,
            date_clock=date_clock,
        )

    def match(
        self,
        method: str,
        raw_path: bytes,
        headers: Sequence[tuple[bytes, bytes]],
        query: bytes = b"",
    ) -> StaticResponse | None:
        """The response for a request, or None when its path is not under a mount.

        ``raw_path`` is the request-target's path exactly as received (percent-
        encoded, no query); ``headers`` are the raw request header fields;
        ``query`` is kept by a directory's redirect to its slashed URL.
        """
        route = route_request(self.mounts, raw_path)
        if route is None:
            return None
        head_only = method == "HEAD"
        if method not in _METHODS:
            return error_response(405, head_only=False, headers=_ALLOW)
        if route.segments is None:
            return error_response(404, head_only=head_only)
        key = (route.mount.prefix, route.segments, route.directory_url)
        now = self._clock()
        fields = collect_fields(headers)
        cached = self._resolved.get(key)
        if cached is not None and cached.expires > now:
            response = self._serve(cached, fields, method)
            if response.status != 404:
                return response
            # Gone from where it was found (a switched `current` symlink whose old
            # release was deleted, a file replaced by a directory): look again now.
        resolved = self._resolve(key, route, head_only, query, now)
        if isinstance(resolved, StaticResponse):
            return resolved
        response = self._serve(resolved, fields, method)
        if response.status == 404:
            self._resolved.pop(key, None)  # gone: look again next time
        return response

    # --- finding the file -----------------------------------------------------------

    def _resolve(
        self, key: tuple[object, ...], route: Route, head_only: bool, query: bytes, now: float
    ) -> _Resolved | StaticResponse:
        """Find the file for ``route`` and remember where (under ``key``), or a 404/403/301."""
        root = os.path.realpath(route.mount.directory)
        found = self._find(root, route, head_only, query)
        if isinstance(found, StaticResponse):
            self._resolved.pop(key, None)
            return found
        path, name = found
        resolved = _Resolved(now + RESOLVE_TTL_S, root, path, name, self._siblings(root, path))
        if len(self._resolved) >= _RESOLVED_MAX:
            self._resolved.clear()
        self._resolved[key] = resolved
        return resolved

    def _find(
        self, root: str, route: Route, head_only: bool, query: bytes = b""
    ) -> tuple[str, str] | StaticResponse:
        """(path, name for the media type) of the file to serve, or a 404/403/301."""
        assert route.segments is not None
        path = self._contained(root, os.path.join(root, *route.segments))
        kind = _kind(path)
        if kind == "dir":
            assert path is not None
            index = self._contained(root, os.path.join(path, self.index)) if self.index else None
            if _kind(index) != "file":
                return error_response(404, head_only=head_only)  # never a listing
            if not route.directory_url:
                location = route.url(trailing_slash=True)
                if query:  # as nginx does: /dir?page=2 -> /dir/?page=2
                    location += "?" + query.decode("latin-1")
                return error_response(301, head_only=head_only, headers=[("Location", location)])
            assert index is not None
            return index, self.index
        if kind == "file" and not route.directory_url:
            assert path is not None
            return path, route.segments[-1]
        status = 403 if kind == "forbidden" else 404
        return error_response(status, head_only=head_only)

    def _contained(self, root: str, candidate: str) -> str | None:
        """The path to open for ``candidate``, or None if it resolves outside ``root``."""
        if self.follow_symlinks:
            return candidate  # the URL rules keep the path itself under root
        real = os.path.realpath(candidate)
        if real != root and os.path.commonpath((root, real)) != root:
            return None
        return real

    def _siblings(self, root: str, path: str) -> dict[str, str]:
        """Content coding -> path of each precompressed regular file next to ``path``.

        ``path`` is already resolved and inside ``root``, so a sibling that is a
        regular file is inside too: one lstat each; only symlinks get resolved.
        """
        available = {}
        for coding, suffix in CODINGS:
            sibling = path + suffix
            try:
                mode = os.lstat(sibling).st_mode
            except OSError:
                continue
            if stat.S_ISLNK(mode):
                resolved = self._contained(root, sibling)
                if resolved is not None and _kind(resolved) == "file":
                    available[coding] = resolved
            elif stat.S_ISREG(mode):
                available[coding] = sibling
        return available

    # --- answering --------------------------------------------------------------------

    def _serve(self, resolved: _Resolved, fields: RequestFields, method: str) -> StaticResponse:
        path, name, available = resolved.path, resolved.name, resolved.available
        coding = choose_coding(fields.accept_encoding, available)
        opened = _open(available[coding], self.follow_symlinks) if coding else None
        if not isinstance(opened, tuple):  # no coding chosen, or its file just vanished
            coding = None
            opened = _open(path, self.follow_symlinks)
        if isinstance(opened, int):
            return error_response(opened, head_only=method == "HEAD")
        file, info = opened
        try:
            response = self._respond(file, info, name, coding, bool(available), fields, method)
        except BaseException:
            file.close()
            raise
        if response.file is None:
            file.close()
        return response

    def _respond(
        self,
        file: io.FileIO,
        info: os.stat_result,
        name: str,
        coding: str | None,
        vary: bool,
        fields: RequestFields,
        method: str,
    ) -> StaticResponse:
        head_only = method == "HEAD"
        validators = validators_of(info, coding, int(self._date_clock()))
        # RFC 9110 §15.4.5: a 304 carries the ETag, Cache-Control and Vary a 200 would.
        common = [("ETag", validators.etag), ("Last-Modified", http_date(validators.last_modified))]
        if self.cache_control:
            common.append(("Cache-Control", self.cache_control))
        if vary:  # RFC 9110 §12.5.5: every variant says what it was chosen by
            common.append(("Vary", "Accept-Encoding"))
        verdict = evaluate_preconditions(fields, validators)
        if verdict == 304:
            return StaticResponse(status=304, headers=common, head_only=head_only)
        if verdict == 412:
            return error_response(412, head_only=head_only)
        content_type = media_type(name)
        headers = [("Content-Type", content_type), *common, ("Accept-Ranges", "bytes")]
        if coding:
            headers.append(("Content-Encoding", coding))
        size = info.st_size
        # RFC 9110 §14.2: Range is defined for GET only; HEAD gets the full headers.
        if method == "GET" and fields.range is not None and if_range_allows(fields, validators):
            spans = plan_ranges(fields.range, size)
            if spans is not None:
                ranged = _ranged(file, size, spans, headers, content_type, multipart=not coding)
                if ranged is not None:
                    return ranged
        headers.append(("Content-Length", str(size)))
        if head_only:
            return StaticResponse(status=200, headers=headers, head_only=True)
        if size <= self.inline_max_bytes:
            body = _read(file, 0, size)
            if len(body) == size:  # else it is changing: send what sendfile finds
                return StaticResponse(status=200, headers=headers, body=body)
        return StaticResponse(status=200, headers=headers, file=FileBody(file, 0, size))


def _ranged(
    file: io.FileIO,
    size: int,
    spans: tuple[Span, ...],
    headers: list[tuple[str, str]],
    content_type: str,
    *,
    multipart: bool,
) -> StaticResponse | None:
    """A 416 or 206 for ``spans``; None when the whole file goes out instead (rule 5)."""
    if not spans:
        # RFC 9110 §15.5.17: say how large the representation is.
        return error_response(416, head_only=False, headers=[("Content-Range", f"bytes */{size}")])
    if len(spans) == 1:
        first, last = spans[0]
        count = last - first + 1
        headers += [
            ("Content-Range", f"bytes {first}-{last}/{size}"),
            ("Content-Length", str(count)),
        ]
        return StaticResponse(status=206, headers=headers, file=FileBody(file, first, count))
    if not multipart:
        return None
    boundary = new_boundary()
    heads, tail = multipart_frame(spans, size, content_type, boundary)
    length = sum(len(head) for head in heads) + len(tail)
    length += sum(last - first + 1 for first, last in spans)
    if not multipart_fits(length, size):
        return None
    pieces = []
    for head, (first, last) in zip(heads, spans, strict=True):
        pieces += [head, _read(file, first, last - first + 1)]
    body = b"".join([*pieces, tail])
    if len(body) != length:
        return None  # the file shrank while being read: send what it is now
    headers[0] = ("Content-Type", f"multipart/byteranges; boundary={boundary}")
    headers.append(("Content-Length", str(length)))
    return StaticResponse(status=206, headers=headers, body=body)


def _read(file: io.FileIO, offset: int, count: int) -> bytes:
    chunks = []
    while count > 0:
        chunk = os.pread(file.fileno(), count, offset)
        if not chunk:
            break
        chunks.append(chunk)
        offset += len(chunk)
        count -= len(chunk)
    return b"".join(chunks)


def _kind(path: str | None) -> str:
    """What ``path`` is: file, dir, forbidden (EACCES) or missing (or outside, or special)."""
    if path is None:
        return "missing"
    try:
        mode = os.stat(path).st_mode
    except PermissionError:
        return "forbidden"
    except OSError:
        return "missing"  # ENOENT, ENOTDIR, ELOOP, ENAMETOOLONG...
    if stat.S_ISREG(mode):
        return "file"
    return "dir" if stat.S_ISDIR(mode) else "missing"  # FIFOs, sockets, devices


def _open(path: str, follow_symlinks: bool) -> tuple[io.FileIO, os.stat_result] | int:
    """The open regular file at ``path`` and its status, or the error status (404/403).

    Failures that are not about the file (EMFILE, ENFILE, EIO...) are raised.
    """
    try:
        expected = os.stat(path)
        if not stat.S_ISREG(expected.st_mode):
            return 404  # checked before opening: opening a device can have effects
        flags = _OPEN_FLAGS if follow_symlinks else _OPEN_FLAGS | os.O_NOFOLLOW
        fd = os.open(path, flags)
    except PermissionError:
        return 403
    except OSError as exc:
        if exc.errno in _NOT_FOUND_ERRNOS:
            return 404
        raise
    file = io.FileIO(fd, "rb", closefd=True)
    try:
        info = os.fstat(fd)
    except BaseException:
        file.close()
        raise
    if (info.st_dev, info.st_ino) != (expected.st_dev, expected.st_ino):
        file.close()
        return 404  # replaced between the check and the open (ELOOP for a symlink)
    return file, info
