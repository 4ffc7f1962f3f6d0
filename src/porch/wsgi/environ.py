"""Build the PEP 3333 environ for a request from a ``RequestHead``.

``base_environ`` runs once per listener and worker; ``build_environ`` runs per
request on the hot path: a dict copy, one pass over the headers, no regex.

Trusted-proxy handling (``X-Forwarded-*``, ``Forwarded``) lives in
``porch.proxy.forwarded``: ``build_environ`` notices those headers while it
copies the others and hands the environ to ``on_forwarding``, which rewrites
``REMOTE_ADDR``, ``wsgi.url_scheme``, ``SERVER_NAME`` and ``SERVER_PORT`` for
trusted peers and strips the headers for the rest. Nothing here trusts them.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from typing import Any, Final, TextIO
from urllib.parse import unquote_to_bytes

from porch.protocol.events import RequestHead
from porch.types import Environ

__all__ = [
    "FORWARDING_KEYS",
    "HeaderMemo",
    "apply_host",
    "base_environ",
    "build_environ",
    "environ_key",
]

_DEFAULT_PORTS: Final = {"http": "80", "https": "443"}
_PROTOCOLS: Final = {"1.1": "HTTP/1.1", "1.0": "HTTP/1.0"}
_HTTP_HOST: Final = "HTTP_HOST"
_PERCENT: Final = ord("%")
_UNDERSCORE: Final = ord("_")
# PEP 3333 "CONTENT_TYPE", "CONTENT_LENGTH": no HTTP_ prefix for these two.
_UNPREFIXED: Final = {b"CONTENT-TYPE": "CONTENT_TYPE", b"CONTENT-LENGTH": "CONTENT_LENGTH"}
# Header name (as received) -> environ key, or None when the header is dropped.
# Bounded so that a peer sending random names cannot grow it without limit.
_KEY_CACHE: Final[dict[bytes, str | None]] = {}
_KEY_CACHE_MAX: Final = 512
_NO_NAME: Final = b"\x00"  # a HeaderMemo's name for a forwarding field: never a header's
_MEMO_MAX: Final = 128  # fields a HeaderMemo keeps (--limit-request-fields is 100 by default)
# The forwarding headers a trusted proxy sets (porch.proxy.forwarded). Their names
# are kept out of _KEY_CACHE, in a cache of their own: a request without any of
# them (the common case) is then known for free, by the header loop's cache hits,
# instead of by six environ lookups per request (0.15-0.25 µs).
_X_FORWARDED_KEYS: Final = (
    "HTTP_X_FORWARDED_FOR",
    "HTTP_X_FORWARDED_PROTO",
    "HTTP_X_FORWARDED_HOST",
    "HTTP_X_FORWARDED_PORT",
    "HTTP_X_FORWARDED_PREFIX",
)
FORWARDING_KEYS: Final = ("HTTP_FORWARDED", *_X_FORWARDED_KEYS)
_FORWARDING_KEY_SET: Final = frozenset(FORWARDING_KEYS)
_FORWARDING_CACHE: Final[dict[bytes, str]] = {}  # header name (as received) -> its key
_HOST_PARTS: Final[dict[bytes, tuple[str, str, str]]] = {}  # authority -> _split_host(authority)


def base_environ(
    *,
    server_name: str,
    server_port: str,
    url_scheme: str,
    multithread: bool,
    multiprocess: bool,
    errors: TextIO,
    file_wrapper: type,
    script_name: str | None = None,
) -> Environ:
    """Return the environ keys shared by every request of a listener in this worker.

    ``script_name`` defaults to the process's ``SCRIPT_NAME`` environment
    variable (as gunicorn does), without a trailing slash.
    """
    if script_name is None:
        script_name = os.environ.get("SCRIPT_NAME", "")
    return {
        "SCRIPT_NAME": script_name.rstrip("/"),
        "SERVER_NAME": server_name,
        "SERVER_PORT": server_port,
        "SERVER_PROTOCOL": "HTTP/1.1",
        "wsgi.version": (1, 0),
        "wsgi.url_scheme": url_scheme,
        "wsgi.errors": errors,
        "wsgi.multithread": multithread,
        "wsgi.multiprocess": multiprocess,
        "wsgi.run_once": False,
        # The body is always de-chunked and ends with EOF (a de-facto extension
        # of PEP 3333 used by mod_wsgi and gunicorn): read() without size works.
        "wsgi.input_terminated": True,
        "wsgi.file_wrapper": file_wrapper,
    }


class HeaderMemo:
    """A connection's previous request's header fields, as ``build_environ`` turned
    them into environ items: clients send the same fields from request to request.

    Position by position, a field equal to the one in the same place last time costs
    two bytes compares instead of a name lookup (hashing a fresh bytes object) and a
    decode. Forwarding fields are kept under a name that never matches, so a request
    carrying one is always noticed by the lookup.
    """

    __slots__ = ("host", "host_parts", "keys", "names", "raw_values", "values")

    def __init__(self) -> None:
        self.names: list[bytes] = []
        self.keys: list[str | None] = []
        self.raw_values: list[bytes] = []
        self.values: list[str] = []
        self.host = b""  # the last authority, and what apply_host made of it
        self.host_parts = _split_host(b"")


def build_environ(
    head: RequestHead,
    base: Environ,
    *,
    wsgi_input: object,
    remote_addr: str,
    remote_port: str,
    on_forwarding: Callable[[Environ], None] | None = None,
    memo: HeaderMemo | None = None,
) -> Environ:
    """Return a fresh environ for ``head``: a copy of ``base`` plus the per-request keys.

    ``on_forwarding`` is called with the finished environ when the request has
    a forwarding header (``FORWARDING_KEYS``), and only then. ``memo`` is the
    connection's :class:`HeaderMemo` (the environ is the same with or without it).
    """
    environ = base.copy()
    if memo is None:
        memo = HeaderMemo()
    names, keys, raw_values, values = memo.names, memo.keys, memo.raw_values, memo.values
    remembered = len(names)
    forwarding = False
    host = head.host
    index = 0
    for raw_name, raw_value in head.headers:
        if index < remembered and raw_name == names[index]:
            key = keys[index]
            if raw_value == raw_values[index]:
                value = values[index]
            else:
                value = raw_value.decode("latin-1")
                raw_values[index] = raw_value
                values[index] = value
        else:
            key = _KEY_CACHE.get(raw_name, "")
            kept_name, kept_key = raw_name, key
            if key == "":  # a forwarding field, or a name not seen yet
                key = _FORWARDING_CACHE.get(raw_name) or _new_key(raw_name)
                if key is not None and key in _FORWARDING_KEY_SET:
                    forwarding = True
                    # Remembered as dropped, under a name no field has (not a token).
                    kept_name, kept_key = _NO_NAME, None
                else:
                    kept_key = key
            value = "" if key is None else raw_value.decode("latin-1")
            if index < remembered:
                names[index], keys[index] = kept_name, kept_key
                raw_values[index], values[index] = raw_value, value
            elif index < _MEMO_MAX:
                names.append(kept_name)
                keys.append(kept_key)
                raw_values.append(raw_value)
                values.append(value)
        index += 1
        if key is None or (key is _HTTP_HOST and host is not None):
            continue  # dropped; or Host, which apply_host sets below from its cache
        size = len(environ)
        first = environ.setdefault(key, value)  # one lookup, not "in" then a store
        if len(environ) == size:
            # A repeated field. RFC 9110 §5.3: they combine with ","; RFC 6265 §5.4:
            # the Cookie header is the exception, its pairs join with "; ".
            environ[key] = first + ("; " if key == "HTTP_COOKIE" else ",") + value

    path = head.path
    if _PERCENT in path:  # an int: see protocol/h1.py on ``bytes in bytes``
        # PEP 3333: PATH_INFO is the decoded path, bytes carried as latin-1.
        path = unquote_to_bytes(path)
    path_info = path.decode("latin-1")
    script_name: str = environ["SCRIPT_NAME"]
    if script_name and (path_info == script_name or path_info.startswith(script_name + "/")):
        path_info = path_info[len(script_name) :]

    environ["REQUEST_METHOD"] = head.method
    environ["PATH_INFO"] = path_info
    environ["QUERY_STRING"] = head.query.decode("latin-1")
    environ["SERVER_PROTOCOL"] = _PROTOCOLS.get(head.http_version) or ("HTTP/" + head.http_version)
    environ["REMOTE_ADDR"] = remote_addr
    environ["REMOTE_PORT"] = remote_port
    environ["wsgi.input"] = wsgi_input
    if host is not None:
        apply_host(environ, host, memo)
    if forwarding and on_forwarding is not None:
        on_forwarding(environ)
    return environ


def _new_key(raw_name: bytes) -> str | None:
    """``environ_key``, remembered in the cache for its kind (bounded: a peer sending
    random names cannot grow them)."""
    key = environ_key(raw_name)
    if key is not None and key in _FORWARDING_KEY_SET:
        if len(_FORWARDING_CACHE) < _KEY_CACHE_MAX:
            _FORWARDING_CACHE[raw_name] = key
    elif len(_KEY_CACHE) < _KEY_CACHE_MAX:
        _KEY_CACHE[raw_name] = key
    return key


def environ_key(raw_name: bytes) -> str | None:
    """Return the environ key for a header name, or None when the header is dropped.

    Names containing ``_`` are dropped: after the ``-`` to ``_`` mapping,
    ``X_Forwarded_For`` would otherwise masquerade as ``X-Forwarded-For``
    (nginx and gunicorn drop them too).
    """
    if _UNDERSCORE in raw_name:
        return None
    upper = raw_name.upper()
    if upper == b"HOST":
        return _HTTP_HOST  # this very object: build_environ recognizes it by identity
    unprefixed = _UNPREFIXED.get(upper)
    if unprefixed is not None:
        return unprefixed
    return "HTTP_" + upper.decode("latin-1").replace("-", "_")


def apply_host(environ: dict[str, Any], host: bytes, memo: HeaderMemo | None = None) -> None:
    """Set HTTP_HOST, SERVER_NAME and SERVER_PORT from the request's authority.

    RFC 9112 §3.2.2: with an absolute-form target the target's authority wins
    over the Host header, so ``head.host`` replaces HTTP_HOST. A missing port
    means the scheme's default port (as gunicorn does).
    """
    if memo is not None and host == memo.host:  # the connection's usual authority
        parts = memo.host_parts
    else:
        cached = _HOST_PARTS.get(host)
        if cached is None:
            parts = _split_host(host)
            if len(_HOST_PARTS) < _KEY_CACHE_MAX:
                _HOST_PARTS[host] = parts
        else:
            parts = cached
        if memo is not None:
            memo.host, memo.host_parts = host, parts
    text, name, port = parts
    environ["HTTP_HOST"] = text
    if not name:
        return
    environ["SERVER_NAME"] = name
    environ["SERVER_PORT"] = port or _DEFAULT_PORTS.get(
        environ["wsgi.url_scheme"], environ["SERVER_PORT"]
    )


def _split_host(host: bytes) -> tuple[str, str, str]:
    """(HTTP_HOST, name, port or "") of an authority."""
    text = host.decode("latin-1")
    if text.startswith("["):  # RFC 3986 §3.2.2: IP-literal
        end = text.find("]")
        name, rest = (text[: end + 1], text[end + 1 :]) if end != -1 else (text, "")
        port = rest[1:] if rest.startswith(":") else ""
    else:
        name, _, port = text.partition(":")
    return text, name, port
