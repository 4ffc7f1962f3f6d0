"""Accept-Encoding negotiation (RFC 9110 §12.5.3) and the encoders of every available coding."""

from __future__ import annotations

import zlib

import pytest
from hypothesis import given
from hypothesis import strategies as st
from wsgi_harness import decode

from porch.edge.codings import (
    PREFERENCE,
    accepted_codings,
    available_codings,
    choose_coding,
    new_encoder,
)

ALL = ("br", "zstd", "gzip")


@pytest.mark.parametrize(
    ("accept", "available", "chosen"),
    [
        # no field, an empty field: identity (RFC 9110 §12.5.3; nginx does the same)
        (None, ALL, None),
        ("", ALL, None),
        (" , ", ALL, None),
        # plain lists: the server's preference among equals
        ("gzip", ALL, "gzip"),
        ("gzip, deflate, br", ALL, "br"),
        ("gzip, deflate, br, zstd", ALL, "br"),
        ("gzip, zstd", ALL, "zstd"),
        ("gzip, deflate, br", ("gzip",), "gzip"),
        ("br", ("zstd", "gzip"), None),
        ("deflate", ALL, None),
        ("compress", ALL, None),
        # q-values decide over preference
        ("br;q=0.5, gzip", ALL, "gzip"),
        ("br;q=0.5, gzip;q=0.8, zstd;q=0.9", ALL, "zstd"),
        ("gzip;q=1.0, br;q=1", ALL, "br"),
        ("gzip;q=0.001", ALL, "gzip"),
        ("gzip; q=0.5", ALL, "gzip"),
        ("gzip;Q=0.5", ALL, "gzip"),
        # q=0 excludes
        ("gzip;q=0", ALL, None),
        ("gzip;q=0.000", ALL, None),
        ("br;q=0, gzip", ALL, "gzip"),
        ("gzip;q=0, br;q=0, zstd;q=0", ALL, None),
        # *: every coding not named
        ("*", ALL, "br"),
        ("*", ("gzip",), "gzip"),
        ("*;q=0", ALL, None),
        ("br;q=0, *", ALL, "zstd"),
        ("br;q=0, zstd;q=0, *", ALL, "gzip"),
        ("gzip;q=0.5, *;q=0.1", ("gzip",), "gzip"),
        ("*;q=0, gzip", ALL, "gzip"),
        # identity: wins only when ranked above every coding we have
        ("identity", ALL, None),
        ("identity, gzip", ALL, "gzip"),
        ("gzip, identity;q=0", ALL, "gzip"),
        ("identity;q=0", ALL, None),
        ("gzip;q=0.5, identity", ALL, None),
        ("gzip;q=0.5, identity;q=0.4", ALL, "gzip"),
        ("gzip;q=0.5", ALL, "gzip"),  # identity not ranked: acceptable, not preferred
        ("gzip;q=0.5, *;q=0.8", ("gzip",), None),  # * ranks identity at 0.8
        ("gzip;q=0.5, *;q=0", ("gzip",), "gzip"),
        # aliases and case
        ("x-gzip", ALL, "gzip"),
        ("GZIP", ALL, "gzip"),
        ("Br", ALL, "br"),
        # invalid q-values drop their member only (RFC 9110 §12.4.2)
        ("gzip;q=2", ALL, None),
        ("gzip;q=-1", ALL, None),
        ("gzip;q=0.5000", ALL, None),
        ("gzip;q=abc", ALL, None),
        ("gzip;q=1.5, br", ALL, "br"),
        ("gzip;q=", ALL, None),
        # other parameters are ignored
        ("gzip;level=9", ALL, "gzip"),
    ],
)
def test_choose_coding(accept: str | None, available: tuple[str, ...], chosen: str | None) -> None:
    assert choose_coding(accept, available) == chosen


def test_accepted_codings_parses_members() -> None:
    assert accepted_codings("gzip;q=0.5, BR, *;q=0, x-gzip;q=0.2, ;q=1") == {
        "gzip": 0.2,  # the later member of the same coding wins
        "br": 1.0,
        "*": 0.0,
    }


@given(st.text(max_size=60))
def test_any_field_value_chooses_an_available_coding_or_none(value: str) -> None:
    assert choose_coding(value, ("gzip", "br")) in (None, "gzip", "br")


def test_gzip_is_always_available_and_order_is_preference() -> None:
    codings = available_codings()
    assert "gzip" in codings
    assert list(codings) == [coding for coding in PREFERENCE if coding in codings]


@pytest.mark.parametrize("coding", available_codings())
@pytest.mark.parametrize("level", range(1, 10))
def test_every_coding_round_trips_at_every_level(coding: str, level: int) -> None:
    data = b"".join(b"%d compressible words and numbers " % n for n in range(2000))
    encoder = new_encoder(coding, level)
    out = encoder.compress(data[:1000]) + encoder.flush() + encoder.compress(data[1000:])
    out += encoder.finish()
    assert decode(coding, out) == data
    assert len(out) < len(data) // 3


def test_gzip_flush_makes_each_piece_decodable_at_once() -> None:
    encoder = new_encoder("gzip", 6)
    decoder = zlib.decompressobj(wbits=31)
    for n in range(5):
        piece = b"event: tick\ndata: %d\n\n" % n
        assert decoder.decompress(encoder.compress(piece) + encoder.flush()) == piece
    assert decoder.decompress(encoder.finish()) == b""
    assert decoder.eof


def test_brotli_flush_makes_each_piece_decodable_at_once() -> None:
    brotli = pytest.importorskip("brotli")
    encoder = new_encoder("br", 6)
    decoder = brotli.Decompressor()
    for n in range(5):
        piece = b"event: tick\ndata: %d\n\n" % n
        assert decoder.process(encoder.compress(piece) + encoder.flush()) == piece
    decoder.process(encoder.finish())
    assert decoder.is_finished()


def test_zstd_flush_makes_each_piece_decodable_at_once() -> None:
    zstandard = pytest.importorskip("zstandard")
    encoder = new_encoder("zstd", 6)
    decoder = zstandard.ZstdDecompressor().decompressobj()
    for n in range(5):
        piece = b"event: tick\ndata: %d\n\n" % n
        assert decoder.decompress(encoder.compress(piece) + encoder.flush()) == piece
    assert decoder.decompress(encoder.finish()) == b""
    assert decoder.eof
