"""A minimal PNG encoder and decoder (8-bit RGB/RGBA, no interlace): enough to write a
test image and to read Chromium's screenshots without an imaging library."""

from __future__ import annotations

import struct
import zlib
from collections import Counter
from dataclasses import dataclass

SIGNATURE = b"\x89PNG\r\n\x1a\n"
_CHANNELS = {2: 3, 6: 4}  # PNG colour type -> bytes per pixel at bit depth 8


def png_chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))


def encode_png(width: int, height: int, rgb: tuple[int, int, int]) -> bytes:
    """A ``width`` x ``height`` image of one opaque colour (colour type 2, filter 0)."""
    row = b"\x00" + bytes(rgb) * width
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        SIGNATURE
        + png_chunk(b"IHDR", header)
        + png_chunk(b"IDAT", zlib.compress(row * height))
        + png_chunk(b"IEND", b"")
    )


@dataclass(frozen=True, slots=True)
class Image:
    width: int
    height: int
    channels: int
    rows: tuple[bytes, ...]

    def colour_counts(self) -> Counter[tuple[int, int, int]]:
        """How many pixels have each RGB colour (alpha ignored)."""
        step = self.channels
        counts: Counter[tuple[int, int, int]] = Counter()
        for row in self.rows:
            counts.update(zip(row[0::step], row[1::step], row[2::step], strict=True))
        return counts

    def pixel(self, x: int, y: int) -> tuple[int, int, int]:
        start = x * self.channels
        red, green, blue = self.rows[y][start : start + 3]
        return red, green, blue


def decode_png(data: bytes) -> Image:
    """Decode an 8-bit, non-interlaced RGB or RGBA PNG; anything else is an AssertionError."""
    assert data.startswith(SIGNATURE), "not a PNG"
    offset, idat, header = len(SIGNATURE), [], b""
    while offset < len(data):
        (length,) = struct.unpack_from(">I", data, offset)
        kind = data[offset + 4 : offset + 8]
        body = data[offset + 8 : offset + 8 + length]
        offset += 12 + length
        if kind == b"IHDR":
            header = body
        elif kind == b"IDAT":
            idat.append(body)
        elif kind == b"IEND":
            break
    width, height, depth, colour, _, _, interlace = struct.unpack(">IIBBBBB", header)
    assert depth == 8 and colour in _CHANNELS and interlace == 0, (depth, colour, interlace)
    channels = _CHANNELS[colour]
    raw = zlib.decompress(b"".join(idat))
    stride = width * channels
    rows: list[bytes] = []
    previous = bytes(stride)
    for y in range(height):
        start = y * (stride + 1)
        line = _unfilter(raw[start], raw[start + 1 : start + 1 + stride], previous, channels)
        rows.append(line)
        previous = line
    return Image(width=width, height=height, channels=channels, rows=tuple(rows))


def _unfilter(kind: int, line: bytes, up: bytes, bpp: int) -> bytes:
    """Undo one row's filter (PNG spec §9.2)."""
    if kind == 0:
        return line
    if kind == 2:
        return bytes((a + b) & 0xFF for a, b in zip(line, up, strict=True))
    out = bytearray(line)
    for i in range(len(out)):
        left = out[i - bpp] if i >= bpp else 0
        if kind == 1:
            out[i] = (out[i] + left) & 0xFF
        elif kind == 3:
            out[i] = (out[i] + ((left + up[i]) >> 1)) & 0xFF
        elif kind == 4:
            upper_left = up[i - bpp] if i >= bpp else 0
            estimate = left + up[i] - upper_left
            pa, pb, pc = abs(estimate - left), abs(estimate - up[i]), abs(estimate - upper_left)
            predictor = left if pa <= pb and pa <= pc else up[i] if pb <= pc else upper_left
            out[i] = (out[i] + predictor) & 0xFF
        else:
            raise AssertionError(f"unknown PNG filter {kind}")
    return bytes(out)
