"""Accept-Encoding (RFC 9110 §12.5.3): q-values and the coding to send, for static and compress."""

from __future__ import annotations

import re
from collections.abc import Collection

__all__ = ["PREFERENCE", "accepted_codings", "choose_coding"]

PREFERENCE = ("br", "zstd", "gzip")  # smallest output first: ties in q-value go left

_ALIASES = {"x-gzip": "gzip"}  # RFC 9110 §8.4.1.3
# RFC 9110 §12.4.2: qvalue = ( "0" [ "." 0*3DIGIT ] ) / ( "1" [ "." 0*3("0") ] )
_QVALUE = re.compile(r"0(?:\.[0-9]{0,3})?|1(?:\.0{0,3})?")


def accepted_codings(value: str) -> dict[str, float]:
    """Coding (lower case) -> q-value of an Accept-Encoding value; bad members are skipped."""
    accepted: dict[str, float] = {}
    for member in value.split(","):
        coding, *params = (part.strip(" \t") for part in member.split(";"))
        if not coding:
            continue
        quality = 1.0
        for param in params:
            name, _, raw = param.partition("=")
            if name.strip().lower() == "q":
                raw = raw.strip()
                quality = float(raw) if _QVALUE.fullmatch(raw) else -1.0
        if quality >= 0:
            coding = coding.lower()
            accepted[_ALIASES.get(coding, coding)] = quality
    return accepted


def choose_coding(accept_encoding: str | None, available: Collection[str]) -> str | None:
    """The coding of ``available`` to send, or None for the identity form.

    RFC 9110 §12.5.3: ``q=0`` excludes a coding; ``*`` stands for every coding
    the field does not name (``identity`` included); the highest q wins and ties
    go to the smaller format (:data:`PREFERENCE`). ``identity`` wins only when the
    client ranks it (by name or through ``*``) above every coding available.
    Without the field the identity form is sent, as nginx does: old clients send none.
    """
    if accept_encoding is None or not available:
        return None  # most static files have no sibling: skip parsing the field
    accepted = accepted_codings(accept_encoding)
    if not accepted:
        return None  # an empty field: RFC 9110 §12.5.3, only identity is acceptable
    star = accepted.get("*", 0.0)
    best, best_quality = None, 0.0
    for coding in PREFERENCE:
        if coding in available:
            quality = accepted.get(coding, star)
            if quality > best_quality:
                best, best_quality = coding, quality
    identity = accepted.get("identity", accepted.get("*"))
    if best is not None and identity is not None and identity > best_quality:
        return None
    return best
