"""``start_response`` and ``write`` for one request: PEP 3333 rules and response-head validation.

Decisions (the worker relies on them):

* status must be ``"NNN reason"``: three digits, one space, a possibly empty
  reason (RFC 9112 §4 allows an empty reason-phrase but not a missing space).
  Codes outside 200..599 are refused: RFC 9110 §15 defines 100..599, and a
  1xx cannot be the final response of a WSGI app.
* header names are RFC 9110 §5.6.2 tokens; values hold no control character
  but HTAB (RFC 9110 §5.5) and only latin-1 code points, so nothing the app
  sends can split the head (no CR/LF injection).
* hop-by-hop headers (PEP 3333 forbids them): ``Transfer-Encoding`` and
  ``Upgrade`` raise, because dropping them would misframe a body the app
  encoded itself; ``Connection``, ``Keep-Alive``, ``Proxy-Connection``, ``TE``
  and ``Trailer`` are dropped as gunicorn does, and ``Connection: close`` sets
  ``close_connection``.
* container types are lenient (a list or tuple of 2-item tuples or lists, as
  gunicorn accepts); ``headers`` is always normalised to a list of tuples.

Apps send the same few heads again and again, so a validated head (status and
header list, exact ``str`` values only) is remembered as a :class:`KnownHead`:
the next identical ``start_response`` call is one dict lookup, and the driver
keeps its serialized header lines in the same entry (``wire``).

Every violation raises ``AppResponseError`` inside the app's call, so the
worker turns it into a logged 500 like any other app error. What the app passes
is typed ``object`` and checked here: this module may run compiled (mypyc),
where a narrower annotation would raise its own TypeError before these checks.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Final

from porch.errors import AppResponseError
from porch.types import ExcInfo, HeaderPairs, ResponseHeaders, WriteCallable

__all__ = ["StartResponse", "own_fields", "parse_status", "validate_headers"]

# RFC 9112 §4: status-line = HTTP-version SP status-code SP [ reason-phrase ];
# reason-phrase = 1*( HTAB / SP / VCHAR / obs-text ).
_STATUS: Final = re.compile(r"([0-9]{3}) [\t\x20-\x7e\x80-\xff]*\Z")
# RFC 9110 §5.6.2: token = 1*tchar.
_TOKEN: Final = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+\Z")
# RFC 9110 §5.5: field-value chars are VCHAR, obs-text, SP and HTAB; anything
# else (CR, LF, NUL, other controls, DEL, code points past latin-1) is refused.
_BAD_VALUE_CHAR: Final = re.compile(r"[^\t\x20-\x7e\x80-\xff]")
# RFC 9110 §7.6.1 and PEP 3333 "Other HTTP Features".
_DROPPED_HOP_BY_HOP: Final = frozenset(
    {"connection", "keep-alive", "proxy-connection", "te", "trailer"}
)
_REFUSED_HOP_BY_HOP: Final = frozenset({"transfer-encoding", "upgrade"})
_MAX_CONTENT_LENGTH_DIGITS: Final = 19  # fits a signed 64-bit integer


class StartResponse:
    """The ``start_response`` callable of one request, and the state it records.

    ``write`` is the sink for the legacy ``write()`` callable (or a subclass
    overrides :meth:`deliver`); the driver sets ``headers_sent`` once the head
    went out.
    """

    __slots__ = (
        "_sink",
        "close_connection",
        "content_length",
        "headers",
        "headers_sent",
        "known",
        "started",
        "status",
        "status_code",
    )

    def __init__(self, write: Callable[[bytes], None] | None = None) -> None:
        self._sink = write
        self.status = ""
        self.status_code = 0
        self.headers: HeaderPairs = ()
        self.content_length: int | None = None
        self.close_connection = False  # the app sent "Connection: close"
        self.started = False  # start_response() was called successfully
        self.headers_sent = False  # set by the driver
        self.known: KnownHead | None = None  # the cache entry of this head, if any

    def __call__(
        self,
        status: object,
        headers: object,
        exc_info: ExcInfo | None = None,
    ) -> WriteCallable:
        """Record the status and headers (PEP 3333 ``start_response``); return ``write``."""
        if exc_info is not None and exc_info[1] is not None:
            try:
                if self.headers_sent:
                    # PEP 3333: too late to change the head; re-raise the app's error.
                    raise exc_info[1].with_traceback(exc_info[2])
            finally:
                exc_info = None  # PEP 3333: break the frame <-> traceback cycle
        elif self.started:
            raise AppResponseError("start_response() called a second time without exc_info")
        known = None
        if type(headers) is list:
            last = _LAST_HEAD[0]
            if _same_head(last.key, status, headers):
                known = last  # the very objects of the last head: no tuple, hash or compare
            else:
                try:
                    known = _KNOWN_HEADS.get((status, *headers))
                except TypeError:  # an unhashable item (a list pair): validated below
                    pass
                if known is not None:
                    _LAST_HEAD[0] = known
        if known is None:
            known = _validate_head(status, headers)
        self.status = known.status
        self.status_code = known.status_code
        self.headers = known.headers  # a tuple: later changes by the app's list are ignored
        self.content_length = known.content_length
        self.close_connection = known.close
        self.known = known
        self.started = True
        return self.write

    def write(self, data: object) -> None:
        """The legacy PEP 3333 ``write(data)`` callable."""
        if not self.started:
            raise AppResponseError("write() called before start_response()")
        if not isinstance(data, bytes):
            raise AppResponseError(f"write() takes bytes, not {type(data).__name__}")
        self.deliver(data)

    def deliver(self, data: bytes) -> None:
        """Send what the app passed to ``write()``: to the sink given, or overridden by the
        driver (a subclass method, not a bound-method sink: that would be a reference
        cycle per request, left for the garbage collector)."""
        if self._sink is None:
            raise AppResponseError("write() is not supported here")
        self._sink(data)


class KnownHead:
    """A validated response head (status, headers) and what was derived from it."""

    __slots__ = (
        "close",
        "content_length",
        "has_date",
        "has_server",
        "headers",
        "key",
        "status",
        "status_code",
        "wire",
    )

    def __init__(
        self,
        status: str,
        status_code: int,
        headers: tuple[tuple[str, str], ...],
        content_length: int | None,
        close: bool,
    ) -> None:
        self.status = status
        self.status_code = status_code
        self.headers = headers
        self.content_length = content_length
        self.close = close
        self.has_server, self.has_date = own_fields(headers)
        self.wire: bytes | None = None  # the header lines as sent, filled in by the driver
        self.key: tuple[object, ...] = ()  # (status, *pairs) when remembered in _KNOWN_HEADS


def own_fields(headers: HeaderPairs) -> tuple[bool, bool]:
    """Whether the app set its own ``Server`` and ``Date``: the server adds neither then
    (RFC 9110 §6.6.1: one Date field; a second would be a list no client expects)."""
    has_server = has_date = False
    for name, _ in headers:
        if len(name) == 6 and name.lower() == "server":
            has_server = True
        elif len(name) == 4 and name.lower() == "date":
            has_date = True
    return has_server, has_date


_KNOWN_HEADS: Final[dict[tuple[object, ...], KnownHead]] = {}  # (status, *pairs) -> KnownHead
_KNOWN_HEADS_MAX: Final = 2048  # apps with varying values (Content-Length) refill it
# The head found last (threads share it: a stale read only misses the fast path).
_LAST_HEAD: Final[list[KnownHead]] = [KnownHead("", 0, (), None, False)]


def _validate_head(status: object, headers: object) -> KnownHead:
    """Validate a head not seen before; remember it when it is made of exact ``str`` pairs."""
    status_code = parse_status(status)
    normalised, content_length, close = validate_headers(headers)
    assert isinstance(status, str)  # parse_status() checked it
    known = KnownHead(status, status_code, tuple(normalised), content_length, close)
    if type(status) is str and type(headers) is list and _exact(headers):
        if len(_KNOWN_HEADS) >= _KNOWN_HEADS_MAX:
            _KNOWN_HEADS.clear()
        known.key = (status, *headers)
        _KNOWN_HEADS[known.key] = known
    return known


def _same_head(key: tuple[object, ...], status: object, headers: list[object]) -> bool:
    """True when ``status`` and every header pair are the very objects of ``key``.

    Apps pass constant heads, so the same str and tuple objects come back on every
    call: identity holds only for immutable exact str pairs (``key`` comes from a
    head remembered by ``_validate_head``), so the cached validation still applies.
    """
    if len(key) != len(headers) + 1 or key[0] is not status:
        return False
    index = 1
    for item in headers:
        if item is not key[index]:
            return False
        index += 1
    return True


def _exact(headers: list[object]) -> bool:
    # A subclass of tuple or str could compare equal to a cached head yet differ.
    for item in headers:
        if type(item) is not tuple or len(item) != 2:
            return False
        name, value = item
        if type(name) is not str or type(value) is not str:
            return False
    return True


_STATUS_CODES: Final[dict[str, int]] = {}  # validated status strings (apps reuse a handful)
_GOOD_PAIRS: Final[set[tuple[str, str]]] = set()  # validated ordinary (name, value) pairs
_CACHE_MAX: Final = 4096


def parse_status(status: object) -> int:
    """Return the status code of a PEP 3333 status string; raise ``AppResponseError``."""
    if type(status) is not str:  # a subclass could compare equal yet differ: never cached
        return _parse_status(status)
    code = _STATUS_CODES.get(status)
    if code is None:
        code = _parse_status(status)
        if len(_STATUS_CODES) < _CACHE_MAX:
            _STATUS_CODES[status] = code
    return code


def _parse_status(status: object) -> int:
    if not isinstance(status, str):
        raise AppResponseError(f"status must be a str, not {type(status).__name__}")
    match = _STATUS.match(status)
    if match is None:
        raise AppResponseError(
            f"invalid status {status!r}: expected three digits, a space and a reason, "
            "without control characters"
        )
    code = int(match.group(1))
    if not 200 <= code <= 599:
        raise AppResponseError(f"invalid status {status!r}: the code must be in 200..599")
    return code


def validate_headers(headers: object) -> tuple[ResponseHeaders, int | None, bool]:
    """Check the app's headers; return them normalised, the Content-Length and Connection: close."""
    if not isinstance(headers, list | tuple):
        raise AppResponseError(
            f"response headers must be a list of (name, value) tuples, not {type(headers).__name__}"
        )
    kept: ResponseHeaders = []
    content_length: int | None = None
    close = False
    good = _GOOD_PAIRS
    for item in headers:
        if type(item) is tuple and item in good:
            kept.append(item)  # seen before: a valid, ordinary header (the hot path)
            continue
        if not isinstance(item, tuple | list) or len(item) != 2:
            raise AppResponseError(f"response header {item!r} is not a (name, value) pair")
        name, value = item
        if not isinstance(name, str) or _TOKEN.match(name) is None:
            raise AppResponseError(f"invalid response header name {name!r}")
        if not isinstance(value, str) or _BAD_VALUE_CHAR.search(value) is not None:
            raise AppResponseError(f"invalid value for response header {name!r}: {value!r}")
        lower = name.lower()
        if lower in _DROPPED_HOP_BY_HOP or lower in _REFUSED_HOP_BY_HOP:
            close = _hop_by_hop(name, lower, value) or close
            continue
        if lower == "content-length":
            length = _parse_content_length(value)
            if content_length is not None:
                if length != content_length:
                    raise AppResponseError("conflicting Content-Length response headers")
                continue  # RFC 9110 §8.6: identical duplicates are one value
            content_length = length
        elif len(good) < _CACHE_MAX and type(name) is str and type(value) is str:
            good.add((name, value))  # exact str only: a subclass could compare equal yet differ
        kept.append((name, value))
    return kept, content_length, close


def _hop_by_hop(name: str, lower: str, value: str) -> bool:
    """Refuse or drop a hop-by-hop header; return True for ``Connection: close``."""
    if lower in _REFUSED_HOP_BY_HOP:
        raise AppResponseError(
            f"hop-by-hop response header {name!r} is not allowed (PEP 3333); "
            "porch frames the response body itself"
        )
    if lower != "connection":
        return False
    # RFC 9110 §7.6.1: Connection is a comma-separated list of options.
    return any(option.strip().lower() == "close" for option in value.split(","))


def _parse_content_length(value: str) -> int:
    digits = value.strip(" \t")
    # RFC 9110 §8.6: Content-Length = 1*DIGIT (ASCII digits only).
    if not digits.isascii() or not digits.isdigit():
        raise AppResponseError(f"invalid Content-Length response header {value!r}")
    if len(digits) > _MAX_CONTENT_LENGTH_DIGITS:
        raise AppResponseError(f"Content-Length response header {value!r} is too large")
    return int(digits)
