"""The TOML config file: keys, value types, errors with file and line, --print-config round trip."""

from __future__ import annotations

import string
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from porch.config import Config, dump_config_toml, load_config
from porch.errors import ConfigError


def load_file(tmp_path: Path, text: str | bytes) -> Config:
    path = tmp_path / "porch.toml"
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text)
    return load_config(["-c", str(path), "app:app"], {}).config


def file_error(tmp_path: Path, text: str | bytes) -> str:
    with pytest.raises(ConfigError) as info:
        load_file(tmp_path, text)
    return str(info.value).replace(str(tmp_path), "DIR")


def test_keys_accept_dashes_and_underscores(tmp_path: Path) -> None:
    config = load_file(tmp_path, 'max-requests = 100\nlimit_request_body = "10M"\n')
    assert (config.max_requests, config.limit_request_body) == (100, 10 * 1024**2)


def test_toml_value_types(tmp_path: Path) -> None:
    config = load_file(
        tmp_path,
        "workers = 4\n"
        "timeout = 2.5\n"
        "keep-alive = 0\n"
        "limit_request_body = 4096\n"
        'umask = "027"\n'
        'socket_mode = "0o660"\n'
        "reload = true\n"
        'server_header = "off"\n'
        'bind = ["[::1]:80", ":81"]\n'
        'pythonpath = "a,b"\n'
        'log_level = "ERROR"\n'
        'chdir = "/srv"\n',
    )
    assert config.workers == 4
    assert config.timeout == 2.5
    assert config.keep_alive == 0.0
    assert config.limit_request_body == 4096
    assert (config.umask, config.socket_mode) == (0o27, 0o660)
    assert (config.reload, config.server_header) == (True, False)
    assert config.bind == ("[::1]:80", "0.0.0.0:81")
    assert config.pythonpath == ("a", "b")
    assert config.log_level == "error"
    assert config.chdir == "/srv"


@pytest.mark.parametrize(
    ("text", "message"),
    [
        (
            "\n\nworker = 4\n",
            "config file DIR/porch.toml, line 3: unknown setting 'worker' "
            "(did you mean 'workers'?)",
        ),
        ("[server]\nworkers = 4\n", "line 1: unknown setting 'server'"),
        ("workers = 4\nworkers-x = 1\n", "line 2: unknown setting 'workers-x'"),
        ("workers = 0\n", "line 1: workers: expected a whole number from 1 to 1024, got 0"),
        ("workers = true\n", "workers: expected a whole number from 1 to 1024, got True"),
        ("workers = 2.0\n", "workers: expected a whole number from 1 to 1024, got 2.0"),
        ('workers = "x"\n', "workers: expected a whole number from 1 to 1024, got 'x'"),
        ("workers = 5000\n", "workers: expected a whole number from 1 to 1024, got 5000"),
        ("timeout = -1\n", "timeout: expected seconds (a number >= 0), got -1"),
        ("timeout = inf\n", "timeout: expected seconds (a number >= 0), got inf"),
        ("umask = 0o22\n", 'umask: expected an octal file mode as a string like "022", got 18'),
        ("preload = 1\n", "preload: expected true or false"),
        ("bind = [80]\n", "bind: expected an array of strings, got [80]"),
        ('bind = ["80"]\n', "bind: expected HOST:PORT"),
        ("chdir = 3\n", "chdir: expected a string, got 3"),
        ('log_level = "loud"\n', "log_level: expected one of debug, info"),
        ("max_requests = 1\nmax-requests = 2\n", "'max-requests' sets 'max_requests' a second"),
    ],
)
def test_file_errors_name_the_file_line_and_key(tmp_path: Path, text: str, message: str) -> None:
    error = file_error(tmp_path, text)
    assert error.startswith("config file DIR/porch.toml")
    assert message in error


def test_invalid_toml_names_the_file_and_line(tmp_path: Path) -> None:
    error = file_error(tmp_path, "workers = 4\ntimeout = = 3\n")
    assert error.startswith("config file DIR/porch.toml: invalid TOML: ")
    assert "line 2" in error


def test_non_utf8_file(tmp_path: Path) -> None:
    assert "not UTF-8 text" in file_error(tmp_path, b'chdir = "\xff"\n')


def test_missing_file(tmp_path: Path) -> None:
    with pytest.raises(ConfigError) as info:
        load_config(["-c", str(tmp_path / "nope.toml"), "app:app"], {})
    assert str(info.value) == (
        f"config file {tmp_path}/nope.toml: cannot read it: No such file or directory"
    )


def test_unreadable_file_is_a_directory(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="cannot read it"):
        load_config(["-c", str(tmp_path), "app:app"], {})


def round_trip(config: Config, tmp_path: Path) -> Config:
    path = tmp_path / "printed.toml"
    path.write_text(dump_config_toml(config), encoding="utf-8")
    return load_config(["--print-config", "-c", str(path)], {}).config


def test_print_config_of_the_defaults_round_trips(tmp_path: Path) -> None:
    config = load_config(["--print-config"], {}).config
    assert round_trip(config, tmp_path) == config


def test_print_config_of_every_setting_changed_round_trips(tmp_path: Path) -> None:
    argv = [
        *("--chdir", "/srv", "--pythonpath", "lib,src", "--preload", "--reload"),
        *("-b", "[::1]:1", "-b", "unix:/tmp/x y.sock", "--backlog", "5", "--socket-mode", "600"),
        *("-w", "3", "--threads", "8", "--worker-connections", "7", "-t", "0.25"),
        *("--graceful-timeout", "1", "--max-requests", "9", "--max-requests-jitter", "2"),
        *("--max-worker-memory", "300M", "-u", "root", "-g", "0", "-m", "0", "-p", "/tmp/p"),
        *("--keep-alive", "0", "--limit-request-line", "100", "--limit-request-fields", "3"),
        *("--limit-request-field-size", "99", "--limit-request-body", "0"),
        *("--body-buffer-size", "1", "--no-request-buffering"),
        *("--header-timeout", "1e-3", "--body-timeout", "1"),
        *("--write-timeout", "1", "--forwarded-allow-ips", "*", "--no-server-header"),
        *("--proxy-protocol", "--proxy-allow-from", "10.0.0.0/8"),
        *("--static", f"/assets={tmp_path}", "--static-follow-symlinks"),
        *("--static-cache-control", "no-cache", "--static-index", "index.html"),
        *("--max-client-connections", "4", "--rate-limit", "10", "--rate-limit-burst", "5"),
        *("--request-queue", "50", "--forwarded-headers", "forwarded"),
        *("--compress", "--compress-level", "9", "--compress-min-size", "0"),
        *("--compress-types", "text/html,application/*"),
        *("--access-logfile", "-", "--access-logformat", 'json "quoted" \\ \t%(h)s'),
        *("--error-logfile", "/tmp/e", "--log-level", "critical", "--log-config", "l.toml"),
        "app:factory('x', n=1)",
    ]
    config = load_config(argv, {}).config
    changed = [
        name
        for name in Config.__dataclass_fields__
        if getattr(config, name) != getattr(Config(), name)
    ]
    assert sorted(changed) == sorted(Config.__dataclass_fields__), "a setting was not changed"
    assert round_trip(config, tmp_path) == config


_text = st.text(st.characters(exclude_categories=["Cs"]), min_size=1, max_size=30).filter(
    lambda text: text.strip() != ""
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    app=_text,
    logformat=_text,
    pythonpath=st.lists(st.text(string.printable, min_size=1, max_size=10), max_size=3),
    timeout=st.floats(min_value=0, max_value=1e9, allow_nan=False, allow_infinity=False),
    body=st.integers(min_value=0, max_value=2**62),
    mode=st.integers(min_value=0, max_value=0o777),
)
def test_print_config_round_trips_any_values(
    tmp_path: Path,
    app: str,
    logformat: str,
    pythonpath: list[str],
    timeout: float,
    body: int,
    mode: int,
) -> None:
    config = Config(
        app=app,
        access_logformat=logformat,
        pythonpath=tuple(item.strip() for item in pythonpath),
        timeout=timeout,
        limit_request_body=body,
        socket_mode=mode,
    )
    assert round_trip(config, tmp_path) == config
