"""Convert raw setting values (CLI/env text, TOML values) into typed, validated values.

Every converter raises :class:`InvalidValue` with the accepted form and the
offending value ("expected a whole number >= 1, got 'abc'"); the loader
prefixes it with where the value came from (flag, env var or file key).
"""

from __future__ import annotations

import grp
import ipaddress
import math
import os
import pwd
import re
from collections.abc import Callable
from dataclasses import dataclass

from porch.config.settings import MAX_WORKERS, Kind

SettingValue = str | int | float | bool | tuple[str, ...] | None

LOG_LEVELS = ("debug", "info", "warning", "error", "critical")
MAX_MODE = 0o777
MAX_PORT = 65535

_FORMS: dict[Kind, str] = {
    Kind.STR: "a string",
    Kind.INT: "a whole number >= 0",
    Kind.POS_INT: "a whole number >= 1",
    Kind.SECONDS: "seconds (a number >= 0)",
    Kind.BYTES: "a size like 512K, 10M or 1G",
    Kind.BOOL: "true or false (also 1/0, yes/no, on/off)",
    Kind.OCTAL: "an octal file mode like 022 or 0o660 (at most 0o777)",
    Kind.LIST: "a list of strings",
    Kind.LOG_LEVEL: "one of " + ", ".join(LOG_LEVELS),
}

_STRING_FORMS = {
    "app": "MODULE:ATTR, MODULE:FACTORY(ARGS) or a path to a Python file",
    "user": "a user name known to this system or a numeric uid",
    "group": "a group name known to this system or a numeric gid",
    "static_cache_control": "a header value (printable characters, no line breaks)",
    "static_index": "a file name without '/' that does not start with '.', or empty",
    "forwarded_headers": "x-forwarded or forwarded",
}
# Whole-number settings with a bounded range: name -> (lowest, highest).
_RANGES: dict[str, tuple[int, int]] = {
    "compress_level": (1, 9),
    "backlog": (1, 65535),  # listen() takes a C int; kernels cap it far lower (somaxconn)
    "workers": (1, MAX_WORKERS),  # a typo must not fork the host to a halt
}
MEDIA_RANGE_FORM = "a media type like text/html or a wildcard like text/*"
BIND_FORM = "HOST:PORT, [IPV6]:PORT, :PORT, unix:PATH or fd://N"
TRUSTED_PEER_FORM = "an IP address, a network like 10.0.0.0/8, or *"
STATIC_FORM = "URL_PREFIX=DIRECTORY like /assets=./public (an existing directory)"

_TRUE = frozenset({"true", "1", "yes", "on"})
_FALSE = frozenset({"false", "0", "no", "off"})
_WHOLE = re.compile(r"[0-9]+")
_SIZE = re.compile(r"(?P<number>[0-9]+)\s*(?:(?P<unit>[kmgt])(?:i?b)?|b)?", re.IGNORECASE)
_SIZE_UNITS = {"k": 1024, "m": 1024**2, "g": 1024**3, "t": 1024**4}
_OCTAL = re.compile(r"(?:0o)?(?P<digits>[0-7]+)", re.IGNORECASE)
_HEADER_VALUE = re.compile(r"(?:[\x21-\x7e](?:[\x20-\x7e]*[\x21-\x7e])?)?")
_INDEX_NAME = re.compile(r"(?:[^./\\\x00-\x1f\x7f][^/\\\x00-\x1f\x7f]*)?")
# RFC 9110 §8.3.1: type "/" subtype, both tokens; "type/*" as in Accept (§12.5.1).
_MEDIA_TOKEN = r"[!#$%&'*+\-.^_`|~0-9a-z]+"
_MEDIA_RANGE = re.compile(rf"{_MEDIA_TOKEN}/(?:{_MEDIA_TOKEN}|\*)")
_HOSTNAME = re.compile(r"[a-z0-9](?:[a-z0-9_.-]*[a-z0-9])?", re.IGNORECASE)


class InvalidValue(ValueError):
    """A raw value does not have the accepted form; the message says which form."""


def accepted_form(name: str, kind: Kind) -> str:
    """Describe the values a setting accepts, for error messages and the docs."""
    if name in _ITEM_FORMS:
        return "a list of " + _ITEM_FORMS[name]
    if name in _RANGES:
        return "a whole number from {} to {}".format(*_RANGES[name])
    return _STRING_FORMS.get(name, _FORMS[kind])


def _expected(form: str, raw: object) -> InvalidValue:
    return InvalidValue(f"expected {form}, got {raw!r}")


# --- text (CLI flags and environment variables) -----------------------------


def parse_text(name: str, kind: Kind, text: str) -> SettingValue:
    """Convert one CLI/env string; a LIST value is comma separated."""
    if kind is Kind.LIST:
        items = tuple(item.strip() for item in text.split(",") if item.strip())
        return check_list(name, items)
    if kind is Kind.STR:
        return check_string(name, text)
    if name in _RANGES:
        try:
            value = _TEXT_PARSERS[kind](text)
        except InvalidValue:
            value = None  # say the range, not just "a whole number"
        return check_range(name, value, raw=text)
    return _TEXT_PARSERS[kind](text)


def _whole_number(text: str, minimum: int) -> int:
    stripped = text.strip()
    if not _WHOLE.fullmatch(stripped) or int(stripped) < minimum:
        raise _expected(f"a whole number >= {minimum}", text)
    return int(stripped)


def _seconds(text: str) -> float:
    try:
        value = float(text)
    except ValueError:
        raise _expected(_FORMS[Kind.SECONDS], text) from None
    return check_seconds(value, raw=text)


def _size(text: str) -> int:
    match = _SIZE.fullmatch(text.strip())
    if match is None:
        raise _expected(_FORMS[Kind.BYTES], text)
    unit = match["unit"]
    return int(match["number"]) * (_SIZE_UNITS[unit.lower()] if unit else 1)


def _bool(text: str) -> bool:
    lowered = text.strip().lower()
    if lowered in _TRUE:
        return True
    if lowered in _FALSE:
        return False
    raise _expected(_FORMS[Kind.BOOL], text)


def _octal(text: str) -> int:
    match = _OCTAL.fullmatch(text.strip())
    if match is None or int(match["digits"], 8) > MAX_MODE:
        raise _expected(_FORMS[Kind.OCTAL], text)
    return int(match["digits"], 8)


def _log_level(text: str) -> str:
    lowered = text.strip().lower()
    if lowered not in LOG_LEVELS:
        raise _expected(_FORMS[Kind.LOG_LEVEL], text)
    return lowered


_TEXT_PARSERS: dict[Kind, Callable[[str], SettingValue]] = {
    Kind.INT: lambda text: _whole_number(text, 0),
    Kind.POS_INT: lambda text: _whole_number(text, 1),
    Kind.SECONDS: _seconds,
    Kind.BYTES: _size,
    Kind.BOOL: _bool,
    Kind.OCTAL: _octal,
    Kind.LOG_LEVEL: _log_level,
}


def check_seconds(value: float, *, raw: object) -> float:
    """Accept a finite, non-negative number of seconds."""
    if not math.isfinite(value) or value < 0:
        raise _expected(_FORMS[Kind.SECONDS], raw)
    return float(value)


def check_range(name: str, value: SettingValue, *, raw: object) -> SettingValue:
    """Accept a whole number within the range of a bounded setting (``_RANGES``)."""
    lowest, highest = _RANGES[name]
    if not isinstance(value, int) or not lowest <= value <= highest:
        raise _expected(f"a whole number from {lowest} to {highest}", raw)
    return value


# --- TOML values ----------------------------------------------------------------


def parse_toml(name: str, kind: Kind, value: object) -> SettingValue:
    """Convert one value read from a TOML file; strings go through :func:`parse_text`."""
    if kind is Kind.LIST and isinstance(value, list):
        if not all(isinstance(item, str) for item in value):
            raise _expected("an array of strings", value)
        return check_list(name, tuple(item.strip() for item in value))
    if kind is Kind.OCTAL and not isinstance(value, str):
        # TOML turns 0o22 and 18 into the same integer, and `umask = 22` would
        # silently mean 0o26: insist on a string, which keeps the octal digits.
        raise InvalidValue(f'expected an octal file mode as a string like "022", got {value!r}')
    if isinstance(value, str):
        return parse_text(name, kind, value)
    if kind is Kind.BOOL and isinstance(value, bool):
        return value
    if isinstance(value, bool):  # bool is an int subclass: keep it out of numbers
        raise _expected(accepted_form(name, kind), value)
    if kind in (Kind.INT, Kind.POS_INT, Kind.BYTES) and isinstance(value, int):
        minimum = 1 if kind is Kind.POS_INT else 0
        if value < minimum:
            raise _expected(accepted_form(name, kind), value)
        return check_range(name, value, raw=value) if name in _RANGES else value
    if kind is Kind.SECONDS and isinstance(value, int | float):
        return check_seconds(float(value), raw=value)
    raise _expected(accepted_form(name, kind), value)


# --- field-specific checks ----------------------------------------------------------


@dataclass(frozen=True, slots=True)
class TcpBind:
    """Listen on a TCP address; ``host`` is a name, an IPv4 or a bare IPv6 address."""

    host: str
    port: int  # 0 asks the kernel for a free port


@dataclass(frozen=True, slots=True)
class UnixBind:
    """Listen on a UNIX socket at ``path`` (``@name`` is Linux's abstract namespace)."""

    path: str


@dataclass(frozen=True, slots=True)
class FdBind:
    """Listen on an inherited, already bound socket file descriptor."""

    fd: int


BindAddress = TcpBind | UnixBind | FdBind


def parse_bind(text: str) -> BindAddress:
    """Parse one --bind address in any accepted form (see ``BIND_FORM``)."""
    if text.startswith("unix:"):
        path = text[len("unix://") :] if text.startswith("unix://") else text[len("unix:") :]
        if not path or "\0" in path:
            raise _expected(BIND_FORM, text)
        return UnixBind(path)
    if text.startswith("fd://"):
        digits = text[len("fd://") :]
        if not _WHOLE.fullmatch(digits):
            raise _expected(BIND_FORM, text)
        return FdBind(int(digits))
    address = text.removeprefix("tcp://")
    host, colon, port_text = address.rpartition(":")
    if not colon or not _WHOLE.fullmatch(port_text):
        raise _expected(BIND_FORM, text)
    port = int(port_text)
    if port > MAX_PORT:
        raise InvalidValue(f"port must be 0-{MAX_PORT}, got {text!r}")
    return TcpBind(_bind_host(host, text), port)


def _bind_host(host: str, text: str) -> str:
    if host == "":
        return "0.0.0.0"
    if host.startswith("[") and host.endswith("]"):
        try:
            return str(ipaddress.IPv6Address(host[1:-1]))
        except ValueError:
            raise _expected(BIND_FORM, text) from None
    if ":" in host:
        raise InvalidValue(f"write IPv6 addresses in brackets like [::1]:8000, got {text!r}")
    if re.fullmatch(r"[0-9.]+", host):
        try:
            return str(ipaddress.IPv4Address(host))
        except ValueError:
            raise _expected(BIND_FORM, text) from None
    if not _HOSTNAME.fullmatch(host):
        raise _expected(BIND_FORM, text)
    return host.lower()


def format_bind(address: BindAddress) -> str:
    """The canonical text of a bind address, as stored in ``Config.bind``."""
    if isinstance(address, UnixBind):
        return f"unix:{address.path}"
    if isinstance(address, FdBind):
        return f"fd://{address.fd}"
    host = f"[{address.host}]" if ":" in address.host else address.host
    return f"{host}:{address.port}"


def _canonical_bind(text: str) -> str:
    return format_bind(parse_bind(text))


def _trusted_peer(text: str) -> str:
    if text == "*":
        return text
    try:
        if "/" in text:
            return str(ipaddress.ip_network(text, strict=False))
        return str(ipaddress.ip_address(text))
    except ValueError:
        raise _expected(TRUSTED_PEER_FORM, text) from None


def _media_range(text: str) -> str:
    lowered = text.strip().lower()
    if not _MEDIA_RANGE.fullmatch(lowered) or lowered.startswith("*"):
        raise _expected(MEDIA_RANGE_FORM, text)
    return lowered


def _static_mount(text: str) -> str:
    """``/prefix=dir`` with the prefix normalised and the directory made absolute.

    The directory is resolved against the current directory now, before any
    ``--chdir``, so it means what it meant in the shell that started porch.
    """
    prefix, equals, directory = text.partition("=")
    prefix, directory = prefix.strip(), directory.strip()
    if not equals or not prefix or not directory:
        raise _expected(STATIC_FORM, text)
    if not prefix.startswith("/"):
        raise InvalidValue(f"the URL prefix must start with '/', got {text!r}")
    segments = prefix.strip("/").split("/") if prefix != "/" else []
    if any(
        segment in ("", ".", "..") or any(char in segment for char in "%\\\0")
        for segment in segments
    ):
        raise InvalidValue(
            f"the URL prefix must be a plain path like /assets (no '.', '..', '//', '%' "
            f"or backslash segments), got {text!r}"
        )
    if not os.path.isdir(directory):
        raise InvalidValue(f"{directory!r} is not an existing directory (in {text!r})")
    return "/" + "/".join(segments) + "=" + os.path.abspath(directory)


_ITEM_FORMS: dict[str, str] = {
    "bind": BIND_FORM,
    "forwarded_allow_ips": TRUSTED_PEER_FORM,
    "proxy_allow_from": TRUSTED_PEER_FORM,
    "static": STATIC_FORM,
    "compress_types": "media types like text/html or type wildcards like text/*",
}
_ITEM_CHECKS: dict[str, Callable[[str], str]] = {
    "bind": _canonical_bind,
    "forwarded_allow_ips": _trusted_peer,
    "proxy_allow_from": _trusted_peer,
    "static": _static_mount,
    "compress_types": _media_range,
}


def check_list(name: str, items: tuple[str, ...]) -> tuple[str, ...]:
    """Validate and normalise the items of a LIST setting."""
    check = _ITEM_CHECKS.get(name)
    checked = tuple(check(item) for item in items) if check else items
    if name == "bind":
        if not checked:
            raise InvalidValue(f"expected at least one address ({BIND_FORM})")
        duplicates = sorted({item for item in checked if checked.count(item) > 1})
        if duplicates:
            raise InvalidValue(f"address given twice: {', '.join(duplicates)}")
    if name == "static":
        prefixes = [item.partition("=")[0] for item in checked]
        duplicates = sorted({prefix for prefix in prefixes if prefixes.count(prefix) > 1})
        if duplicates:
            raise InvalidValue(f"URL prefix given twice: {', '.join(duplicates)}")
    return checked


def _user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
    except KeyError:
        return False
    return True


def _group_exists(name: str) -> bool:
    try:
        grp.getgrnam(name)
    except KeyError:
        return False
    return True


def check_string(name: str, text: str) -> str:
    """Validate a STR setting; --user and --group must exist (or be numeric ids)."""
    if name == "user" and not (_WHOLE.fullmatch(text) or _user_exists(text)):
        raise _expected(_STRING_FORMS[name], text)
    if name == "group" and not (_WHOLE.fullmatch(text) or _group_exists(text)):
        raise _expected(_STRING_FORMS[name], text)
    if name == "static_cache_control" and not _HEADER_VALUE.fullmatch(text):
        raise _expected(_STRING_FORMS[name], text)  # RFC 9110 §5.5: no CR, LF or NUL
    if name == "static_index" and not _INDEX_NAME.fullmatch(text):
        raise _expected(_STRING_FORMS[name], text)
    if name == "forwarded_headers" and text not in ("x-forwarded", "forwarded"):
        raise _expected(_STRING_FORMS[name], text)
    return text


# --- back to text (for --print-config, --help and the docs) ----------------------


def display_value(kind: Kind, value: SettingValue) -> str:
    """A value as a person would type it on the command line (sizes as 1G, modes as 0o022)."""
    if value is None:
        return "unset"
    if isinstance(value, tuple):
        return ",".join(value) if value else "empty"
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind is Kind.OCTAL and isinstance(value, int):
        return f"0o{value:03o}"
    if kind is Kind.BYTES and isinstance(value, int):
        for unit, size in sorted(_SIZE_UNITS.items(), key=lambda item: -item[1]):
            if value and value % size == 0:
                return f"{value // size}{unit.upper()}"
    if isinstance(value, float):
        return f"{value:g}"
    return str(value) if value != "" else '""'


def _toml_string(text: str) -> str:
    out = []
    for char in text:
        if char in '"\\':
            out.append("\\" + char)
        elif ord(char) < 0x20 or ord(char) == 0x7F:
            out.append(f"\\u{ord(char):04x}")
        else:
            out.append(char)
    return '"' + "".join(out) + '"'


def toml_literal(kind: Kind, value: SettingValue) -> str | None:
    """A TOML literal that :func:`parse_toml` reads back as ``value``; None for unset."""
    if value is None:
        return None
    if isinstance(value, tuple):
        return "[" + ", ".join(_toml_string(item) for item in value) + "]"
    if isinstance(value, bool):
        return "true" if value else "false"
    if kind is Kind.OCTAL and isinstance(value, int):
        return f'"0o{value:03o}"'
    if isinstance(value, float):
        return repr(value)
    if isinstance(value, int):
        return str(value)
    return _toml_string(value)
