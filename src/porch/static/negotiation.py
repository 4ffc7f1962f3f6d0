"""Content negotiation of static files: media type by extension, encoding by Accept-Encoding.

Media types come from Python's built-in ``mimetypes`` table (never the host's
``/etc/mime.types``, so every machine answers alike) with current web types
added (RFC 9239 ``text/javascript``, fonts, WebAssembly, WebP...). Text types
get ``charset=utf-8``. Unknown extensions are ``application/octet-stream``.
The table is built by :func:`load_media_types` (``StaticFiles`` calls it when
``--static`` is configured): building it makes ``mimetypes`` read the host's
files into its own global table too, a few hundred KiB a worker without
``--static`` need not hold.

A precompressed sibling (``app.js.br``, ``app.js.zst``, ``app.js.gz``) is chosen
by the client's ``Accept-Encoding`` q-values (RFC 9110 §12.5.3) exactly as
``--compress`` chooses its coding (``porch.protocol.accept.choose_coding``): a
coding with ``q=0`` is never chosen, ``*`` stands for every coding not listed,
``identity`` included, ties go to the smaller format (br, then zstd, then
gzip), and the file itself wins when the client ranks ``identity`` (by name or
through ``*``) above every available sibling.
"""

from __future__ import annotations

import os

from porch.protocol.accept import accepted_codings, choose_coding

__all__ = ["CODINGS", "accepted_codings", "choose_coding", "load_media_types", "media_type"]

# Content coding name and the file suffix of its precompressed sibling.
CODINGS: tuple[tuple[str, str], ...] = (("br", ".br"), ("zstd", ".zst"), ("gzip", ".gz"))

_EXTRA_TYPES = {
    ".js": "text/javascript",  # RFC 9239
    ".mjs": "text/javascript",
    ".json": "application/json",
    ".map": "application/json",
    ".webmanifest": "application/manifest+json",
    ".wasm": "application/wasm",
    ".webp": "image/webp",
    ".avif": "image/avif",
    ".woff": "font/woff",
    ".woff2": "font/woff2",
    ".ttf": "font/ttf",
    ".otf": "font/otf",
    ".md": "text/markdown",
    ".gz": "application/gzip",
    ".tgz": "application/gzip",
    ".br": "application/octet-stream",
    ".zst": "application/zstd",
}
_TYPES: dict[str, str] = {}  # filled by load_media_types()
_DEFAULT_TYPE = "application/octet-stream"


def load_media_types() -> dict[str, str]:
    """Build the extension -> media type table (once); return it."""
    if not _TYPES:
        import mimetypes

        _TYPES.update({**mimetypes.MimeTypes().types_map[True], **_EXTRA_TYPES})
    return _TYPES


def media_type(name: str) -> str:
    """The Content-Type of a file named ``name``, by its last extension."""
    found = (_TYPES or load_media_types()).get(os.path.splitext(name)[1].lower(), _DEFAULT_TYPE)
    return found + "; charset=utf-8" if found.startswith("text/") else found
