"""Build porch, compiling the per-request modules with mypyc where a C compiler is present.

The compiled modules are the same source files, compiled to C extension modules
(see docs/architecture.md, "The compiled core"); the ``.py`` files ship too. With
no C compiler or no Python headers none of them is built and porch runs as
pure Python, only slower (``porch --version`` tells which). ``PORCH_COMPILE=0``
skips the compilation on purpose. An editable install (``pip install -e``) is
never compiled, so edits to the source take effect without a rebuild.
"""

from __future__ import annotations

import os
import sys

from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

# The modules every request runs through. Code in them cannot be monkeypatched
# from outside and their classes cannot be subclassed by interpreted code.
COMPILED_MODULES = [
    "src/porch/protocol/dates.py",
    "src/porch/protocol/events.py",
    "src/porch/protocol/framing.py",
    "src/porch/protocol/h1.py",
    "src/porch/protocol/h1_rules.py",
    "src/porch/proxy/forwarded.py",
    "src/porch/wsgi/environ.py",
    "src/porch/wsgi/input.py",
    "src/porch/wsgi/response.py",
    "src/porch/worker/acceptor.py",
    "src/porch/worker/body_stream.py",
    "src/porch/worker/connection.py",
    "src/porch/worker/context.py",
    "src/porch/worker/dispatch.py",
    "src/porch/worker/limits.py",
    "src/porch/worker/output.py",
    "src/porch/worker/sendfile.py",
    "src/porch/worker/threads.py",
]


def compiled_extensions() -> list[Extension]:
    if os.environ.get("PORCH_COMPILE", "1") == "0" or "editable_wheel" in sys.argv:
        return []
    try:
        from mypyc.build import mypycify
    except ImportError:  # built without the build requirements: pure Python
        return []
    extensions: list[Extension] = mypycify(COMPILED_MODULES, opt_level="3", group_name="porch")
    return extensions


class OptionalBuildExt(build_ext):
    """All or nothing: the compiled modules need one shared library, so when any
    extension fails to build (no compiler, no Python headers) none is shipped."""

    def run(self) -> None:
        try:
            super().run()
        except Exception as exc:  # CCompilerError, a missing gcc, a missing Python.h, ...
            for extension in self.extensions:
                built = self.get_ext_fullpath(extension.name)
                if os.path.exists(built):
                    os.remove(built)
            self.warn(f"porch: compiled core not built ({exc}); installing pure Python")


setup(ext_modules=compiled_extensions(), cmdclass={"build_ext": OptionalBuildExt})
