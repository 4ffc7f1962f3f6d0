"""Precedence: defaults < TOML file < PORCH_* environment < CLI; WEB_CONCURRENCY and PORT."""

from __future__ import annotations

from pathlib import Path

import pytest

from porch.config import load_config
from porch.config.settings import Config
from porch.errors import ConfigError


@pytest.fixture
def config_file(tmp_path: Path) -> Path:
    path = tmp_path / "porch.toml"
    path.write_text(
        'app = "file:app"\n'
        "workers = 2\n"
        "timeout = 12\n"
        "keep_alive = 3\n"
        'bind = ["unix:/tmp/file.sock"]\n'
        "preload = true\n"
    )
    return path


def load(argv: list[str], environ: dict[str, str] | None = None) -> Config:
    return load_config(argv, environ or {}).config


def test_defaults_apply_when_nothing_is_given() -> None:
    assert load(["app:app"]) == Config(app="app:app")


def test_each_layer_overrides_the_one_below(config_file: Path) -> None:
    environ = {"PORCH_WORKERS": "3", "PORCH_TIMEOUT": "13", "PORCH_APP": "env:app"}
    config = load(["-c", str(config_file), "--workers", "4", "cli:app"], environ)
    assert config.workers == 4  # file 2 < env 3 < CLI 4
    assert config.timeout == 13.0  # file 12 < env 13, no flag
    assert config.keep_alive == 3.0  # file only
    assert config.preload is True  # file only
    assert config.graceful_timeout == 30.0  # default
    assert config.app == "cli:app"  # the positional argument beats PORCH_APP and the file


def test_env_and_file_provide_the_app(config_file: Path) -> None:
    assert load(["-c", str(config_file)]).app == "file:app"
    assert load(["-c", str(config_file)], {"PORCH_APP": "env:app"}).app == "env:app"


def test_cli_false_overrides_file_true(config_file: Path) -> None:
    assert load(["-c", str(config_file), "--no-preload"]).preload is False
    assert load(["-c", str(config_file)], {"PORCH_PRELOAD": "no"}).preload is False


def test_a_later_list_replaces_an_earlier_one(config_file: Path) -> None:
    environ = {"PORCH_BIND": "127.0.0.1:9000, 127.0.0.1:9001"}
    assert load(["-c", str(config_file)], environ).bind == ("127.0.0.1:9000", "127.0.0.1:9001")
    config = load(["-c", str(config_file), "-b", ":7000"], environ)
    assert config.bind == ("0.0.0.0:7000",)


def test_porch_config_names_the_file_and_c_overrides_it(config_file: Path, tmp_path: Path) -> None:
    other = tmp_path / "other.toml"
    other.write_text("workers = 9\n")
    result = load_config(["app:app"], {"PORCH_CONFIG": str(config_file)})
    assert (result.config.workers, result.config_file) == (2, str(config_file))
    result = load_config(["-c", str(other), "app:app"], {"PORCH_CONFIG": str(config_file)})
    assert (result.config.workers, result.config_file) == (9, str(other))


def test_empty_environment_variables_count_as_unset() -> None:
    config = load(["app:app"], {"PORCH_WORKERS": "", "PORCH_ACCESS_LOGFILE": " "})
    assert config.workers == 1
    assert config.access_logfile is None


def test_environment_errors_name_the_variable() -> None:
    with pytest.raises(ConfigError, match=r"^PORCH_TIMEOUT: expected seconds \(a number >= 0\)"):
        load(["app:app"], {"PORCH_TIMEOUT": "-1"})
    with pytest.raises(ConfigError, match=r"^PORCH_PRELOAD: expected true or false"):
        load(["app:app"], {"PORCH_PRELOAD": "maybe"})


@pytest.mark.parametrize(
    ("text", "expected"), [("true", True), ("1", True), ("YES", True), ("off", False)]
)
def test_environment_booleans(text: str, expected: bool) -> None:
    assert load(["app:app"], {"PORCH_RELOAD": text}).reload is expected


def test_web_concurrency_sets_workers_only_when_nothing_else_does(config_file: Path) -> None:
    environ = {"WEB_CONCURRENCY": "6"}
    assert load(["app:app"], environ).workers == 6
    assert load(["app:app", "-w", "2"], environ).workers == 2
    assert load(["app:app"], {**environ, "PORCH_WORKERS": "3"}).workers == 3
    assert load(["-c", str(config_file)], environ).workers == 2


@pytest.mark.parametrize("value", ["many", "5000"])
def test_a_bad_web_concurrency_names_the_variable(value: str) -> None:
    message = r"^WEB_CONCURRENCY: expected a whole number from 1 to 1024"
    with pytest.raises(ConfigError, match=message):
        load(["app:app"], {"WEB_CONCURRENCY": value})


def test_port_sets_the_default_bind_only(config_file: Path) -> None:
    environ = {"PORT": "5000"}
    assert load(["app:app"], environ).bind == ("0.0.0.0:5000",)
    assert load(["app:app", "-b", "127.0.0.1:1"], environ).bind == ("127.0.0.1:1",)
    assert load(["app:app"], {**environ, "PORCH_BIND": ":2"}).bind == ("0.0.0.0:2",)
    assert load(["-c", str(config_file)], environ).bind == ("unix:/tmp/file.sock",)


@pytest.mark.parametrize("port", ["http", "70000", "-1"])
def test_a_bad_port_names_the_variable(port: str) -> None:
    with pytest.raises(ConfigError, match=r"^PORT: expected a port number 0-65535"):
        load(["app:app"], {"PORT": port})


def test_print_config_needs_no_app_but_check_config_does() -> None:
    result = load_config(["--print-config"], {})
    assert (result.print_config, result.check_config, result.config.app) == (True, False, None)
    with pytest.raises(ConfigError, match="no application given"):
        load_config(["--print-config", "--check-config"], {})
    assert load_config(["--check-config", "a:b"], {}).check_config is True
