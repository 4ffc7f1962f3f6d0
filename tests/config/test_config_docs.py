"""docs/settings.md is generated from the settings and must not go stale."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import porch
from porch.config.docs import REGENERATE_COMMAND, render_settings_markdown
from porch.config.loaders import all_settings

SETTINGS_DOC = Path(__file__).resolve().parents[2] / "docs" / "settings.md"
SRC_DIR = Path(porch.__file__).resolve().parent.parent


def test_settings_doc_is_up_to_date() -> None:
    committed = SETTINGS_DOC.read_text(encoding="utf-8")
    assert committed == render_settings_markdown(), (
        f"docs/settings.md is stale; regenerate it from the repository root with: "
        f"{REGENERATE_COMMAND}"
    )


def test_every_setting_is_documented_with_its_names() -> None:
    text = render_settings_markdown()
    for setting in all_settings():
        assert f"### `{setting.name}`" in text
        assert setting.meta.help in text
        for flag in setting.meta.flags + setting.negative_flags:
            assert f"`{flag}" in text
        if setting.env_var:
            assert f"`{setting.env_var}`" in text
    for name in ("WEB_CONCURRENCY", "PORT", "PORCH_CONFIG", "--print-config", "--check-config"):
        assert name in text


def test_python_m_prints_the_doc() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "porch.config.docs"],
        capture_output=True,
        text=True,
        timeout=30,
        env={"PYTHONPATH": str(SRC_DIR)},
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout == render_settings_markdown()
