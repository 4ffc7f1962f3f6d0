"""The request rules of RFC 9110 and RFC 9112 that llhttp leaves to the server, as pure
functions over bytes: Host syntax, the version, transfer codings, the request-target.
:mod:`porch.protocol.h1` applies them while parsing."""

from __future__ import annotations

import re
from typing import Final

from porch.errors import ProtocolError

__all__ = [
    "HOST",
    "NUMBER_SIGN",
    "TCHAR",
    "http_version",
    "split_target",
    "transfer_coding_error",
    "valid_host",
]

NUMBER_SIGN: Final = ord("#")
TCHAR: Final = frozenset(
    b"!#$%&'*+-.^_`|~0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ"
)
# RFC 9110 §7.2 / RFC 3986 §3.2.2: Host = uri-host [ ":" port ]; an IP-literal in brackets.
HOST: Final = re.compile(
    rb"(?:\[[0-9A-Za-z:._~!$&'()*+,;=%-]+\]|[0-9A-Za-z._~!$&'()*+,;=%-]*)(?::[0-9]*)?"
)


def valid_host(host: bytes) -> bool:
    """RFC 9112 §3.2, RFC 3986 §3.2.2: what a Host field may hold, ``uri-host [":" port]``."""
    return HOST.fullmatch(host) is not None


def http_version(version: str) -> str:
    """RFC 9110 §2.5: a higher 1.x minor is handled as 1.1; another major is 505."""
    major, _, minor = version.partition(".")
    if major != "1":
        raise ProtocolError(505, "HTTP version not supported")
    return "1.0" if minor == "0" else "1.1"


def transfer_coding_error(value: bytes) -> tuple[int, str] | None:
    """RFC 9112 §6.1: only ``chunked`` is implemented, and it must be final and single."""
    codings = [c.strip().lower() for c in value.split(b",")]
    for coding in codings:
        if not coding or any(ch not in TCHAR for ch in coding.split(b";")[0].strip()):
            return 400, "malformed Transfer-Encoding"
    if codings == [b"chunked"]:
        return None
    if all(c == b"chunked" for c in codings):
        return 400, "chunked applied more than once"
    return 501, "unsupported transfer coding"


def split_target(url: bytes, method: str) -> tuple[bytes, bytes, bytes | None]:
    """Split a request-target into (path, query, authority-or-None). RFC 9112 §3.2."""
    host: bytes | None = None
    if url[:1] != b"/":
        if url == b"*" and method == "OPTIONS":
            return b"*", b"", None
        lower = url[:8].lower()
        if lower.startswith(b"http://") or lower.startswith(b"https://"):
            rest = url.split(b"//", 1)[1]
            slash = rest.find(b"/")
            qmark = rest.find(b"?")
            end = min(i for i in (slash, qmark, len(rest)) if i >= 0)
            host, url = rest[:end], rest[end:]
            # RFC 9110 §4.2.1: an http(s) URI with an empty host is invalid.
            if not host or host[:1] == b":" or HOST.fullmatch(host) is None:
                raise ProtocolError(400, "invalid absolute-form request-target")
            if url[:1] != b"/":
                url = b"/" + url
        else:
            raise ProtocolError(400, "invalid request-target")
    path, _, query = url.partition(b"?")
    if NUMBER_SIGN in path or NUMBER_SIGN in query:
        raise ProtocolError(400, "fragment in request-target")
    return path, query, host
