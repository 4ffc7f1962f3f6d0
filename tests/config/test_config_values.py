"""Each kind of setting value: accepted spellings and the error message for bad ones."""

from __future__ import annotations

import pytest

from porch.config import load_config
from porch.config.settings import Config
from porch.config.values import FdBind, TcpBind, UnixBind, parse_bind
from porch.errors import ConfigError


def cli(*argv: str) -> Config:
    return load_config(["app:app", *argv], {}).config


def cli_error(*argv: str) -> str:
    with pytest.raises(ConfigError) as info:
        load_config(["app:app", *argv], {})
    return str(info.value)


@pytest.mark.parametrize(
    ("argv", "field", "expected"),
    [
        (["-w", "4"], "workers", 4),
        (["--workers", " 12 "], "workers", 12),
        (["--max-requests", "0"], "max_requests", 0),
        (["--timeout", "0"], "timeout", 0.0),
        (["-t", "2.5"], "timeout", 2.5),
        (["--keep-alive", "1e1"], "keep_alive", 10.0),
        (["--limit-request-body", "512K"], "limit_request_body", 512 * 1024),
        (["--limit-request-body", "10m"], "limit_request_body", 10 * 1024**2),
        (["--limit-request-body", "1G"], "limit_request_body", 1024**3),
        (["--limit-request-body", "2GiB"], "limit_request_body", 2 * 1024**3),
        (["--limit-request-body", "3 KB"], "limit_request_body", 3 * 1024),
        (["--limit-request-body", "100"], "limit_request_body", 100),
        (["--max-worker-memory", "512M"], "max_worker_memory", 512 * 1024**2),
        (["--umask", "077"], "umask", 0o77),
        (["-m", "0o27"], "umask", 0o27),
        (["--socket-mode", "660"], "socket_mode", 0o660),
        (["--log-level", "WARNING"], "log_level", "warning"),
        (["--log-level", "debug"], "log_level", "debug"),
        (["--preload"], "preload", True),
        (["--preload", "--no-preload"], "preload", False),
        (["--no-server-header"], "server_header", False),
        (["--chdir", "/srv/app"], "chdir", "/srv/app"),
        (["--log-file", "/tmp/e.log"], "error_logfile", "/tmp/e.log"),
        (["--pythonpath", "a", "--pythonpath", "b,c"], "pythonpath", ("a", "b", "c")),
        (["--forwarded-allow-ips", "*"], "forwarded_allow_ips", ("*",)),
        (
            ["--forwarded-allow-ips", "10.0.0.1/8, ::1"],
            "forwarded_allow_ips",
            ("10.0.0.0/8", "::1"),
        ),
        (["-u", "root", "-g", "0"], "user", "root"),
        (["-u", "12345"], "user", "12345"),
    ],
)
def test_cli_values_are_converted(argv: list[str], field: str, expected: object) -> None:
    assert getattr(cli(*argv), field) == expected


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--workers", "abc"], "--workers: expected a whole number from 1 to 1024, got 'abc'"),
        (["-w", "0"], "--workers: expected a whole number from 1 to 1024, got '0'"),
        (["-w", "-3"], "--workers: expected a whole number from 1 to 1024, got '-3'"),
        (["-w", "2.5"], "--workers: expected a whole number from 1 to 1024, got '2.5'"),
        (["-w", "1025"], "--workers: expected a whole number from 1 to 1024, got '1025'"),
        (
            ["-w", "99999999999999999999"],
            "--workers: expected a whole number from 1 to 1024, got '99999999999999999999'",
        ),
        (["--max-requests", "-1"], "--max-requests: expected a whole number >= 0, got '-1'"),
        (["--timeout", "-1"], "--timeout: expected seconds (a number >= 0), got '-1'"),
        (["--timeout", "soon"], "--timeout: expected seconds (a number >= 0), got 'soon'"),
        (["--timeout", "nan"], "--timeout: expected seconds (a number >= 0), got 'nan'"),
        (["--keep-alive", "inf"], "--keep-alive: expected seconds (a number >= 0), got 'inf'"),
        (
            ["--limit-request-body", "lots"],
            "--limit-request-body: expected a size like 512K, 10M or 1G, got 'lots'",
        ),
        (
            ["--limit-request-body=-5M"],
            "--limit-request-body: expected a size like 512K, 10M or 1G, got '-5M'",
        ),
        (
            ["--log-level", "loud"],
            "--log-level: expected one of debug, info, warning, error, critical, got 'loud'",
        ),
        (["--umask", "9"], "--umask: expected an octal file mode like 022 or 0o660"),
        (["--umask", "1777"], "--umask: expected an octal file mode like 022 or 0o660"),
        (["--socket-mode", "rw"], "--socket-mode: expected an octal file mode like 022"),
        (["-u", "no-such-user-porch"], "--user: expected a user name known to this system"),
        (["-g", "no-such-group-porch"], "--group: expected a group name known to this system"),
        (
            ["--forwarded-allow-ips", "10.0.0.300"],
            "--forwarded-allow-ips: expected an IP address, a network like 10.0.0.0/8, or *",
        ),
    ],
)
def test_cli_errors_name_the_flag_and_the_form(argv: list[str], message: str) -> None:
    assert message in cli_error(*argv)


def test_argparse_errors_become_config_errors() -> None:
    assert "unrecognized arguments: --frobnicate" in cli_error("--frobnicate")
    assert "-w/--workers: expected one argument" in cli_error("-w")


def test_flags_cannot_be_abbreviated() -> None:
    assert "unrecognized arguments: --work" in cli_error("--work", "2")


def test_a_missing_app_is_an_error() -> None:
    with pytest.raises(ConfigError) as info:
        load_config(["-w", "2"], {})
    assert str(info.value) == "no application given: porch MODULE:APP (e.g. porch myapp:app)"


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("127.0.0.1:8000", TcpBind("127.0.0.1", 8000)),
        ("LocalHost:80", TcpBind("localhost", 80)),
        ("tcp://0.0.0.0:1", TcpBind("0.0.0.0", 1)),
        (":8000", TcpBind("0.0.0.0", 8000)),
        ("[::1]:8000", TcpBind("::1", 8000)),
        ("[::]:0", TcpBind("::", 0)),
        ("127.0.0.1:65535", TcpBind("127.0.0.1", 65535)),
        ("unix:/run/porch.sock", UnixBind("/run/porch.sock")),
        ("unix:///run/porch.sock", UnixBind("/run/porch.sock")),
        ("unix:relative.sock", UnixBind("relative.sock")),
        ("unix:@abstract", UnixBind("@abstract")),
        ("fd://3", FdBind(3)),
    ],
)
def test_bind_forms(text: str, expected: object) -> None:
    assert parse_bind(text) == expected


def test_bind_addresses_are_stored_normalised() -> None:
    config = cli("-b", ":8000", "-b", "unix:///tmp/p.sock,[0::1]:9000", "-b", "fd://4")
    assert config.bind == ("0.0.0.0:8000", "unix:/tmp/p.sock", "[::1]:9000", "fd://4")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("8000", "expected HOST:PORT, [IPV6]:PORT, :PORT, unix:PATH or fd://N, got '8000'"),
        ("localhost", "expected HOST:PORT"),
        ("localhost:http", "expected HOST:PORT"),
        ("127.0.0.1:70000", "port must be 0-65535, got '127.0.0.1:70000'"),
        ("300.1.1.1:80", "expected HOST:PORT"),
        ("::1:8000", "write IPv6 addresses in brackets like [::1]:8000, got '::1:8000'"),
        ("[nonsense]:80", "expected HOST:PORT"),
        ("bad host:80", "expected HOST:PORT"),
        ("unix:", "expected HOST:PORT"),
        ("fd://x", "expected HOST:PORT"),
    ],
)
def test_bad_bind_forms(text: str, message: str) -> None:
    error = cli_error("--bind", text)
    assert error.startswith("--bind: ")
    assert message in error


def test_the_same_bind_address_twice_is_an_error() -> None:
    assert cli_error("-b", ":80", "-b", "0.0.0.0:80") == "--bind: address given twice: 0.0.0.0:80"


def test_an_empty_bind_list_is_an_error() -> None:
    assert "--bind: expected at least one address" in cli_error("-b", "")
