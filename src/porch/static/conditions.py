"""Validators (ETag, Last-Modified) and conditional requests: RFC 9110 §8.8 and §13.

ETags are strong, ``"<mtime_ns hex>-<size hex>"`` like nginx's (which uses
seconds), with ``-br``, ``-zstd`` or ``-gzip`` appended for a precompressed
variant, so each representation has its own tag (RFC 9110 §8.8.3). Strong tags
let ``If-Range`` work (§13.1.5 needs a strong comparison); they assume a file's
content does not change without its mtime or size changing, which holds unless
a file is rewritten with the same size within one tick of the file system's
clock.

``Last-Modified`` is never later than the response's ``Date`` (RFC 9110
§8.8.2.1): a file modified in the future, or after the second the worker's
cached ``Date`` states, gets the ``Date``'s time instead. Such a capped date
moves on with the clock, so it never validates a cached copy for long; the
ETag, made from the real mtime, still does.
"""

from __future__ import annotations

import functools
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass

from porch.protocol.dates import format_http_date, parse_http_date

__all__ = [
    "RequestFields",
    "Validators",
    "collect_fields",
    "entity_tag",
    "evaluate_preconditions",
    "http_date",
    "if_range_allows",
    "parse_http_date",
]

# RFC 9110 §8.8.3: entity-tag = [ "W/" ] DQUOTE *etagc DQUOTE; etagc excludes DQUOTE.
_ENTITY_TAG = re.compile(r'[ \t]*(W/)?("[^"\x00-\x20\x7f]*")[ \t]*(?:,|$)')

# Request fields read here. List fields (RFC 9110 §5.3) may be repeated and are
# joined; the others must appear once: a repeated one is kept as "" (invalid).
_LIST_FIELDS = {
    b"if-match": "if_match",
    b"if-none-match": "if_none_match",
    b"accept-encoding": "accept_encoding",
}
_SINGLE_FIELDS = {
    b"if-modified-since": "if_modified_since",
    b"if-unmodified-since": "if_unmodified_since",
    b"range": "range",
    b"if-range": "if_range",
}


@dataclass(slots=True)
class RequestFields:
    """The request header fields that steer a static response (latin-1 text)."""

    if_match: str | None = None
    if_none_match: str | None = None
    if_modified_since: str | None = None
    if_unmodified_since: str | None = None
    range: str | None = None
    if_range: str | None = None
    accept_encoding: str | None = None


def collect_fields(headers: Sequence[tuple[bytes, bytes]]) -> RequestFields:
    """Pick the conditional, range and content-negotiation fields out of raw headers."""
    fields = RequestFields()
    for name, raw_value in headers:
        lname = name.lower()
        attr = _LIST_FIELDS.get(lname)
        if attr is not None:
            value = raw_value.decode("latin-1").strip()
            earlier = getattr(fields, attr)
            setattr(fields, attr, value if earlier is None else f"{earlier}, {value}")
            continue
        attr = _SINGLE_FIELDS.get(lname)
        if attr is not None:
            repeated = getattr(fields, attr) is not None
            setattr(fields, attr, "" if repeated else raw_value.decode("latin-1").strip())
    return fields


@dataclass(frozen=True, slots=True)
class Validators:
    """The validators of one representation (RFC 9110 §8.8)."""

    etag: str  # with its double quotes
    last_modified: int  # whole seconds since the epoch, never after ``date``
    date_is_strong: bool  # §8.8.2.2: modified at least a second before ``date``
    date: int  # the response's Date, whole seconds since the epoch


def entity_tag(stat: os.stat_result, coding: str | None) -> str:
    """The strong ETag of a file's content, per content coding (see module docstring)."""
    suffix = f"-{coding}" if coding else ""
    return f'"{stat.st_mtime_ns:x}-{stat.st_size:x}{suffix}"'


def validators_of(stat: os.stat_result, coding: str | None, date: int) -> Validators:
    """ETag and Last-Modified of a file served with content coding ``coding``.

    ``date`` is the time the response's Date field states (the worker's cached one).
    """
    return Validators(
        etag=entity_tag(stat, coding),
        # RFC 9110 §8.8.2.1: an origin MUST NOT send a Last-Modified later than its Date.
        last_modified=min(int(stat.st_mtime), date),
        date_is_strong=date - stat.st_mtime >= 1.0,
        date=date,
    )


@functools.lru_cache(maxsize=1024)  # files' mtimes repeat on every request
def http_date(seconds: int) -> str:
    """IMF-fixdate, the only date form senders may generate (RFC 9110 §5.6.7)."""
    return format_http_date(seconds)


def _entity_tags(text: str) -> list[tuple[bool, str]] | None:
    """``(weak, opaque)`` pairs of a list of entity-tags; None if malformed."""
    tags: list[tuple[bool, str]] = []
    position = 0
    text = text.strip()
    while position < len(text):
        if text[position] in ", \t":  # empty list elements are allowed (RFC 9110 §5.6.1)
            position += 1
            continue
        match = _ENTITY_TAG.match(text, position)
        if match is None:
            return None
        tags.append((match[1] is not None, match[2]))
        position = match.end()
    return tags


def _matches(field: str, etag: str, *, weak: bool) -> bool | None:
    """Whether an If-Match/If-None-Match value matches ``etag``; None if it is invalid."""
    if field.strip() == "*":
        return True  # the file exists, so it has a current representation
    tags = _entity_tags(field)
    if not tags:
        return None
    # RFC 9110 §8.8.3.2: strong comparison needs both tags strong; weak ignores W/.
    return any(opaque == etag and (weak or not is_weak) for is_weak, opaque in tags)


def evaluate_preconditions(fields: RequestFields, validators: Validators) -> int | None:
    """412 or 304 when a precondition says so, else None (RFC 9110 §13.2.2, GET/HEAD)."""
    # Step 1 and 2: If-Match, else If-Unmodified-Since.
    if fields.if_match is not None:
        if _matches(fields.if_match, validators.etag, weak=False) is False:
            return 412
    elif fields.if_unmodified_since is not None:
        date = parse_http_date(fields.if_unmodified_since)
        if date is not None and validators.last_modified > date:
            return 412
    # Step 3 and 4: If-None-Match wins over If-Modified-Since (§13.1.2, §13.1.3).
    if fields.if_none_match is not None:
        if _matches(fields.if_none_match, validators.etag, weak=True):
            return 304
    elif fields.if_modified_since is not None:
        date = parse_http_date(fields.if_modified_since)
        # A date later than the response's cannot be a Last-Modified porch sent (it
        # is capped at the Date): ignore it, as Apache does. Otherwise a client holding
        # a 2030 date would get 304 whatever the file became.
        if date is not None and validators.last_modified <= date <= validators.date:
            return 304
    return None


def if_range_allows(fields: RequestFields, validators: Validators) -> bool:
    """Whether the Range field may be honoured (RFC 9110 §13.1.5): no If-Range, or it holds."""
    value = fields.if_range
    if value is None:
        return True
    tags = _entity_tags(value) if value.endswith('"') else None
    if tags is not None and len(tags) == 1:
        is_weak, opaque = tags[0]
        return not is_weak and opaque == validators.etag  # strong comparison only
    date = parse_http_date(value)
    return date is not None and validators.date_is_strong and date == validators.last_modified
