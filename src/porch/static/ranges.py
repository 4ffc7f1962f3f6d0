"""Byte ranges of static files: parse ``Range``, and porch's rule for several ranges (RFC 9110 §14).

The multi-range rule, chosen so that a range request can never make porch send
or buffer more than a plain GET of the same file would:

1. A ``Range`` field with more than :data:`MAX_RANGES` ranges, bad syntax, a
   unit other than ``bytes``, or on an empty file is ignored: 200, whole file
   (RFC 9110 §14.2 lets a server ignore Range).
2. Unsatisfiable ranges are dropped (§14.1.1); none left: 416 with
   ``Content-Range: bytes */SIZE``.
3. The ranges left must be in ascending order and must not overlap, else the
   field is ignored (200, whole file; §14.2 names overlapping and unordered
   ranges as signs of abuse).
4. Ranges closer than :data:`COALESCE_GAP_BYTES` are merged (§15.3.7.2 allows it).
   One range left: a plain 206 with ``Content-Range``.
5. Several: a ``multipart/byteranges`` 206, built in memory, only when that
   body is no larger than the file itself and at most
   :data:`MULTIPART_MAX_BYTES`; otherwise 200, whole file (sent with sendfile).
   ``files.py`` also answers 200 instead of multipart for a precompressed
   variant, where a multipart body's content coding would be ambiguous.
"""

from __future__ import annotations

import itertools
import os
import re

__all__ = [
    "COALESCE_GAP_BYTES",
    "MAX_RANGES",
    "MULTIPART_MAX_BYTES",
    "Span",
    "multipart_fits",
    "multipart_frame",
    "new_boundary",
    "plan_ranges",
]

MAX_RANGES = 16
COALESCE_GAP_BYTES = 80  # about the size of one part's header lines
MULTIPART_MAX_BYTES = 1024 * 1024

Span = tuple[int, int]  # first and last byte position, inclusive (RFC 9110 §14.1.1)
_SPEC = re.compile(r"([0-9]*)-([0-9]*)")
_HUGE = 10**18  # stands in for numbers too long to convert; no file is that large


def plan_ranges(value: str, size: int) -> tuple[Span, ...] | None:
    """The spans to send for ``Range: value`` on a file of ``size`` bytes.

    None: ignore the field and send the whole file (200). ``()``: 416. One or
    more spans: 206; several spans are ascending, disjoint and apart by at
    least :data:`COALESCE_GAP_BYTES`. See the module docstring for the rule.
    """
    specs = _parse(value)
    if specs is None or size == 0:
        return None
    spans = [span for span in (_resolve(spec, size) for spec in specs) if span is not None]
    if not spans:
        return ()
    for previous, span in itertools.pairwise(spans):
        if span[0] <= previous[1]:
            return None  # overlapping or out of order
    return _coalesce(spans)


def _parse(value: str) -> list[tuple[int | None, int | None]] | None:
    """``(first, last)`` pairs of ``bytes=...``; None for anything to ignore (rule 1)."""
    unit, equals, range_set = value.partition("=")
    if not equals or unit.strip().lower() != "bytes":  # range units are case-insensitive
        return None
    specs: list[tuple[int | None, int | None]] = []
    for item in range_set.split(","):
        item = item.strip(" \t")
        if not item:
            continue  # RFC 9110 §5.6.1: empty list elements do not count
        match = _SPEC.fullmatch(item)
        if match is None or match[0] == "-":
            return None
        first, last = _number(match[1]), _number(match[2])
        if first is not None and last is not None and first > last:
            return None  # §14.1.1: an invalid range-spec makes the field invalid
        specs.append((first, last))
        if len(specs) > MAX_RANGES:
            return None
    return specs or None


def _number(digits: str) -> int | None:
    if not digits:
        return None
    return _HUGE if len(digits) > 18 else int(digits)


def _resolve(spec: tuple[int | None, int | None], size: int) -> Span | None:
    """The satisfiable span of one range-spec, or None (RFC 9110 §14.1.2, §14.1.3)."""
    first, last = spec
    if first is None:  # suffix-range: the last N bytes
        assert last is not None
        return (max(0, size - last), size - 1) if last > 0 else None
    if first >= size:
        return None
    return (first, size - 1 if last is None else min(last, size - 1))


def _coalesce(spans: list[Span]) -> tuple[Span, ...]:
    merged = [spans[0]]
    for first, last in spans[1:]:
        if first - merged[-1][1] - 1 < COALESCE_GAP_BYTES:
            merged[-1] = (merged[-1][0], last)
        else:
            merged.append((first, last))
    return tuple(merged)


def new_boundary() -> str:
    """A fresh multipart boundary (random, so file content cannot forge a delimiter)."""
    # secrets.token_hex(12) is exactly this; importing secrets costs hashlib and hmac.
    return "porch-" + os.urandom(12).hex()


def multipart_frame(
    spans: tuple[Span, ...], size: int, content_type: str, boundary: str
) -> tuple[list[bytes], bytes]:
    """The header block before each part, and the closing delimiter (RFC 9110 §14.6)."""
    heads = []
    for index, (first, last) in enumerate(spans):
        lead = "--" if index == 0 else "\r\n--"
        heads.append(
            f"{lead}{boundary}\r\nContent-Type: {content_type}\r\n"
            f"Content-Range: bytes {first}-{last}/{size}\r\n\r\n".encode("latin-1")
        )
    return heads, f"\r\n--{boundary}--\r\n".encode("latin-1")


def multipart_fits(length: int, size: int) -> bool:
    """Rule 5: a multipart body of ``length`` bytes is sent for a file of ``size`` bytes."""
    return length <= min(size, MULTIPART_MAX_BYTES)
