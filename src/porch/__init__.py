"""porch: a production server for Python WSGI applications."""

__version__ = "0.1.0"
__all__ = ["__version__"]
