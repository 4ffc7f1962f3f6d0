"""Map a raw request path to a static mount and its decoded, safe segments (or a refusal).

The rules, applied to the path exactly as received (still percent-encoded):

* The path is split on ``/`` *before* decoding, and empty segments are merged
  (``//`` is ``/``), so an encoded ``%2F`` can never create a segment boundary.
* Each segment is percent-decoded exactly once (``%252e`` stays the literal
  ``%2e``) and must then be strict UTF-8 (overlong forms such as ``%c0%ae`` are
  invalid UTF-8 and refused).
* A mount matches when its prefix segments equal the first decoded segments;
  the longest prefix wins. No match: the request is the app's.
* Under a mount, a segment is refused (the request gets a 404) when it is
  malformed percent-encoding, contains a decoded ``/`` (``%2F``: refused rather
  than interpreted), a backslash, NUL or another control character, or starts
  with ``.``: that covers ``.`` and ``..`` and hides dotfiles and dot-directories.

Nothing here touches the file system; ``files.py`` resolves what is left.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from urllib.parse import quote

__all__ = ["Mount", "Route", "route_request"]

_HEX = frozenset(b"0123456789abcdefABCDEF")
# Bytes no served file name may contain once decoded: '/', '\', NUL and controls.
_FORBIDDEN = frozenset(b"/\\\x7f" + bytes(range(0x20)))


@dataclass(frozen=True, slots=True)
class Mount:
    """One ``--static URL_PREFIX=DIRECTORY``: a URL prefix served from a directory."""

    prefix: str  # "/assets", or "/" for the whole site; never a trailing slash otherwise
    directory: str  # absolute path, as configured (it may itself be a symlink)
    segments: tuple[bytes, ...]  # the prefix's segments, UTF-8, for matching

    @classmethod
    def parse(cls, text: str) -> Mount:
        """Build a mount from a validated ``Config.static`` item (``/prefix=/abs/dir``)."""
        prefix, _, directory = text.partition("=")
        segments = tuple(part.encode() for part in prefix.split("/") if part)
        return cls(prefix=prefix, directory=directory, segments=segments)


@dataclass(frozen=True, slots=True)
class Route:
    """A request path under a mount.

    ``segments`` are the decoded path segments below the prefix, or None when
    the path is refused (answer 404). ``directory_url`` is true when the path
    ends with ``/``.
    """

    mount: Mount
    segments: tuple[str, ...] | None
    directory_url: bool

    def url(self, *, trailing_slash: bool) -> str:
        """The canonical, percent-encoded URL path of this route (for redirects)."""
        assert self.segments is not None
        parts = [self.mount.prefix.rstrip("/"), *self.segments]
        path = "/".join(parts) or "/"
        if trailing_slash and not path.endswith("/"):
            path += "/"
        return quote(path, safe="/!$&'()*+,;=:@-._~")


def route_request(mounts: Sequence[Mount], raw_path: bytes) -> Route | None:
    """Find the mount of ``raw_path``; None when no mount's prefix matches.

    ``mounts`` must be ordered longest prefix first.
    """
    if not raw_path.startswith(b"/"):
        return None  # "*" (OPTIONS) or anything that is not an origin-form path
    raw_segments = [part for part in raw_path.split(b"/") if part]
    decoded = [_unquote(part) for part in raw_segments]
    for mount in mounts:
        depth = len(mount.segments)
        if depth > len(decoded) or tuple(decoded[:depth]) != mount.segments:
            continue
        rest = decoded[depth:]
        directory_url = raw_path.endswith(b"/")
        return Route(mount, _checked(rest), directory_url)
    return None


def _unquote(raw: bytes) -> bytes | None:
    """Percent-decode once; None for a malformed escape (``%``, ``%4``, ``%zz``)."""
    if b"%" not in raw:
        return raw
    pieces = raw.split(b"%")
    out = bytearray(pieces[0])
    for piece in pieces[1:]:
        if len(piece) < 2 or piece[0] not in _HEX or piece[1] not in _HEX:
            return None
        out.append(int(piece[:2], 16))
        out += piece[2:]
    return bytes(out)


def _checked(segments: Sequence[bytes | None]) -> tuple[str, ...] | None:
    """The segments as text, or None when any one of them is refused."""
    out = []
    for segment in segments:
        if segment is None or segment.startswith(b".") or not _FORBIDDEN.isdisjoint(segment):
            return None
        try:
            out.append(segment.decode("utf-8"))  # strict: overlong forms are errors
        except UnicodeDecodeError:
            return None
    return tuple(out)
