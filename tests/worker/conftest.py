"""Fixtures for the worker socket tests: a real forked worker per test (see live_worker.py)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from live_worker import make_gate, mode, probe, sendfile_calls, serve

__all__ = ["make_gate", "mode", "probe", "sendfile_calls", "serve"]
