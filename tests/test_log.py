"""Tests of porch.log: logger setup, dictConfig files, access-log atoms and escaping.

Reopening the log files (USR1) is tested in ``test_log_reopen.py``.
"""

from __future__ import annotations

import base64
import dataclasses
import json
import logging
import os
import re
import time
from collections.abc import Iterator
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from porch import access_log
from porch.access_log import AccessLog
from porch.config.settings import DEFAULT_ACCESS_LOG_FORMAT, Config
from porch.errors import ConfigError
from porch.log import ACCESS_LOGGER, ERROR_LOGGER, setup_logging
from tests.logging_reset import reset_loggers

ERROR_LINE = re.compile(r"\[\d{4}-\d\d-\d\d \d\d:\d\d:\d\d [+-]\d{4}\] \[(\d+)\] \[(\w+)\] (.*)")
CLF_TIME = re.compile(r"\[\d\d/[A-Z][a-z]{2}/\d{4}:\d\d:\d\d:\d\d [+-]\d{4}\]")


@pytest.fixture(autouse=True)
def _restore_logging() -> Iterator[None]:
    """Undo whatever a test configured on porch's loggers."""
    yield
    reset_loggers(ERROR_LOGGER, ACCESS_LOGGER)


def environ(**extra: Any) -> dict[str, Any]:
    base: dict[str, Any] = {
        "REQUEST_METHOD": "GET",
        "SCRIPT_NAME": "",
        "PATH_INFO": "/p",
        "QUERY_STRING": "q=1",
        "SERVER_PROTOCOL": "HTTP/1.1",
        "REMOTE_ADDR": "192.0.2.7",
        "HTTP_REFERER": "http://ref.example/",
        "HTTP_USER_AGENT": "curl/8.0",
    }
    base.update(extra)
    return base


def access(fmt: str, **config: Any) -> AccessLog:
    return AccessLog(Config(access_logfile="-", access_logformat=fmt, **config))


def line_for(fmt: str, env: dict[str, Any] | None = None, **kwargs: Any) -> str:
    args: dict[str, Any] = {
        "status": "200 OK",
        "response_headers": [("Content-Type", "text/plain"), ("X-Id", "abc")],
        "body_bytes": 13,
        "duration_s": 1.2345678,
    }
    args.update(kwargs)
    return access(fmt).format(environ() if env is None else env, **args)


def unescape(text: str) -> str:
    """Invert the text format's escaping (\\", \\\\, \\xNN)."""
    return re.sub(
        r'\\(x[0-9a-f]{2}|"|\\)',
        lambda m: chr(int(m.group(1)[1:], 16)) if m.group(1)[0] == "x" else m.group(1),
        text,
    )


# --- atoms ---------------------------------------------------------------------


@pytest.mark.parametrize(
    ("atom", "expected"),
    [
        ("h", "192.0.2.7"),
        ("l", "-"),
        ("u", "-"),
        ("r", "GET /p?q=1 HTTP/1.1"),
        ("m", "GET"),
        ("U", "/p"),
        ("q", "q=1"),
        ("H", "HTTP/1.1"),
        ("s", "200"),
        ("B", "13"),
        ("b", "13"),
        ("f", "http://ref.example/"),
        ("a", "curl/8.0"),
        ("T", "1"),
        ("M", "1234"),
        ("D", "1234567"),
        ("L", "1.234568"),
        ("p", str(os.getpid())),
        ("{x-id}o", "abc"),
        ("{X-ID}o", "abc"),
        ("{missing}o", "-"),
        ("{User-Agent}i", "curl/8.0"),
        ("{missing}i", "-"),
        ("{REMOTE_ADDR}e", "192.0.2.7"),
        ("{missing}e", "-"),
    ],
)
def test_each_atom(atom: str, expected: str) -> None:
    assert line_for(f"%({atom})s") == expected


def test_time_atom_is_request_start_in_common_log_format(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    finished = time.mktime((2026, 11, 24, 10, 0, 5, 0, 0, -1)) + 0.25
    monkeypatch.setattr(access_log.time, "time", lambda: finished)
    text = line_for("%(t)s", duration_s=6.0)  # started 10:00:00 local time (-0.75 s)
    assert CLF_TIME.fullmatch(text)
    assert text.startswith("[24/Nov/2026:09:59:59 ")
    tm = time.localtime(finished)
    offset = tm.tm_gmtoff
    sign = "+" if offset >= 0 else "-"
    offset = abs(offset)
    assert text.endswith(f" {sign}{offset // 3600:02d}{offset % 3600 // 60:02d}]")
    # Served from the per-second cache on the next request of the same second.
    assert line_for("%(t)s", duration_s=6.1) == text


def test_clf_clock_uses_english_month_and_offset() -> None:
    moment = time.mktime((2026, 11, 24, 10, 0, 0, 0, 0, -1))
    assert access_log._ClfClock()(moment).startswith("[24/Nov/2026:10:00:00 ")


def test_bytes_dash_when_empty_and_content_headers() -> None:
    env = environ(CONTENT_TYPE="application/json", CONTENT_LENGTH="7")
    assert line_for("%(b)s %(B)s", body_bytes=0) == "- 0"
    assert line_for("%({content-type}i)s %({Content-Length}i)s", env) == "application/json 7"


def test_request_line_without_query_and_with_script_name() -> None:
    env = environ(SCRIPT_NAME="/app", PATH_INFO="/x", QUERY_STRING="")
    assert line_for("%(r)s|%(U)s|%(q)s", env) == "GET /app/x HTTP/1.1|/app/x|"


def test_request_line_prefers_raw_uri() -> None:
    env = environ(RAW_URI="/a%20b?c=%22", PATH_INFO="/a b")
    assert line_for("%(r)s", env) == "GET /a%20b?c=%22 HTTP/1.1"


def test_user_from_basic_auth() -> None:
    token = base64.b64encode(b"alice:secret").decode()
    assert line_for("%(u)s", environ(HTTP_AUTHORIZATION=f"Basic {token}")) == "alice"
    assert line_for("%(u)s", environ(HTTP_AUTHORIZATION="Bearer abc")) == "-"
    assert line_for("%(u)s", environ(HTTP_AUTHORIZATION="Basic !!!not-base64")) == "-"
    evil = base64.b64encode(b'ev"il\n:pw').decode()
    assert line_for("%(u)s", environ(HTTP_AUTHORIZATION=f"basic {evil}")) == 'ev\\"il\\x0a'


def test_response_header_repeated_values_are_joined() -> None:
    headers = [("Set-Cookie", "a=1"), ("set-cookie", "b=2")]
    assert line_for("%({set-cookie}o)s", response_headers=headers) == "a=1, b=2"


def test_default_format_matches_gunicorn_shape() -> None:
    text = line_for(DEFAULT_ACCESS_LOG_FORMAT)
    pattern = (
        r'192\.0\.2\.7 - - \[[^]]+\] "GET /p\?q=1 HTTP/1\.1" 200 13 '
        r'"http://ref\.example/" "curl/8\.0"'
    )
    assert re.fullmatch(pattern, text)


def test_literal_percent_and_text_around_atoms() -> None:
    assert line_for("100%% %(s)s done") == "100% 200 done"


def test_only_the_used_atoms_touch_the_environ() -> None:
    class Recording(dict[str, Any]):
        seen: set[str]

        def get(self, key: str, default: Any = None) -> Any:
            self.seen.add(key)
            return super().get(key, default)

        def __getitem__(self, key: str) -> Any:
            self.seen.add(key)
            return super().__getitem__(key)

    env = Recording(environ())
    env.seen = set()
    assert line_for("%(s)s %(B)s %(M)s", env) == "200 13 1234"
    assert env.seen == set()
    line_for("%(a)s", env)
    assert env.seen == {"HTTP_USER_AGENT"}


@pytest.mark.parametrize("fmt", ["%(zz)s", "%(h)d", "%(h)s %", "%({x}z)s"])
def test_bad_format_names_the_flag(fmt: str) -> None:
    with pytest.raises(ConfigError, match="--access-logformat"):
        access(fmt)


def test_pid_atom_follows_fork() -> None:
    access_log = access("%(p)s")
    read_fd, write_fd = os.pipe()
    child = os.fork()
    if child == 0:  # pragma: no cover - runs in the child
        try:
            os.write(write_fd, access_log.format(environ(), "200 OK", [], 0, 0.0).encode())
        finally:
            os._exit(0)
    os.close(write_fd)
    reported = os.read(read_fd, 100).decode()
    os.close(read_fd)
    os.waitpid(child, 0)
    assert reported == str(child)


# --- escaping --------------------------------------------------------------------

FORGERY = '"\n[fake] line'


def test_header_cannot_forge_a_line() -> None:
    text = line_for(DEFAULT_ACCESS_LOG_FORMAT, environ(HTTP_USER_AGENT=FORGERY))
    assert "\n" not in text
    assert text.endswith('"\\"\\x0a[fake] line"')
    # The quoted user-agent field still ends where the real one does.
    assert text.count('"') - text.count('\\"') == 6


@pytest.mark.parametrize(
    ("raw", "escaped"),
    [
        ("plain", "plain"),
        ('a"b', 'a\\"b'),
        ("a\\b", "a\\\\b"),
        ("a\r\nb", "a\\x0d\\x0ab"),
        ("\x1b[31mred", "\\x1b[31mred"),
        ("\x7f", "\\x7f"),
        ("caf\xc3\xa9", "caf\\xc3\\xa9"),  # PEP 3333 latin-1 form of UTF-8 bytes
        ("\u2028", "\\xe2\\x80\\xa8"),  # beyond latin-1: its UTF-8 bytes
        ("\ud800", "\\xed\\xa0\\x80"),
    ],
)
def test_escape(raw: str, escaped: str) -> None:
    assert access_log.escape(raw) == escaped


@pytest.mark.parametrize(
    "key", ["PATH_INFO", "QUERY_STRING", "HTTP_REFERER", "HTTP_USER_AGENT", "REMOTE_ADDR"]
)
def test_every_client_value_is_escaped(key: str) -> None:
    fmt = '%(h)s "%(r)s" %(U)s %(q)s "%(f)s" "%(a)s" %({x-evil}i)s %({PATH_INFO}e)s'
    env = environ(**{key: FORGERY}, HTTP_X_EVIL=FORGERY)
    text = line_for(fmt, env)
    assert "\n" not in text
    assert '\\"\\x0a[fake] line' in text


def test_response_header_values_are_escaped() -> None:
    text = line_for("%({location}o)s", response_headers=[("Location", FORGERY)])
    assert text == '\\"\\x0a[fake] line'


latin1_text = st.text(st.characters(max_codepoint=0xFF))


@settings(max_examples=300, deadline=None)
@given(agent=latin1_text, path=latin1_text)
def test_text_format_is_one_printable_line_and_reversible(agent: str, path: str) -> None:
    text = line_for('"%(a)s" "%(U)s"', environ(HTTP_USER_AGENT=agent, PATH_INFO=path))
    assert text.isascii()
    assert text.isprintable()
    fields = re.fullmatch(r'"((?:[^"\\]|\\.)*)" "((?:[^"\\]|\\.)*)"', text)
    assert fields is not None
    assert unescape(fields.group(1)) == (agent or "-")
    assert unescape(fields.group(2)) == (path or "-")


# --- JSON format -----------------------------------------------------------------


def test_json_record_fields() -> None:
    before = time.time()
    text = line_for("json", environ(PATH_INFO="/caf\xc3\xa9"), status="404 Not Found")
    record = json.loads(text)
    assert set(record) == {
        "remote_addr",
        "time",
        "method",
        "path",
        "query",
        "protocol",
        "status",
        "bytes",
        "duration_ms",
        "referer",
        "user_agent",
        "pid",
    }
    assert record["remote_addr"] == "192.0.2.7"
    assert record["method"] == "GET"
    assert record["path"] == "/café"  # latin-1 environ turned back into text
    assert record["query"] == "q=1"
    assert record["protocol"] == "HTTP/1.1"
    assert record["status"] == 404
    assert record["bytes"] == 13
    assert record["duration_ms"] == pytest.approx(1234.568)
    assert record["referer"] == "http://ref.example/"
    assert record["user_agent"] == "curl/8.0"
    assert record["pid"] == os.getpid()
    started = datetime.fromisoformat(record["time"])
    assert started.tzinfo is not None
    assert abs(started.timestamp() - (before - 1.2345678)) < 1.0


def test_json_missing_headers_are_null() -> None:
    env = environ()
    del env["HTTP_REFERER"], env["HTTP_USER_AGENT"]
    record = json.loads(line_for("json", env))
    assert record["referer"] is None
    assert record["user_agent"] is None


@settings(max_examples=300, deadline=None)
@given(agent=st.text(), referer=latin1_text, path=latin1_text, query=latin1_text)
def test_json_is_one_line_with_hostile_values(
    agent: str, referer: str, path: str, query: str
) -> None:
    env = environ(HTTP_USER_AGENT=agent, HTTP_REFERER=referer, PATH_INFO=path, QUERY_STRING=query)
    text = line_for("json", env)
    assert "\n" not in text
    assert "\r" not in text
    assert text.isascii()
    record = json.loads(text)
    assert record["user_agent"] == access_log._wsgi_text(agent)
    assert record["referer"] == access_log._wsgi_text(referer)
    assert record["path"] == access_log._wsgi_text(path)
    assert record["query"] == access_log._wsgi_text(query)


def test_json_lines_written_to_file_parse_back(tmp_path: Path) -> None:
    target = tmp_path / "access.log"
    config = Config(access_logfile=str(target), access_logformat="json")
    setup_logging(config)
    access_log = AccessLog(config)
    agents = [FORGERY, '{"injected": true}', "\x00\x1b\u2028", "ok"]
    for agent in agents:
        access_log.log(environ(HTTP_USER_AGENT=agent), "200 OK", [], 1, 0.001)
    lines = target.read_text().splitlines()
    assert [json.loads(line)["user_agent"] for line in lines] == agents


# --- the access logger -------------------------------------------------------------


def test_access_log_off_by_default(tmp_path: Path) -> None:
    config = Config(error_logfile=str(tmp_path / "error.log"))
    setup_logging(config)
    access_log = AccessLog(config)
    assert access_log.enabled is False
    access_log.log(environ(), "200 OK", [], 1, 0.0)  # a no-op, never raises
    assert logging.getLogger(ACCESS_LOGGER).handlers == []


def test_access_log_to_stdout_has_no_prefix(capsys: pytest.CaptureFixture[str]) -> None:
    config = Config(access_logfile="-", access_logformat="%(m)s %(U)s %(s)s")
    setup_logging(config)
    access_log = AccessLog(config)
    assert access_log.enabled is True
    access_log.log(environ(), "200 OK", [], 1, 0.0)
    access_log.log(environ(PATH_INFO="/100%"), "200 OK", [], 1, 0.0)
    assert capsys.readouterr().out == "GET /p 200\nGET /100% 200\n"


def test_unformattable_environ_is_logged_not_raised(tmp_path: Path) -> None:
    class Unprintable:
        def __str__(self) -> str:
            raise RuntimeError("no text")

    error_file = tmp_path / "error.log"
    access_file = tmp_path / "access.log"
    config = Config(
        error_logfile=str(error_file),
        access_logfile=str(access_file),
        access_logformat="%({app.key}e)s",
    )
    setup_logging(config)
    AccessLog(config).log(environ(**{"app.key": Unprintable()}), "200 OK", [], 0, 0.0)
    assert "[ERROR] cannot format access log record" in error_file.read_text()
    assert "RuntimeError: no text" in error_file.read_text()
    assert access_file.read_text() == ""


# --- error log setup ----------------------------------------------------------------


def test_error_log_format_on_stderr(capsys: pytest.CaptureFixture[str]) -> None:
    setup_logging(Config())
    logging.getLogger(ERROR_LOGGER).info("Listening at %s", "http://127.0.0.1:8000")
    logging.getLogger("porch.error.child").warning("from a child logger")
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2
    first = ERROR_LINE.fullmatch(err[0])
    assert first is not None
    assert first.groups() == (str(os.getpid()), "INFO", "Listening at http://127.0.0.1:8000")
    second = ERROR_LINE.fullmatch(err[1])
    assert second is not None
    assert second.group(2, 3) == ("WARNING", "from a child logger")


def test_error_log_level_filters(tmp_path: Path) -> None:
    target = tmp_path / "error.log"
    setup_logging(Config(error_logfile=str(target), log_level="warning"))
    logger = logging.getLogger(ERROR_LOGGER)
    logger.info("hidden")
    logger.debug("hidden too")
    logger.error("shown")
    lines = target.read_text().splitlines()
    assert len(lines) == 1
    assert lines[0].endswith("[ERROR] shown")


def test_error_log_does_not_reach_the_root_logger(tmp_path: Path) -> None:
    caught: list[logging.LogRecord] = []

    class Catch(logging.Handler):
        def emit(self, record: logging.LogRecord) -> None:
            caught.append(record)

    root_handler = Catch()
    logging.getLogger().addHandler(root_handler)
    try:
        setup_logging(Config(error_logfile=str(tmp_path / "e.log")))
        logging.getLogger(ERROR_LOGGER).error("once")
    finally:
        logging.getLogger().removeHandler(root_handler)
    assert caught == []
    assert (tmp_path / "e.log").read_text().count("once") == 1


def test_setup_is_idempotent(tmp_path: Path) -> None:
    config = Config(
        error_logfile=str(tmp_path / "error.log"), access_logfile=str(tmp_path / "access.log")
    )
    for _ in range(3):
        setup_logging(config)
    assert len(logging.getLogger(ERROR_LOGGER).handlers) == 1
    assert len(logging.getLogger(ACCESS_LOGGER).handlers) == 1
    logging.getLogger(ERROR_LOGGER).warning("one record")
    AccessLog(config).log(environ(), "200 OK", [], 1, 0.0)
    assert (tmp_path / "error.log").read_text().count("one record") == 1
    assert len((tmp_path / "access.log").read_text().splitlines()) == 1


def test_setup_again_switches_targets_and_closes_old_files(tmp_path: Path) -> None:
    first = tmp_path / "first.log"
    second = tmp_path / "second.log"
    setup_logging(Config(error_logfile=str(first)))
    old_handler = logging.getLogger(ERROR_LOGGER).handlers[0]
    assert isinstance(old_handler, logging.FileHandler)
    setup_logging(Config(error_logfile=str(second), access_logfile=None))
    assert old_handler.stream is None  # closed
    logging.getLogger(ERROR_LOGGER).warning("goes to second")
    assert "goes to second" not in first.read_text()
    assert "goes to second" in second.read_text()


def test_unwritable_log_file_names_the_flag(tmp_path: Path) -> None:
    missing_dir = tmp_path / "no" / "such" / "dir.log"
    with pytest.raises(ConfigError, match="--error-logfile"):
        setup_logging(Config(error_logfile=str(missing_dir)))
    with pytest.raises(ConfigError, match="--access-logfile"):
        setup_logging(Config(access_logfile=str(missing_dir)))


def test_setup_that_cannot_open_a_file_keeps_the_current_logging(tmp_path: Path) -> None:
    """All or nothing (a HUP naming a bad file): every new file opens before any swap."""
    error_path, access_path = tmp_path / "error.log", tmp_path / "access.log"
    config = Config(error_logfile=str(error_path), access_logfile=str(access_path),
                    access_logformat="%(U)s")  # fmt: skip
    setup_logging(config)
    missing = str(tmp_path / "no" / "such" / "x.log")
    for changed in ({"error_logfile": missing}, {"access_logfile": missing}):
        with pytest.raises(ConfigError, match="cannot open"):
            setup_logging(dataclasses.replace(config, **changed))
    bad_dict_config = tmp_path / "logging.json"
    bad_dict_config.write_text(json.dumps(dict_config(tmp_path / "no" / "such" / "y.log")))
    with pytest.raises(ConfigError, match="--log-config"):
        setup_logging(Config(log_config=str(bad_dict_config)))
    logging.getLogger(ERROR_LOGGER).info("still here")
    AccessLog(config).log(environ(PATH_INFO="/still"), "200 OK", [], 0, 0.0)
    assert ERROR_LINE.fullmatch(error_path.read_text().splitlines()[-1])
    assert "still here" in error_path.read_text()
    assert access_path.read_text() == "/still\n"
    assert not (tmp_path / "no").exists()


def test_unknown_log_level_names_the_flag() -> None:
    with pytest.raises(ConfigError, match="--log-level"):
        setup_logging(Config(log_level="loud"))


# --- dictConfig files ----------------------------------------------------------------


def dict_config(target: Path) -> dict[str, Any]:
    return {
        "version": 1,
        "formatters": {"plain": {"format": "%(name)s|%(levelname)s|%(message)s"}},
        "handlers": {
            "file": {
                "class": "logging.FileHandler",
                "filename": str(target),
                "formatter": "plain",
            }
        },
        "loggers": {
            "porch.error": {"handlers": ["file"], "level": "DEBUG", "propagate": False},
            "porch.access": {"handlers": ["file"], "level": "INFO", "propagate": False},
        },
    }


def _check_dict_config_applied(config: Config, target: Path) -> None:
    setup_logging(config)
    logging.getLogger(ERROR_LOGGER).debug("debug via dictConfig")
    access_log = AccessLog(config)
    assert access_log.enabled is True
    access_log.log(environ(), "204 No Content", [], 0, 0.0)
    lines = target.read_text().splitlines()
    assert lines[0] == "porch.error|DEBUG|debug via dictConfig"
    assert lines[1].startswith("porch.access|INFO|192.0.2.7 - - [")


def test_json_dict_config(tmp_path: Path) -> None:
    target = tmp_path / "out.log"
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(dict_config(target)))
    _check_dict_config_applied(Config(log_config=str(path)), target)


TOML_CONFIG = """
version = 1
[formatters.plain]
format = "%(name)s|%(levelname)s|%(message)s"
[handlers.file]
class = "logging.FileHandler"
filename = "{target}"
formatter = "plain"
[loggers."porch.error"]
handlers = ["file"]
level = "DEBUG"
propagate = false
[loggers."porch.access"]
handlers = ["file"]
level = "INFO"
propagate = false
"""


def test_toml_dict_config(tmp_path: Path) -> None:
    target = tmp_path / "out.log"
    path = tmp_path / "logging.toml"
    path.write_text(TOML_CONFIG.format(target=target))
    _check_dict_config_applied(Config(log_config=str(path)), target)


def test_toml_dict_config_under_logging_table_without_suffix(tmp_path: Path) -> None:
    target = tmp_path / "out.log"
    path = tmp_path / "porch.conf"
    # The same dictConfig kept under [logging], as in a shared porch.toml.
    nested = re.sub(r"^\[", "[logging.", TOML_CONFIG.format(target=target), flags=re.M)
    path.write_text("[logging]\n" + nested)
    _check_dict_config_applied(Config(log_config=str(path)), target)


def test_dict_config_replaces_porch_setup_and_is_idempotent(tmp_path: Path) -> None:
    target = tmp_path / "out.log"
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(dict_config(target)))
    config = Config(log_config=str(path), error_logfile=str(tmp_path / "ignored.log"))
    setup_logging(Config(error_logfile=str(tmp_path / "porch.log")))
    setup_logging(config)
    setup_logging(config)
    assert len(logging.getLogger(ERROR_LOGGER).handlers) == 1
    logging.getLogger(ERROR_LOGGER).warning("once")
    assert target.read_text().count("once") == 1
    assert not (tmp_path / "ignored.log").exists()
    assert "once" not in (tmp_path / "porch.log").read_text()


def test_dict_config_after_porch_setup_without_access_log(tmp_path: Path) -> None:
    target = tmp_path / "out.log"
    path = tmp_path / "logging.json"
    path.write_text(json.dumps(dict_config(target)))
    setup_logging(Config(error_logfile=str(tmp_path / "porch.log"), log_level="error"))
    _check_dict_config_applied(Config(log_config=str(path)), target)


def test_dict_config_level_comes_from_the_file_only(tmp_path: Path) -> None:
    target = tmp_path / "out.log"
    path = tmp_path / "logging.json"
    config = dict_config(target)
    del config["loggers"]["porch.error"]
    config["root"] = {"handlers": ["file"], "level": "INFO"}
    path.write_text(json.dumps(config))
    setup_logging(Config(error_logfile=str(tmp_path / "porch.log"), log_level="critical"))
    setup_logging(Config(log_config=str(path)))
    logging.getLogger(ERROR_LOGGER).info("reaches the root handler")
    assert target.read_text() == "porch.error|INFO|reaches the root handler\n"


def test_dict_config_keeps_existing_loggers_by_default(tmp_path: Path) -> None:
    app_logger = logging.getLogger("porch_test_app")
    path = tmp_path / "logging.json"
    path.write_text(json.dumps({"version": 1}))
    setup_logging(Config(log_config=str(path)))
    assert app_logger.disabled is False


def test_dict_config_without_access_logger_disables_access_log(tmp_path: Path) -> None:
    path = tmp_path / "logging.json"
    path.write_text(json.dumps({"version": 1, "root": {"level": "WARNING"}}))
    config = Config(log_config=str(path), access_logfile="-")
    setup_logging(config)
    assert AccessLog(config).enabled is False


@pytest.mark.parametrize(
    ("name", "content", "problem"),
    [
        ("missing.json", None, "cannot read"),
        ("bad.json", '{"version": 1,', "invalid JSON"),
        ("bad.toml", "version = = 1", "invalid TOML"),
        ("bad.conf", "{{ nope", "neither valid JSON nor valid TOML"),
        ("list.json", "[1, 2]", "top level must be"),
        ("noversion.json", '{"handlers": {}}', "missing 'version'"),
        ("badversion.json", '{"version": 2}', "version"),
        (
            "badclass.json",
            '{"version": 1, "handlers": {"h": {"class": "no.such.Handler"}}}',
            "Unable to configure handler",
        ),
        (
            "badref.json",
            '{"version": 1, "loggers": {"porch.error": {"handlers": ["nope"]}}}',
            "nope",
        ),
    ],
)
def test_bad_log_config(tmp_path: Path, name: str, content: str | None, problem: str) -> None:
    path = tmp_path / name
    if content is not None:
        path.write_text(content)
    with pytest.raises(ConfigError) as info:
        setup_logging(Config(log_config=str(path)))
    message = str(info.value)
    assert "--log-config" in message
    assert problem in message
