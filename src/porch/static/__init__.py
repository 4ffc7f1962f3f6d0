"""Static files served before the app: safe path resolution and nginx-like responses."""

from porch.static.files import StaticFiles
from porch.static.responses import FileBody, StaticResponse

__all__ = ["FileBody", "StaticFiles", "StaticResponse"]
