"""Run a WSGI callable under bjoern: ``bjoern_serve.py MODULE:ATTR HOST PORT``.

bjoern has no command line of its own; this is the whole launcher (one process,
one thread, bjoern's defaults).
"""

from __future__ import annotations

import importlib
import sys

import bjoern  # type: ignore[import-not-found]  # no type information


def main() -> None:
    target, host, port = sys.argv[1], sys.argv[2], int(sys.argv[3])
    module_name, _, attr = target.partition(":")
    app = getattr(importlib.import_module(module_name), attr)
    bjoern.run(app, host, port)


if __name__ == "__main__":
    main()
