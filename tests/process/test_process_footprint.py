"""What a worker holds: optional features' modules are imported only when configured.

Every module the master imports is copied into each worker, and a worker's own
imports stay for its whole life, so a module a feature needs is imported where
the feature is set up (or first used), never at the top of a module every run
loads. The idle RSS of a worker is one of the benchmark's numbers.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

from conftest import Porch

StartPorch = Callable[..., Porch]
APP = "procapp:app"

# Module -> the only thing in porch that may bring it into a worker.
OPTIONAL_MODULES = {
    "tomllib": "a config file (-c) or a TOML --log-config",
    "difflib": "the suggestion for an unknown key in a config file",
    "logging.config": "--log-config",
    "logging.handlers": "--log-config",
    "porch.static": "--static",
    "mimetypes": "--static",
    "tempfile": "a request body past --body-buffer-size (spilled to a file)",
    "shutil": "nothing: argparse's default help formatter imports it for the terminal width",
    "encodings.idna": "nothing: getaddrinfo() with a str host loads the codec",
    "email.utils": "nothing: porch formats HTTP-dates itself (porch.protocol.dates)",
    "http": "an error response (reason phrases)",
    "datetime": "the json access log format",
    "pathlib": "nothing",
    "secrets": "nothing",
}


def _interpreter_modules() -> set[str]:
    """What this Python imports before any porch code (site hooks, .pth files)."""
    out = subprocess.run(
        [sys.executable, "-c", "import sys; print(*sys.modules, sep='\\n')"],
        env={**os.environ, "PYTHONPATH": ""}, capture_output=True, text=True, check=True,
    )  # fmt: skip
    return set(out.stdout.splitlines())


def _worker_modules(porch: Porch) -> set[str]:
    with porch.client() as client:
        response = client.get("/modules")
    assert response.status_code == 200
    return set(response.text.splitlines())


def test_a_default_worker_imports_no_optional_feature(start_porch: StartPorch) -> None:
    porch = start_porch(APP, "-b", "127.0.0.1:0", "-w", "1")
    porch.wait_ready()
    loaded = (_worker_modules(porch) - _interpreter_modules()) & OPTIONAL_MODULES.keys()
    assert not loaded, "\n".join(f"{name}: for {OPTIONAL_MODULES[name]}" for name in loaded)


def test_configured_features_import_what_they_need(start_porch: StartPorch, tmp_path: Path) -> None:
    site = tmp_path / "site"
    site.mkdir()
    (site / "app.css").write_text("body { color: red }\n")
    config_file = tmp_path / "porch.toml"
    config_file.write_text('workers = 1\nbind = ["127.0.0.1:0"]\n')
    porch = start_porch(APP, "-c", str(config_file), "--static", f"/static={site}")
    porch.wait_ready()
    assert {"tomllib", "porch.static", "mimetypes"} <= _worker_modules(porch)
    with porch.client() as client:
        response = client.get("/static/app.css")
    assert response.status_code == 200
    assert response.headers["content-type"] == "text/css; charset=utf-8"
    assert response.headers["last-modified"].endswith(" GMT")
