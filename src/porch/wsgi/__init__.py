"""The PEP 3333 layer: app loading, environ, wsgi.input, start_response, file_wrapper."""

from porch.wsgi.environ import base_environ, build_environ
from porch.wsgi.file_wrapper import FileWrapper
from porch.wsgi.input import EMPTY_INPUT, BufferedInput, EmptyInput
from porch.wsgi.loader import load_app, prepare_import_path
from porch.wsgi.response import StartResponse

__all__ = [
    "EMPTY_INPUT",
    "BufferedInput",
    "EmptyInput",
    "FileWrapper",
    "StartResponse",
    "base_environ",
    "build_environ",
    "load_app",
    "prepare_import_path",
]
