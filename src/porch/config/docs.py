"""Generate docs/settings.md from the settings' metadata (``python -m porch.config.docs``)."""

from __future__ import annotations

import sys

from porch.config.loaders import (
    CLI_ONLY_OPTIONS,
    CONFIG_FILE_ENV,
    ENV_PREFIX,
    PORT_ENV,
    WORKERS_ENV,
    Setting,
    all_settings,
)
from porch.config.values import BIND_FORM, accepted_form, display_value, toml_literal
from porch.errors import ExitCode

REGENERATE_COMMAND = "python -m porch.config.docs > docs/settings.md"

_HEADER = f"""\
# porch settings

<!-- Generated from src/porch/config/settings.py by `{REGENERATE_COMMAND}`.
     Do not edit by hand: tests/config/test_docs.py fails when this file is stale. -->

Every setting is declared once, in `src/porch/config/settings.py`; the command-line
flags, the `{ENV_PREFIX}*` environment variables, the TOML keys and this page are
generated from that declaration.

## Where settings come from

Later sources override earlier ones:

1. the built-in defaults listed below;
2. the TOML file given with `-c FILE` / `--config FILE` (or `{CONFIG_FILE_ENV}=FILE`);
3. environment variables `{ENV_PREFIX}<NAME>`, for example `{ENV_PREFIX}WORKERS=4`;
4. command-line flags, for example `--workers 4`.

A list given by a later source replaces the earlier list; it does not extend it.

For compatibility with gunicorn and platforms such as Heroku:

* `{WORKERS_ENV}` sets `--workers` when neither the file, `{ENV_PREFIX}WORKERS` nor the
  command line does.
* `{PORT_ENV}` makes the default bind address `0.0.0.0:${PORT_ENV}` when neither the file,
  `{ENV_PREFIX}BIND` nor the command line gives `--bind`.

Invalid values stop porch before it binds or forks anything, with exit code
{int(ExitCode.USAGE)} and a message naming the flag (or variable, or file and line) and the
accepted form, for example
`porch: error: --threads: expected a whole number >= 1, got 'abc'`.

### Value syntax

* **TOML file**: keys are the setting names below; `-` and `_` are interchangeable
  (`max-requests = 100`). Unknown keys are an error. Numbers may be TOML numbers or
  strings (`limit_request_body = "10M"`), lists are arrays of strings, booleans are
  `true`/`false`. File modes must be quoted strings (`umask = "022"`), because TOML
  reads `022` as invalid and `0o22` as the integer 18. Unset settings cannot be
  written in TOML; leave the key out.
* **Environment**: an empty variable counts as unset. Lists are comma separated,
  booleans are `true`/`false` (also `1`/`0`, `yes`/`no`, `on`/`off`).
* **Command line**: booleans are switches with a `--no-` form (`--preload`,
  `--no-preload`). List flags may be repeated and take comma separated values
  (`-b 127.0.0.1:8000 -b unix:/run/porch.sock`). Flags cannot be abbreviated.
* **Sizes** are bytes with an optional 1024-based suffix: `512K`, `10M`, `1G`
  (`KB`/`KiB` spellings are accepted too).
* **Durations** are seconds, fractions allowed: `30`, `0.5`.

### Bind addresses

`--bind` accepts {BIND_FORM}:

| form | meaning |
|---|---|
| `HOST:PORT` | TCP on a host name or IPv4 address, e.g. `127.0.0.1:8000`, `localhost:8000` |
| `[IPV6]:PORT` | TCP on an IPv6 address, e.g. `[::1]:8000`, `[::]:8000` |
| `:PORT` | TCP on all IPv4 interfaces, the same as `0.0.0.0:PORT` |
| `unix:PATH` | a UNIX socket (`unix:///run/porch.sock` also works; `@name` is abstract) |
| `fd://N` | an inherited socket, already bound, on file descriptor `N` |

Ports range from 0 to 65535; port 0 asks the kernel for a free port (the master
binds each socket once and its workers share it). A bare `8000` or a host without a
port is refused: write `:8000` or `localhost:8000`. IPv6 addresses need brackets.
The same address given twice is an error. Addresses are stored normalised
(`:8000` becomes `0.0.0.0:8000`, `unix:///x` becomes `unix:/x`).

## Command-line only options

| option | effect |
|---|---|
"""


def render_settings_markdown() -> str:
    """The full text of docs/settings.md."""
    parts = [_HEADER, _cli_only_rows(), "\n"]
    section = None
    for setting in all_settings():
        if setting.meta.section != section:
            section = setting.meta.section
            parts.append(f"## {section}\n\n")
        parts.append(_render_setting(setting))
    return "".join(parts).rstrip("\n") + "\n"


def _cli_only_rows() -> str:
    rows = [
        f"| {', '.join(_flag_usage(flag, option.metavar) for flag in option.flags)} "
        f"| {option.help} |"
        for option in CLI_ONLY_OPTIONS
    ]
    rows.append("| `--version` | Print porch's version and exit. |")
    rows.append("| `-h`, `--help` | Print the list of flags and exit. |")
    return "\n".join(rows) + "\n"


def _flag_usage(flag: str, metavar: str | None) -> str:
    return f"`{flag} {metavar}`" if metavar else f"`{flag}`"


def _render_setting(setting: Setting) -> str:
    meta = setting.meta
    if not meta.flags:
        cli = f"`{setting.metavar}` (the positional argument)"
    elif setting.negative_flags:
        cli = ", ".join(f"`{flag}`" for flag in meta.flags + setting.negative_flags)
    else:
        cli = ", ".join(_flag_usage(flag, setting.metavar) for flag in meta.flags)
    default = display_value(meta.kind, setting.default)
    example = toml_literal(meta.kind, setting.default)
    lines = [
        f"### `{setting.name}`",
        "",
        meta.help,
        "",
        f"* Command line: {cli}",
        f"* Environment: `{setting.env_var}`" if setting.env_var else "* Environment: none",
        f"* TOML: `{setting.name} = {example}`" if example else f"* TOML key: `{setting.name}`",
        f"* Value: {accepted_form(setting.name, meta.kind)}",
        f"* Default: `{default}`" if setting.default not in (None, ()) else f"* Default: {default}",
        "",
        "",
    ]
    return "\n".join(lines)


if __name__ == "__main__":
    sys.stdout.write(render_settings_markdown())
