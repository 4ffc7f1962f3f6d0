"""Type aliases for the WSGI interface (PEP 3333), shared by the wsgi and worker layers.

PEP 3333 forces ``Any`` in two places: environ values (str, bool, tuple,
streams, a class) and the ``exc_info`` traceback shape the app hands back.
These aliases are structurally compatible with ``wsgiref.types``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from types import TracebackType
from typing import Any, Protocol, TypeAlias

Environ: TypeAlias = dict[str, Any]
"""The PEP 3333 environ: native-str keys, values of several types."""

# Same shape as typeshed's, so apps typed with ``wsgiref.types`` fit ``WSGIApp``.
ExcInfo: TypeAlias = (
    tuple[type[BaseException], BaseException, TracebackType] | tuple[None, None, None]
)
"""What ``sys.exc_info()`` returns; the third argument of ``start_response``."""

WriteCallable: TypeAlias = Callable[[bytes], object]
"""The legacy ``write(data)`` callable returned by ``start_response``."""

ResponseHeaders: TypeAlias = list[tuple[str, str]]

HeaderPairs: TypeAlias = Sequence[tuple[str, str]]
"""Response headers as porch holds them once validated (read-only; a tuple)."""


class StartResponse(Protocol):
    """The ``start_response(status, headers, exc_info=None)`` callable (PEP 3333)."""

    def __call__(
        self,
        status: str,
        headers: ResponseHeaders,
        exc_info: ExcInfo | None = ...,
        /,
    ) -> WriteCallable: ...


WSGIApp: TypeAlias = Callable[[Environ, StartResponse], Iterable[bytes]]
"""A WSGI application object."""

__all__ = [
    "Environ",
    "ExcInfo",
    "HeaderPairs",
    "ResponseHeaders",
    "StartResponse",
    "WSGIApp",
    "WriteCallable",
]
