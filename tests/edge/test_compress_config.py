"""The --compress settings from the command line, PORCH_* variables and the TOML file."""

from __future__ import annotations

from pathlib import Path

import pytest

from porch.config import load_config
from porch.config.settings import DEFAULT_COMPRESS_TYPES
from porch.errors import ConfigError


def test_defaults() -> None:
    config = load_config(["app:app"], {}).config
    assert config.compress is False
    assert config.compress_level == 6
    assert config.compress_min_size == 1024
    assert config.compress_types == DEFAULT_COMPRESS_TYPES
    assert "text/*" in config.compress_types and "application/json" in config.compress_types


def test_from_the_command_line() -> None:
    argv = ["--compress", "--compress-level", "1", "--compress-min-size", "2K"]
    argv += ["--compress-types", "Text/HTML, application/*", "--compress-types", "text/csv"]
    config = load_config([*argv, "app:app"], {}).config
    assert config.compress is True
    assert config.compress_level == 1
    assert config.compress_min_size == 2048
    assert config.compress_types == ("text/html", "application/*", "text/csv")
    assert load_config(["--compress", "--no-compress", "app:app"], {}).config.compress is False


def test_from_the_environment_and_a_file(tmp_path: Path) -> None:
    environ = {"PORCH_COMPRESS": "yes", "PORCH_COMPRESS_TYPES": "text/plain,image/svg+xml"}
    config = load_config(["app:app"], environ).config
    assert config.compress is True
    assert config.compress_types == ("text/plain", "image/svg+xml")
    path = tmp_path / "porch.toml"
    path.write_text('compress = true\ncompress-level = 9\ncompress_min_size = "0"\n')
    config = load_config(["-c", str(path), "app:app"], {}).config
    assert (config.compress, config.compress_level, config.compress_min_size) == (True, 9, 0)


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--compress-level", "0"], "--compress-level: expected a whole number from 1 to 9"),
        (["--compress-level", "10"], "--compress-level: expected a whole number from 1 to 9"),
        (["--compress-level", "fast"], "--compress-level: expected a whole number from 1 to 9"),
        (["--compress-min-size", "-1"], "--compress-min-size: expected a size"),
        (["--compress-types", "html"], "--compress-types: expected a media type like text/html"),
        (["--compress-types", "*/*"], "--compress-types: expected a media type"),
        (["--compress-types", "text/html;q=1"], "--compress-types: expected a media type"),
    ],
)
def test_bad_values_name_the_flag(argv: list[str], message: str) -> None:
    with pytest.raises(ConfigError, match="^" + message.replace("*", r"\*")):
        load_config([*argv, "app:app"], {})


def test_a_toml_level_out_of_range(tmp_path: Path) -> None:
    path = tmp_path / "porch.toml"
    path.write_text("compress_level = 12\n")
    with pytest.raises(ConfigError, match="compress_level: expected a whole number from 1 to 9"):
        load_config(["-c", str(path), "app:app"], {})
