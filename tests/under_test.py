"""The sys.path entry holding the porch under test, so subprocesses run that same build.

It is ``src/`` for a source checkout, or a directory holding a compiled build
(``scripts/test`` runs the suite once against each).
"""

from __future__ import annotations

from pathlib import Path

import porch

PORCH_PATH = str(Path(porch.__file__).resolve().parents[1])
