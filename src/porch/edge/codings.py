"""Content codings for on-the-fly compression: streaming encoders, and which ones are available.

The Accept-Encoding choice (``choose_coding``) is ``porch.protocol.accept``'s,
shared with static files' precompressed siblings so both negotiate alike.

gzip (``zlib``) is always available; br and zstd only when their libraries
import: ``brotli`` for br, ``zstandard`` or Python 3.14's ``compression.zstd``
for zstd. None of them is a dependency of porch.

Every encoder can flush after each piece (``Z_SYNC_FLUSH`` and its
equivalents) so a streamed response, such as server-sent events, can be
decoded by the client as soon as each piece arrives.
"""

from __future__ import annotations

import importlib
import zlib
from collections.abc import Callable
from types import ModuleType
from typing import Protocol

from porch.protocol.accept import PREFERENCE, accepted_codings, choose_coding

__all__ = [
    "MAX_LEVEL",
    "MIN_LEVEL",
    "PREFERENCE",
    "Encoder",
    "accepted_codings",
    "available_codings",
    "choose_coding",
    "new_encoder",
]

MIN_LEVEL, MAX_LEVEL = 1, 9  # the gzip scale of --compress-level

# --compress-level is gzip's 1..9; br and zstd get the level of similar cost.
# brotli 4-5 and zstd 3 are what CDNs use for dynamic content: at gzip 6's speed
# they compress better; their top levels are far too slow per request.
_BROTLI_QUALITY = {1: 1, 2: 2, 3: 2, 4: 3, 5: 3, 6: 4, 7: 5, 8: 6, 9: 7}
_ZSTD_LEVEL = {1: 1, 2: 1, 3: 2, 4: 2, 5: 3, 6: 3, 7: 5, 8: 7, 9: 9}
# A window of 1 MiB bounds the memory of each response being compressed; for
# zstd it also stays under the 8 MB that RFC 9659 §3 lets decoders refuse past.
_WINDOW_LOG = 20
_GZIP_WBITS = 16 + zlib.MAX_WBITS  # a gzip member (RFC 1952), not a bare zlib stream


class Encoder(Protocol):
    """One response's compressor; ``finish()`` ends the stream and is called once."""

    def compress(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes:
        """Emit everything given so far, decodable now; the stream goes on."""
        ...

    def finish(self) -> bytes: ...


class _Gzip:
    __slots__ = ("_z",)

    def __init__(self, level: int) -> None:
        self._z = zlib.compressobj(level, zlib.DEFLATED, _GZIP_WBITS)

    def compress(self, data: bytes) -> bytes:
        return self._z.compress(data)

    def flush(self) -> bytes:
        return self._z.flush(zlib.Z_SYNC_FLUSH)

    def finish(self) -> bytes:
        return self._z.flush(zlib.Z_FINISH)


class _BrotliCompressor(Protocol):
    def process(self, data: bytes) -> bytes: ...

    def flush(self) -> bytes: ...

    def finish(self) -> bytes: ...


class _Brotli:
    __slots__ = ("_c",)

    def __init__(self, module: ModuleType, level: int) -> None:
        new: Callable[..., _BrotliCompressor] = module.Compressor
        self._c = new(quality=_BROTLI_QUALITY[level], lgwin=_WINDOW_LOG)

    def compress(self, data: bytes) -> bytes:
        return self._c.process(data)

    def flush(self) -> bytes:
        return self._c.flush()

    def finish(self) -> bytes:
        return self._c.finish()


class _ZstdObject(Protocol):
    def compress(self, data: bytes) -> bytes: ...

    def flush(self, flush_mode: int = ...) -> bytes: ...


class _Zstandard:
    """zstd through the ``zstandard`` package."""

    __slots__ = ("_block", "_end", "_obj")

    def __init__(self, module: ModuleType, level: int) -> None:
        params = module.ZstdCompressionParameters.from_level(
            _ZSTD_LEVEL[level], window_log=_WINDOW_LOG
        )
        # A ZstdCompressor is not thread-safe: one per response.
        self._obj: _ZstdObject = module.ZstdCompressor(compression_params=params).compressobj()
        self._block: int = module.COMPRESSOBJ_FLUSH_BLOCK
        self._end: int = module.COMPRESSOBJ_FLUSH_FINISH

    def compress(self, data: bytes) -> bytes:
        return self._obj.compress(data)

    def flush(self) -> bytes:
        return self._obj.flush(self._block)

    def finish(self) -> bytes:
        return self._obj.flush(self._end)


class _StdlibZstdCompressor(Protocol):
    def compress(self, data: bytes, mode: int = ...) -> bytes: ...

    def flush(self, mode: int = ...) -> bytes: ...


class _StdlibZstd:  # pragma: no cover - Python 3.14+
    """zstd through Python 3.14's ``compression.zstd``."""

    __slots__ = ("_block", "_c", "_end")

    def __init__(self, module: ModuleType, level: int) -> None:
        cls = module.ZstdCompressor
        options = {module.CompressionParameter.window_log: _WINDOW_LOG}
        self._c: _StdlibZstdCompressor = cls(level=_ZSTD_LEVEL[level], options=options)
        self._block: int = cls.FLUSH_BLOCK
        self._end: int = cls.FLUSH_FRAME

    def compress(self, data: bytes) -> bytes:
        return self._c.compress(data)

    def flush(self) -> bytes:
        return self._c.flush(self._block)

    def finish(self) -> bytes:
        return self._c.flush(self._end)


def _import(name: str) -> ModuleType | None:
    try:
        return importlib.import_module(name)
    except ImportError:
        return None


def _factories() -> dict[str, Callable[[int], Encoder]]:
    found: dict[str, Callable[[int], Encoder]] = {}
    brotli = _import("brotli")
    if brotli is not None and hasattr(brotli, "Compressor"):
        found["br"] = lambda level: _Brotli(brotli, level)
    zstandard = _import("zstandard")
    stdlib_zstd = _import("compression.zstd")
    if zstandard is not None:
        found["zstd"] = lambda level: _Zstandard(zstandard, level)
    elif stdlib_zstd is not None:  # pragma: no cover - Python 3.14+
        found["zstd"] = lambda level: _StdlibZstd(stdlib_zstd, level)
    found["gzip"] = _Gzip
    return found


_FACTORIES = _factories()


def available_codings() -> tuple[str, ...]:
    """The codings this process can produce, in server preference order."""
    return tuple(coding for coding in PREFERENCE if coding in _FACTORIES)


def new_encoder(coding: str, level: int) -> Encoder:
    """A fresh encoder for ``coding`` at ``level`` on the gzip scale 1..9."""
    return _FACTORIES[coding](level)
