"""The porch command: exit codes, --help/--version, --print-config, --check-config, hand-off."""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tomllib
import types
from collections.abc import Callable
from pathlib import Path

import pytest

import porch
import porch.log
from porch.cli import main
from porch.config import Config, load_config
from porch.config.loaders import all_settings, build_parser
from porch.config.values import display_value
from porch.errors import ConfigError, ExitCode

SRC_DIR = Path(porch.__file__).resolve().parent.parent


def run_porch(*args: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    environ = {key: value for key, value in os.environ.items() if not key.startswith("PORCH_")}
    environ.pop("WEB_CONCURRENCY", None)
    environ.pop("PORT", None)
    environ["PYTHONPATH"] = str(SRC_DIR)
    return subprocess.run(
        [sys.executable, "-m", "porch", *args],
        cwd=cwd,
        env=environ,
        capture_output=True,
        text=True,
        timeout=30,
    )


@pytest.fixture(autouse=True)
def _no_porch_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    for key in list(os.environ):
        if key.startswith("PORCH_") or key in ("WEB_CONCURRENCY", "PORT"):
            monkeypatch.delenv(key)


def test_bad_value_exits_2_with_the_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--timeout", "-1", "app:app"]) == ExitCode.USAGE
    captured = capsys.readouterr()
    assert captured.err == "porch: error: --timeout: expected seconds (a number >= 0), got '-1'\n"
    assert captured.out == ""


def test_missing_app_exits_2(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == ExitCode.USAGE
    assert "porch: error: no application given" in capsys.readouterr().err


def test_version(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--version"]) == 0
    build = "compiled" if porch.compiled() else "pure Python"
    assert capsys.readouterr().out == f"porch {porch.__version__} ({build})\n"


def test_help_lists_every_flag(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["--help"]) == 0
    text = capsys.readouterr().out
    for setting in all_settings():
        for flag in setting.meta.flags + setting.negative_flags:
            assert flag in text
    assert "--print-config" in text


@pytest.mark.parametrize("columns", ["57", "97", "170", "", "junk"])
def test_help_is_laid_out_as_argparse_would(columns: str, monkeypatch: pytest.MonkeyPatch) -> None:
    """porch's formatter only avoids importing shutil: the text is argparse's own."""
    monkeypatch.setenv("COLUMNS", columns)
    parser = build_parser()
    ours = parser.format_help()
    parser.formatter_class = argparse.HelpFormatter
    assert ours == parser.format_help()


def test_every_declared_flag_is_accepted() -> None:
    for setting in all_settings():
        # The default, spelled as on the command line, is a valid value of every setting.
        default = display_value(setting.meta.kind, setting.default)
        empty = "/x=." if setting.name == "static" else "x"  # an existing directory
        value = {"unset": "0", "empty": empty}.get(default, default)
        for flag in setting.meta.flags:
            argv = [flag] if setting.negative_flags else [flag, value]
            result = load_config([*argv, "app:app"], {})
            assert getattr(result.config, setting.name) is not None


def test_every_bool_setting_has_a_no_flag() -> None:
    bools = [setting for setting in all_settings() if setting.negative_flags]
    assert bools, "expected some BOOL settings"
    for setting in bools:
        name = setting.name
        assert getattr(load_config([setting.meta.flags[0], "a:b"], {}).config, name) is True
        assert getattr(load_config([setting.negative_flags[0], "a:b"], {}).config, name) is False


def test_print_config_prints_loadable_toml(
    capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    assert main(["--print-config", "-w", "3", "-b", "unix:/tmp/a.sock", "app:app"]) == 0
    printed = capsys.readouterr().out
    assert tomllib.loads(printed)["workers"] == 3
    path = tmp_path / "printed.toml"
    path.write_text(printed)
    assert load_config(["-c", str(path)], {}).config == Config(
        app="app:app", workers=3, bind=("unix:/tmp/a.sock",)
    )


def test_serve_sets_up_logging_then_runs_the_arbiter(monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[tuple[str, Config]] = []
    arbiters: list[FakeArbiter] = []

    class FakeArbiter:
        def __init__(self, config: Config, *, reload_config: Callable[[], Config]) -> None:
            self.config = config
            self.reload_config = reload_config
            arbiters.append(self)

        def run(self) -> int:
            calls.append(("run", self.config))
            return 7

    def setup_logging(config: Config) -> None:
        calls.append(("setup_logging", config))

    fake_log = types.ModuleType("porch.log")
    fake_log.setup_logging = setup_logging  # type: ignore[attr-defined]
    fake_arbiter = types.ModuleType("porch.supervisor.arbiter")
    fake_arbiter.Arbiter = FakeArbiter  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "porch.log", fake_log)
    monkeypatch.setitem(sys.modules, "porch.supervisor.arbiter", fake_arbiter)

    assert main(["-w", "2", "app:app"]) == 7
    expected = Config(app="app:app", workers=2)
    assert calls == [("setup_logging", expected), ("run", expected)]

    # HUP re-reads the environment under the same command line, which still wins.
    monkeypatch.setenv("PORCH_TIMEOUT", "5")
    monkeypatch.setenv("PORCH_WORKERS", "9")
    assert arbiters[0].reload_config() == Config(app="app:app", workers=2, timeout=5.0)


def test_a_logging_config_error_exits_2(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    def setup_logging(config: Config) -> None:
        raise ConfigError("--error-logfile: cannot open '/nope/x.log'")

    fake_log = types.ModuleType("porch.log")
    fake_log.setup_logging = setup_logging  # type: ignore[attr-defined]
    monkeypatch.setitem(sys.modules, "porch.log", fake_log)
    # The arbiter must not even be imported: stand in one that fails the test if run.
    fake_arbiter = types.ModuleType("porch.supervisor.arbiter")
    monkeypatch.setitem(sys.modules, "porch.supervisor.arbiter", fake_arbiter)
    assert main(["app:app"]) == ExitCode.USAGE
    assert capsys.readouterr().err == "porch: error: --error-logfile: cannot open '/nope/x.log'\n"


@pytest.mark.parametrize("count", ["1025", "99999999999999999999"])
def test_a_worker_count_above_the_limit_is_refused_before_anything_forks(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], count: str
) -> None:
    """Such a count was accepted and forked workers until the host gave out.

    Run in-process with a stand-in arbiter module that has no Arbiter, so that
    even a porch without the limit cannot fork here: it fails the test instead.
    """
    fake_arbiter = types.ModuleType("porch.supervisor.arbiter")
    monkeypatch.setitem(sys.modules, "porch.supervisor.arbiter", fake_arbiter)
    for mode in (["--check-config"], []):
        assert main([*mode, "-w", count, "app:app"]) == ExitCode.USAGE
        expected = f"porch: error: --workers: expected a whole number from 1 to 1024, got '{count}'"
        assert capsys.readouterr().err == expected + "\n"


# --- the real command, as a subprocess ------------------------------------------------


def test_check_config_with_a_bad_value_exits_2_naming_the_flag(tmp_path: Path) -> None:
    done = run_porch("--check-config", "--workers", "abc", "hello:app", cwd=tmp_path)
    assert done.returncode == 2
    message = "porch: error: --workers: expected a whole number from 1 to 1024, got 'abc'"
    assert message in done.stderr


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--access-logformat", "%(zz)s"], "--access-logformat: unknown atom %(zz)s"),
        (["--access-logformat", "%(h)s_%d"], "--access-logformat: invalid format"),
        (["--backlog", "99999999999"], "--backlog: expected a whole number from 1 to 65535"),
    ],
    ids=["unknown-atom", "bad-format", "huge-backlog"],
)
def test_values_only_a_worker_would_trip_on_are_refused_up_front(
    tmp_path: Path, args: list[str], message: str
) -> None:
    # Before this was checked, --check-config said OK and a real start bound its
    # sockets, forked, and died with a worker traceback (exit 3 or 1).
    for mode in (["--check-config"], []):
        done = run_porch(*mode, *args, "hello:app", cwd=tmp_path)
        assert done.returncode == 2, done.stderr
        assert message in done.stderr
        assert "Traceback" not in done.stderr


@pytest.mark.parametrize(
    ("flag", "path", "problem"),
    [
        ("--error-logfile", "/nonexistent/porch-test/e.log", "cannot open"),
        ("--access-logfile", "/nonexistent/porch-test/a.log", "cannot open"),
        ("--log-config", "/nonexistent/porch-test.json", "cannot read"),
        ("--chdir", "/nonexistent/porch-test", "cannot change directory to"),
    ],
)
def test_check_config_fails_as_a_start_does(
    tmp_path: Path, flag: str, path: str, problem: str
) -> None:
    # Before, --check-config said OK (or, for --chdir, exit 4 as if the app were
    # broken) for settings a start refuses with exit 2.
    (tmp_path / "hello_start.py").write_text("def app(environ, start_response):\n    return []\n")
    message = f"porch: error: {flag}: {problem} {path!r}: No such file or directory\n"
    for mode in (["--check-config"], []):
        done = run_porch(*mode, flag, path, "-b", "127.0.0.1:0", "hello_start:app", cwd=tmp_path)
        assert (done.returncode, done.stderr) == (ExitCode.USAGE, message)


def test_check_config_loads_a_good_app(tmp_path: Path) -> None:
    (tmp_path / "hello_ok.py").write_text(
        "def app(environ, start_response):\n    start_response('200 OK', [])\n    return [b'hi']\n"
    )
    done = run_porch("--check-config", "hello_ok:app", cwd=tmp_path)
    assert (done.returncode, done.stdout) == (0, "")
    assert "configuration OK" in done.stderr


def test_check_config_reports_an_app_that_cannot_be_imported(tmp_path: Path) -> None:
    (tmp_path / "hello_broken.py").write_text("import no_such_module_porch_test\n")
    done = run_porch("--check-config", "hello_broken:app", cwd=tmp_path)
    assert done.returncode == ExitCode.APP_LOAD_ERROR
    assert "no_such_module_porch_test" in done.stderr
    assert "porch: error: " in done.stderr


def test_print_and_check_config_together(tmp_path: Path) -> None:
    (tmp_path / "hello_both.py").write_text("def app(environ, start_response):\n    return []\n")
    done = run_porch("--print-config", "--check-config", "hello_both:app", cwd=tmp_path)
    assert done.returncode == 0
    assert tomllib.loads(done.stdout)["app"] == "hello_both:app"
