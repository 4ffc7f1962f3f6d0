"""The request corpus: loading ``corpus/*/*.http`` files and replaying bytes into H1Parser.

The file format is described in ``corpus/README.md``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, fields
from pathlib import Path

from porch.protocol import h1
from porch.protocol.events import BadRequest, BodyData, Event
from porch.protocol.h1 import H1Limits, H1Parser

CORPUS_DIR = Path(__file__).parent / "corpus"
SPLIT_SEEDS = (1, 2, 3, 5, 8, 13, 21, 34)

_ESCAPE = re.compile(rb"\\(x[0-9A-Fa-f]{2}|[rnt\\]|.|$)")
_SIMPLE_ESCAPES = {b"r": b"\r", b"n": b"\n", b"t": b"\t", b"\\": b"\\"}
_LIMIT_NAMES = frozenset(f.name for f in fields(H1Limits))
_BOOLS = {"true": True, "false": False}


class CorpusFormatError(ValueError):
    """A corpus file does not follow corpus/README.md."""


@dataclass
class ExpectedRequest:
    """What one request of a valid file must parse to."""

    method: str = ""
    path: bytes = b""
    query: bytes = b""
    version: str = ""
    headers: int = -1
    body: bytes = b""
    keep_alive: bool | None = None
    host: bytes | None = None
    check_host: bool = False
    expect_continue: bool = False
    header_lines: list[tuple[bytes, bytes]] = field(default_factory=list)


@dataclass
class CorpusCase:
    """One corpus file: the raw request bytes and the expected outcome."""

    name: str
    valid: bool
    data: bytes
    limits: H1Limits
    requests: list[ExpectedRequest]
    status: int | None = None
    heads_before: int = 0
    xfail: str | None = None


def decode_escapes(text: bytes) -> bytes:
    r"""Turn ``\r \n \t \\ \xHH`` into bytes; any other backslash is an error."""

    def one(match: re.Match[bytes]) -> bytes:
        code = match.group(1)
        if code in _SIMPLE_ESCAPES:
            return _SIMPLE_ESCAPES[code]
        if code[:1] == b"x" and len(code) == 3:
            return bytes([int(code[1:], 16)])
        raise CorpusFormatError(f"unknown escape \\{code.decode('latin-1')}")

    return _ESCAPE.sub(one, text)


def parse_case(name: str, raw: bytes, *, valid: bool) -> CorpusCase:
    """Parse the text of one corpus file."""
    meta: list[tuple[str, str]] = []
    lines = raw.split(b"\n")
    index = 0
    while index < len(lines) and lines[index].startswith(b"#"):
        key, sep, value = lines[index][1:].decode("utf-8").partition(":")
        if sep:
            meta.append((key.strip(), value.strip()))
        index += 1
    for line in lines[index:]:
        if line.rstrip(b" \t") != line:
            raise CorpusFormatError(f"{name}: trailing whitespace on a physical line")
        if any(ch < 0x20 or ch > 0x7E for ch in line):
            raise CorpusFormatError(f"{name}: raw control or non-ASCII byte; escape it")
    data = decode_escapes(b"".join(lines[index:]))
    if not data:
        raise CorpusFormatError(f"{name}: no request bytes")
    case = CorpusCase(name=name, valid=valid, data=data, limits=H1Limits(), requests=[])
    _apply_meta(case, meta)
    _check_complete(case)
    return case


def _apply_meta(case: CorpusCase, meta: list[tuple[str, str]]) -> None:
    current: ExpectedRequest | None = None
    for key, value in meta:
        if key == "describe" or key == "rfc":
            continue
        if key == "limits":
            case.limits = _limits(value)
        elif key == "xfail":
            case.xfail = value
        elif key == "status":
            case.status = int(value)
        elif key == "heads_before":
            case.heads_before = int(value)
        elif key == "request":
            current = ExpectedRequest()
            case.requests.append(current)
        elif current is None:
            raise CorpusFormatError(f"{case.name}: {key!r} before the first 'request' line")
        else:
            _set_expected(case.name, current, key, value)


def _set_expected(name: str, request: ExpectedRequest, key: str, value: str) -> None:
    if key in ("method", "version"):
        setattr(request, key, value)
    elif key in ("path", "query", "body"):
        setattr(request, key, decode_escapes(value.encode("ascii")))
    elif key == "headers":
        request.headers = int(value)
    elif key in ("keep_alive", "expect_continue"):
        request_value = _BOOLS.get(value)
        if request_value is None:
            raise CorpusFormatError(f"{name}: {key} must be true or false")
        setattr(request, key, request_value)
    elif key == "host":
        request.host = None if value == "none" else decode_escapes(value.encode("ascii"))
        request.check_host = True
    elif key == "header":
        header_name, sep, header_value = value.partition(":")
        if not sep:
            raise CorpusFormatError(f"{name}: 'header' needs 'Name: value'")
        request.header_lines.append(
            (header_name.encode("ascii"), decode_escapes(header_value.strip().encode("ascii")))
        )
    else:
        raise CorpusFormatError(f"{name}: unknown key {key!r}")


def _limits(value: str) -> H1Limits:
    settings: dict[str, int] = {}
    for item in value.split():
        key, _, number = item.partition("=")
        if key not in _LIMIT_NAMES:
            raise CorpusFormatError(f"unknown limit {key!r}")
        settings[key] = int(number)
    return H1Limits(**settings)


def _check_complete(case: CorpusCase) -> None:
    if case.valid:
        if case.status is not None or not case.requests:
            raise CorpusFormatError(f"{case.name}: a valid case lists requests, not a status")
        for request in case.requests:
            if not request.method or not request.version or request.headers < 0:
                raise CorpusFormatError(f"{case.name}: method, version and headers are required")
            if request.keep_alive is None or not request.path:
                raise CorpusFormatError(f"{case.name}: path and keep_alive are required")
    elif case.status is None or case.requests:
        raise CorpusFormatError(f"{case.name}: an invalid case has a status and no requests")


def load_corpus(kind: str) -> list[CorpusCase]:
    """Every case in ``corpus/<kind>/``, sorted by file name."""
    directory = CORPUS_DIR / kind
    return [
        parse_case(path.stem, path.read_bytes(), valid=kind == "valid")
        for path in sorted(directory.glob("*.http"))
    ]


# --- replay -------------------------------------------------------------------------


def normalize(events: Iterable[Event]) -> list[Event]:
    """Merge adjacent BodyData: how a body is cut into pieces depends on the split."""
    merged: list[Event] = []
    for event in events:
        if isinstance(event, BodyData):
            if not event.data:
                raise AssertionError("H1Parser emitted an empty BodyData")
            last = merged[-1] if merged else None
            if isinstance(last, BodyData):
                merged[-1] = BodyData(data=last.data + event.data)
                continue
        merged.append(event)
    return merged


def feed_pieces(pieces: Iterable[bytes], limits: H1Limits) -> list[Event]:
    """Feed ``pieces`` in order to one parser; check the BadRequest contract on the way."""
    parser = H1Parser(limits=limits)
    events: list[Event] = []
    for piece in pieces:
        if parser.failed:
            assert parser.feed(piece) == [], "events after a BadRequest"
            continue
        new = parser.feed(piece)
        bad = [i for i, event in enumerate(new) if isinstance(event, BadRequest)]
        assert bad in ([], [len(new) - 1]), f"BadRequest not last: {new}"
        assert parser.failed == bool(bad)
        events.extend(new)
    # The parser's shared placeholders are never filled (they would leak into later feeds).
    assert h1._NO_EVENTS == [] and h1._NO_HEADERS == []
    return normalize(events)


def whole(data: bytes) -> Iterator[bytes]:
    yield data


def byte_by_byte(data: bytes) -> Iterator[bytes]:
    for index in range(len(data)):
        yield data[index : index + 1]


def random_split(data: bytes, seed: int) -> list[bytes]:
    """Cut ``data`` at seeded random points (sometimes many, sometimes one)."""
    rng = random.Random(seed)
    if len(data) < 2:
        return [data]
    count = rng.randint(1, min(len(data) - 1, 1 + len(data) // 4))
    cuts = sorted(rng.sample(range(1, len(data)), count))
    return [data[start:end] for start, end in zip([0, *cuts], [*cuts, len(data)], strict=True)]
