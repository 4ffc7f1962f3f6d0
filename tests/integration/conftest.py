"""Fixtures for the integration tests: real frameworks served by a real forked worker.

The worker fixtures live with the worker socket tests (``tests/worker/live_worker.py``).
"""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "worker"))

from live_worker import make_gate, mode, probe, sendfile_calls, serve

__all__ = ["make_gate", "mode", "probe", "sendfile_calls", "serve"]
