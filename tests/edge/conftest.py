"""Fixtures for the compression tests: the WSGI harness, and a real forked worker (live_worker)."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "worker"))

from live_worker import make_gate, mode, probe, sendfile_calls, serve

__all__ = ["make_gate", "mode", "probe", "sendfile_calls", "serve"]
