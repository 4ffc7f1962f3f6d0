"""The screenshot decoder undoes each PNG row filter (spec §9.2), checked against a
forward filter written here, so a wrong colour count means a wrong page, not a wrong decoder."""

from __future__ import annotations

import random
import struct
import zlib

import pytest

from tests.real.png_image import SIGNATURE, decode_png, encode_png, png_chunk


def _paeth(left: int, up: int, upper_left: int) -> int:
    estimate = left + up - upper_left
    pa, pb, pc = abs(estimate - left), abs(estimate - up), abs(estimate - upper_left)
    return left if pa <= pb and pa <= pc else up if pb <= pc else upper_left


def _filtered(kind: int, row: bytes, up: bytes, bpp: int) -> bytes:
    out = bytearray()
    for i, value in enumerate(row):
        left = row[i - bpp] if i >= bpp else 0
        upper_left = up[i - bpp] if i >= bpp else 0
        predictor = [0, left, up[i], (left + up[i]) >> 1, _paeth(left, up[i], upper_left)][kind]
        out.append((value - predictor) & 0xFF)
    return bytes(out)


@pytest.mark.timeout(10)
@pytest.mark.parametrize("colour_type, channels", [(2, 3), (6, 4)])
def test_every_filter_decodes_to_the_original_pixels(colour_type: int, channels: int) -> None:
    rng = random.Random(colour_type)
    width, height = 13, 10
    rows = [bytes(rng.randrange(256) for _ in range(width * channels)) for _ in range(height)]
    raw, previous = bytearray(), bytes(width * channels)
    for y, row in enumerate(rows):
        kind = y % 5  # every filter, each row filtered against the previous one
        raw += bytes([kind]) + _filtered(kind, row, previous, channels)
        previous = row
    header = struct.pack(">IIBBBBB", width, height, 8, colour_type, 0, 0, 0)
    idat = zlib.compress(bytes(raw))
    png = SIGNATURE + png_chunk(b"IHDR", header)
    png += png_chunk(b"IDAT", idat[:7]) + png_chunk(b"IDAT", idat[7:]) + png_chunk(b"IEND", b"")
    image = decode_png(png)
    assert (image.width, image.height, image.channels) == (width, height, channels)
    assert list(image.rows) == rows


@pytest.mark.timeout(10)
def test_encoded_image_is_one_colour() -> None:
    image = decode_png(encode_png(20, 10, (255, 0, 0)))
    assert image.colour_counts() == {(255, 0, 0): 200}
    assert image.pixel(19, 9) == (255, 0, 0)
