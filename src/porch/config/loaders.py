"""Build one validated Config from defaults < TOML file < PORCH_* env vars < CLI flags."""

from __future__ import annotations

import argparse
import dataclasses
import os
import re
import sys
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, cast

from porch import __version__, build_name
from porch.config.settings import Config, Kind, Meta
from porch.config.values import (
    InvalidValue,
    SettingValue,
    display_value,
    format_bind,
    parse_bind,
    parse_text,
    parse_toml,
    toml_literal,
)
from porch.errors import ConfigError

ENV_PREFIX = "PORCH_"
CONFIG_FILE_ENV = "PORCH_CONFIG"
WORKERS_ENV = "WEB_CONCURRENCY"  # gunicorn / Heroku convention
PORT_ENV = "PORT"  # gunicorn / Heroku convention: default bind 0.0.0.0:$PORT
NO_APP_MESSAGE = "no application given: porch MODULE:APP (e.g. porch myapp:app)"

_METAVARS: dict[Kind, str] = {
    Kind.INT: "N",
    Kind.POS_INT: "N",
    Kind.SECONDS: "SECONDS",
    Kind.BYTES: "SIZE",
    Kind.OCTAL: "MODE",
    Kind.LOG_LEVEL: "LEVEL",
}


@dataclass(frozen=True, slots=True)
class Setting:
    """One Config field and the names it goes by on the CLI, in the env and in TOML."""

    name: str
    meta: Meta
    default: SettingValue

    @property
    def label(self) -> str:
        """The flag named in error messages: the first long flag (APP for the positional)."""
        long_flags = [flag for flag in self.meta.flags if flag.startswith("--")]
        return long_flags[0] if long_flags else self.metavar

    @property
    def metavar(self) -> str:
        return self.meta.metavar or _METAVARS.get(self.meta.kind, self.name.upper())

    @property
    def env_var(self) -> str | None:
        return ENV_PREFIX + self.name.upper() if self.meta.env else None

    @property
    def negative_flags(self) -> tuple[str, ...]:
        """``--no-X`` for each long flag of a BOOL setting."""
        if self.meta.kind is not Kind.BOOL:
            return ()
        return tuple("--no-" + flag[2:] for flag in self.meta.flags if flag.startswith("--"))


def all_settings() -> tuple[Setting, ...]:
    """Every setting of :class:`Config`, in declaration order."""
    return tuple(
        Setting(name=field.name, meta=field.metadata["porch"], default=_default_of(field))
        for field in dataclasses.fields(Config)
    )


def _default_of(field: dataclasses.Field[object]) -> SettingValue:
    if field.default is dataclasses.MISSING:
        raise TypeError(f"setting {field.name} has no default")
    return cast(SettingValue, field.default)


@dataclass(frozen=True, slots=True)
class CliOption:
    """A command-line option that steers ``porch`` itself rather than setting Config."""

    flags: tuple[str, ...]
    metavar: str | None  # None: a switch
    help: str


CLI_ONLY_OPTIONS = (
    CliOption(("-c", "--config"), "FILE", f"TOML file of settings (also {CONFIG_FILE_ENV})."),
    CliOption(
        ("--check-config",),
        None,
        "Check the settings, open the log files and import the app as a start would, then "
        "exit: 0 if all is well, 2 for a bad setting, 4 if the app cannot be loaded.",
    ),
    CliOption(
        ("--print-config",),
        None,
        "Print the effective configuration as TOML (loadable with -c) and exit.",
    ),
)


@dataclass(frozen=True, slots=True)
class LoadResult:
    """The validated configuration and the CLI-only switches that steer ``porch``."""

    config: Config
    check_config: bool
    print_config: bool
    config_file: str | None


def load_config(argv: Sequence[str], environ: Mapping[str, str]) -> LoadResult:
    """Parse argv, the TOML file, ``PORCH_*`` variables and defaults into a Config.

    Raises ConfigError naming the flag, env var or file key of the first invalid
    value. ``--help`` and ``--version`` print and raise ``SystemExit(0)``.
    """
    settings = all_settings()
    namespace = build_parser().parse_args(list(argv))
    check_config = bool(getattr(namespace, "check_config", False))
    print_config = bool(getattr(namespace, "print_config", False))
    config_file = getattr(namespace, "config", None) or environ.get(CONFIG_FILE_ENV) or None

    given: dict[str, SettingValue] = {}
    if config_file is not None:
        given.update(read_toml_file(config_file, settings))
    given.update(_from_env(environ, settings))
    given.update(_from_cli(namespace, settings))
    values = {setting.name: setting.default for setting in settings}
    values.update(_platform_defaults(environ, given))
    values.update(given)
    if not values["app"] and (check_config or not print_config):
        raise ConfigError(NO_APP_MESSAGE)
    # Each value was converted for its field's Kind, which fixes its type.
    config = Config(**cast("dict[str, Any]", values))
    return LoadResult(
        config=config,
        check_config=check_config,
        print_config=print_config,
        config_file=config_file,
    )


def _convert_text(setting: Setting, label: str, text: str) -> SettingValue:
    try:
        return parse_text(setting.name, setting.meta.kind, text)
    except InvalidValue as exc:
        raise ConfigError(f"{label}: {exc}") from None


# --- CLI ----------------------------------------------------------------------


class _HelpFormatter(argparse.HelpFormatter):
    """argparse's formatter given the terminal width, so that it does not import shutil.

    argparse builds a formatter for every ``add_argument``; the default one imports
    ``shutil`` (and with it ``bz2``, ``lzma``, ``fnmatch``) for
    ``shutil.get_terminal_size()``, a few hundred KiB that the master and every
    worker forked from it would hold. :func:`_terminal_columns` is that function.
    """

    def __init__(self, prog: str) -> None:
        super().__init__(prog, width=_terminal_columns() - 2)  # the default's margin


def _terminal_columns(fallback: int = 80) -> int:
    """``shutil.get_terminal_size().columns``: ``$COLUMNS``, else stdout's terminal."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
    return columns or fallback


class _Parser(argparse.ArgumentParser):
    """argparse that raises ConfigError instead of printing usage and exiting 2."""

    def error(self, message: str) -> NoReturn:
        raise ConfigError(f"{message} (see porch --help)")


def build_parser() -> argparse.ArgumentParser:
    """The ``porch`` argument parser, generated from the settings' metadata."""
    parser = _Parser(
        prog="porch",
        description="porch: a production server for Python WSGI applications.",
        epilog="Every setting can also be set in the TOML file (-c) or as PORCH_<NAME>. "
        "See docs/settings.md.",
        argument_default=argparse.SUPPRESS,
        allow_abbrev=False,  # abbreviations change meaning as settings are added
        formatter_class=_HelpFormatter,
    )
    for option in CLI_ONLY_OPTIONS:
        if option.metavar is None:
            parser.add_argument(*option.flags, action="store_true", help=option.help)
        else:
            parser.add_argument(*option.flags, metavar=option.metavar, help=option.help)
    parser.add_argument("--version", action="version", version=build_name())
    groups: dict[str, argparse._ArgumentGroup] = {}
    for setting in all_settings():
        section = setting.meta.section
        if section not in groups:
            groups[section] = parser.add_argument_group(section)
        _add_setting(groups[section], setting)
    return parser


def _add_setting(group: argparse._ArgumentGroup, setting: Setting) -> None:
    meta = setting.meta
    default_text = display_value(meta.kind, setting.default)
    # argparse %-formats help strings; the access log format help contains %(h)s.
    help_text = f"{meta.help} (default: {default_text})".replace("%", "%%")
    if not meta.flags:
        group.add_argument(setting.name, nargs="?", metavar=setting.metavar, help=help_text)
    elif meta.kind is Kind.BOOL:
        group.add_argument(
            *meta.flags, dest=setting.name, action=argparse.BooleanOptionalAction, help=help_text
        )
    elif meta.kind is Kind.LIST:
        group.add_argument(
            *meta.flags, dest=setting.name, action="append", metavar=setting.metavar, help=help_text
        )
    else:
        group.add_argument(*meta.flags, dest=setting.name, metavar=setting.metavar, help=help_text)


def _from_cli(
    namespace: argparse.Namespace, settings: Sequence[Setting]
) -> dict[str, SettingValue]:
    values: dict[str, SettingValue] = {}
    for setting in settings:
        if not hasattr(namespace, setting.name):
            continue
        raw = getattr(namespace, setting.name)
        if isinstance(raw, bool):
            values[setting.name] = raw
        elif isinstance(raw, list):  # repeated LIST flag: -b a -b b,c
            values[setting.name] = _convert_text(setting, setting.label, ",".join(raw))
        else:
            values[setting.name] = _convert_text(setting, setting.label, str(raw))
    return values


# --- environment ------------------------------------------------------------------


def _from_env(environ: Mapping[str, str], settings: Sequence[Setting]) -> dict[str, SettingValue]:
    """``PORCH_<NAME>`` values; an empty variable counts as unset."""
    values: dict[str, SettingValue] = {}
    for setting in settings:
        if setting.env_var is None:
            continue
        text = environ.get(setting.env_var, "")
        if text.strip():
            values[setting.name] = _convert_text(setting, setting.env_var, text)
    return values


def _platform_defaults(
    environ: Mapping[str, str], given: Mapping[str, SettingValue]
) -> dict[str, SettingValue]:
    """WEB_CONCURRENCY and PORT, which only replace the defaults of unset settings."""
    values: dict[str, SettingValue] = {}
    settings = {setting.name: setting for setting in all_settings()}
    workers_text = environ.get(WORKERS_ENV, "")
    if "workers" not in given and workers_text.strip():
        values["workers"] = _convert_text(settings["workers"], WORKERS_ENV, workers_text)
    port_text = environ.get(PORT_ENV, "").strip()
    if "bind" not in given and port_text:
        try:
            values["bind"] = (format_bind(parse_bind(f"0.0.0.0:{port_text}")),)
        except InvalidValue:
            message = f"expected a port number 0-65535, got {port_text!r}"
            raise ConfigError(f"{PORT_ENV}: {message}") from None
    return values


# --- TOML file ----------------------------------------------------------------------


def read_toml_file(path: str, settings: Sequence[Setting]) -> dict[str, SettingValue]:
    """The settings a TOML file sets; keys are field names, ``-`` or ``_`` alike."""
    label = f"config file {path}"
    try:
        with open(path, "rb") as file:
            raw = file.read()
    except OSError as exc:
        raise ConfigError(f"{label}: cannot read it: {exc.strerror or exc}") from None
    import tomllib  # here: only a run with a config file pays for the TOML parser

    try:
        text = raw.decode("utf-8")
        document = tomllib.loads(text)
    except UnicodeDecodeError as exc:
        raise ConfigError(f"{label}: not UTF-8 text (byte {exc.start})") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{label}: invalid TOML: {exc}") from None
    by_name = {setting.name: setting for setting in settings}
    values: dict[str, SettingValue] = {}
    for key, value in document.items():
        where = f"{label}, line {_line_of(text, key)}"
        name = key.replace("-", "_")
        setting = by_name.get(name)
        if setting is None:
            raise ConfigError(f"{where}: {_unknown_key_message(key, by_name)}")
        if name in values:
            raise ConfigError(f"{where}: {key!r} sets {name!r} a second time")
        try:
            values[name] = parse_toml(name, setting.meta.kind, value)
        except InvalidValue as exc:
            raise ConfigError(f"{where}: {key}: {exc}") from None
    return values


def _line_of(text: str, key: str) -> int | str:
    """The line where ``key`` is assigned, best effort ("?" when not found)."""
    # `key = ...`, a dotted `key.sub = ...`, or a table header `[key]` / `[[key]]`.
    pattern = rf"^[ \t]*(?:\[\[?[ \t]*)?[\"']?{re.escape(key)}[\"']?[ \t]*[=.\]]"
    match = re.search(pattern, text, re.MULTILINE)
    return text.count("\n", 0, match.start()) + 1 if match else "?"


def _unknown_key_message(key: str, known: Mapping[str, Setting]) -> str:
    import difflib  # here: only the error message needs it

    message = f"unknown setting {key!r}"
    close = difflib.get_close_matches(key.replace("-", "_"), list(known), n=1)
    return f"{message} (did you mean {close[0]!r}?)" if close else message


# --- back to TOML ---------------------------------------------------------------------


def dump_config_toml(config: Config) -> str:
    """The effective configuration as a TOML file that ``porch -c`` reads back."""
    lines = [f"# Effective porch {__version__} configuration; load it with: porch -c FILE"]
    section = None
    for setting in all_settings():
        if setting.meta.section != section:
            section = setting.meta.section
            lines += ["", f"# --- {section} ---"]
        literal = toml_literal(setting.meta.kind, getattr(config, setting.name))
        lines.append(f"{setting.name} = {literal}" if literal else f"# {setting.name}: unset")
    return "\n".join(lines) + "\n"
