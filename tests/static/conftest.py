"""Fixtures for the static tests (see static_client.py): pure, no sockets."""

from __future__ import annotations

import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from static_client import client, open_fds, site

__all__ = ["client", "open_fds", "site"]
