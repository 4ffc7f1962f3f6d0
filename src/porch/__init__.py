"""porch: a production server for Python WSGI applications."""

__version__ = "0.1.0"
__all__ = ["__version__", "compiled"]


def compiled() -> bool:
    """True when the per-request modules run compiled with mypyc (see setup.py)."""
    from importlib.util import find_spec

    spec = find_spec("porch.worker.connection")  # without importing it
    return spec is not None and spec.origin is not None and not spec.origin.endswith(".py")


def build_name() -> str:
    """``porch 0.1.0 (compiled)`` or ``porch 0.1.0 (pure Python)``: what --version prints."""
    return f"porch {__version__} ({'compiled' if compiled() else 'pure Python'})"
