"""Parsing of Accept-Encoding (RFC 9110 §12.5.3), shared by static files and compression."""

from __future__ import annotations

import re

__all__ = ["accepted_codings"]

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
