"""Access-log records: the format's atoms, the ``json`` format, escaping.

Access-log values that come from the client (path, query, headers, user) are
escaped so that they cannot forge a log line: in the text format ``"`` and ``\\``
get a backslash and control characters and non-ASCII become ``\\xNN`` (the bytes
of the request, since PEP 3333 strings are latin-1); the ``json`` format relies
on ``json.dumps`` (ASCII only, so no raw newline can appear in a record).
"""

from __future__ import annotations

import base64
import json
import logging
import os
import re
import time
from collections.abc import Callable

from porch.config.settings import Config
from porch.errors import ConfigError
from porch.log import ACCESS_LOGGER, ERROR_LOGGER, JSON_FORMAT
from porch.types import Environ, HeaderPairs

__all__ = ["AccessLog", "check_access_format", "escape"]

# --- escaping ------------------------------------------------------------------

# Control characters, DEL and latin-1 upper half (one char per request byte under
# PEP 3333) become \xNN; quote and backslash get a backslash.
_ESCAPE_TABLE: dict[int, str] = {
    code: f"\\x{code:02x}" for code in (*range(0x20), *range(0x7F, 0x100))
}
_ESCAPE_TABLE[ord('"')] = '\\"'
_ESCAPE_TABLE[ord("\\")] = "\\\\"


def escape(value: str) -> str:
    """Make ``value`` safe inside a quoted field of a one-line text log record."""
    if value.isascii() and value.isprintable() and '"' not in value and "\\" not in value:
        return value  # the common case: nothing to do
    escaped = value.translate(_ESCAPE_TABLE)
    if escaped.isascii():
        return escaped
    # Characters above U+00FF (only from app-modified environ): their UTF-8 bytes.
    return "".join(
        char
        if char.isascii()
        else "".join(f"\\x{byte:02x}" for byte in char.encode("utf-8", "surrogatepass"))
        for char in escaped
    )


def _wsgi_text(value: str) -> str:
    """Turn a PEP 3333 latin-1 "bytes as str" value back into readable text (for JSON)."""
    if value.isascii():
        return value
    try:
        return value.encode("latin-1").decode("utf-8", "backslashreplace")
    except UnicodeEncodeError:
        return value  # already real text (set by the app)


# --- access-log atoms ----------------------------------------------------------

_Atom = Callable[[Environ, str, HeaderPairs, int, float], str]

_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


class _ClfClock:
    """Formats ``[24/Nov/2026:10:00:00 +0000]`` in local time, once per second."""

    __slots__ = ("_cached",)

    def __init__(self) -> None:
        self._cached: tuple[int, str] = (-1, "")

    def __call__(self, timestamp: float) -> str:
        second = int(timestamp)
        cached = self._cached  # read once: another thread may replace it
        if cached[0] == second:
            return cached[1]
        tm = time.localtime(second)
        offset = tm.tm_gmtoff
        sign = "+" if offset >= 0 else "-"
        offset = abs(offset)
        text = (
            f"[{tm.tm_mday:02d}/{_MONTHS[tm.tm_mon - 1]}/{tm.tm_year}:"
            f"{tm.tm_hour:02d}:{tm.tm_min:02d}:{tm.tm_sec:02d} "
            f"{sign}{offset // 3600:02d}{offset % 3600 // 60:02d}]"
        )
        self._cached = (second, text)
        return text


_clf_clock = _ClfClock()


def _environ_str(environ: Environ, key: str) -> str:
    value = environ.get(key)
    return escape(value if isinstance(value, str) else str(value)) if value else "-"


def _path(environ: Environ) -> str:
    return str(environ.get("SCRIPT_NAME", "")) + str(environ.get("PATH_INFO", ""))


def _request_uri(environ: Environ) -> str:
    """The request target as the client sent it, when the environ keeps it."""
    raw = environ.get("RAW_URI") or environ.get("REQUEST_URI")
    if raw:
        return str(raw)
    query = environ.get("QUERY_STRING")
    return f"{_path(environ)}?{query}" if query else _path(environ)


def _atom_user(environ: Environ, *_: object) -> str:
    auth = environ.get("HTTP_AUTHORIZATION")
    if not isinstance(auth, str) or auth[:6].lower() != "basic ":
        return "-"
    try:
        decoded = base64.b64decode(auth[6:].strip(), validate=True).decode("latin-1")
    except ValueError:  # binascii.Error, or non-ASCII text
        return "-"
    user = decoded.partition(":")[0]
    return escape(user) if user else "-"


def _atom_request_line(environ: Environ, *_: object) -> str:
    method = environ.get("REQUEST_METHOD")
    if method is None:  # a request refused before its head was parsed
        return "-"
    protocol = environ.get("SERVER_PROTOCOL", "-")
    return escape(f"{method} {_request_uri(environ)} {protocol}")


def _atom_time(
    environ: Environ, status: str, headers: HeaderPairs, body_bytes: int, duration_s: float
) -> str:
    # Apache semantics: the time the request started.
    return _clf_clock(time.time() - duration_s)


def _atom_status(environ: Environ, status: str, *_: object) -> str:
    return escape(status.partition(" ")[0])


def _atom_bytes(
    environ: Environ, status: str, headers: HeaderPairs, body_bytes: int, duration_s: float
) -> str:
    return str(body_bytes)


def _atom_bytes_or_dash(
    environ: Environ, status: str, headers: HeaderPairs, body_bytes: int, duration_s: float
) -> str:
    return str(body_bytes) if body_bytes else "-"


def _atom_seconds(
    environ: Environ, status: str, headers: HeaderPairs, body_bytes: int, duration_s: float
) -> str:
    return str(int(duration_s))


def _atom_millis(
    environ: Environ, status: str, headers: HeaderPairs, body_bytes: int, duration_s: float
) -> str:
    return str(int(duration_s * 1_000))


def _atom_micros(
    environ: Environ, status: str, headers: HeaderPairs, body_bytes: int, duration_s: float
) -> str:
    return str(int(duration_s * 1_000_000))


def _atom_decimal_seconds(
    environ: Environ, status: str, headers: HeaderPairs, body_bytes: int, duration_s: float
) -> str:
    return f"{duration_s:.6f}"


def _environ_atom(key: str) -> _Atom:
    def atom(environ: Environ, *_: object) -> str:
        return _environ_str(environ, key)

    return atom


def _request_header_atom(name: str) -> _Atom:
    key = name.strip().upper().replace("-", "_")
    if key not in ("CONTENT_TYPE", "CONTENT_LENGTH"):
        key = "HTTP_" + key
    return _environ_atom(key)


def _response_header_atom(name: str) -> _Atom:
    wanted = name.strip().lower()

    def atom(environ: Environ, status: str, headers: HeaderPairs, *_: object) -> str:
        values = [value for field, value in headers if field.lower() == wanted]
        return escape(", ".join(values)) if values else "-"

    return atom


def _literal_atom(text: str) -> _Atom:
    def atom(*_: object) -> str:
        return text

    return atom


_PID = [os.getpid()]  # refreshed in every forked child


def _refresh_pid() -> None:
    _PID[0] = os.getpid()


os.register_at_fork(after_in_child=_refresh_pid)


def _atom_pid(*_: object) -> str:
    return str(_PID[0])


_ATOMS: dict[str, _Atom] = {
    "h": _environ_atom("REMOTE_ADDR"),
    "l": _literal_atom("-"),
    "u": _atom_user,
    "t": _atom_time,
    "r": _atom_request_line,
    "m": _environ_atom("REQUEST_METHOD"),
    "U": lambda environ, *_: escape(_path(environ)) or "-",
    "q": lambda environ, *_: escape(str(environ.get("QUERY_STRING", ""))),
    "H": _environ_atom("SERVER_PROTOCOL"),
    "s": _atom_status,
    "B": _atom_bytes,
    "b": _atom_bytes_or_dash,
    "f": _environ_atom("HTTP_REFERER"),
    "a": _environ_atom("HTTP_USER_AGENT"),
    "T": _atom_seconds,
    "M": _atom_millis,
    "D": _atom_micros,
    "L": _atom_decimal_seconds,
    "p": _atom_pid,
}

# %(x)s or %({name}i)s / %({name}o)s / %({key}e)s
_ATOM_PATTERN = re.compile(r"%\(([^)]*)\)s")
_BRACED_ATOM = re.compile(r"\{([^}]+)\}([ioe])\Z")


def _compile_atom(key: str) -> _Atom:
    simple = _ATOMS.get(key)
    if simple is not None:
        return simple
    braced = _BRACED_ATOM.match(key)
    if braced is None:
        known = " ".join(f"%({name})s" for name in _ATOMS)
        raise ConfigError(
            f"--access-logformat: unknown atom %({key})s (known: {known}, "
            "%({header}i)s, %({header}o)s, %({key}e)s)"
        )
    name, kind = braced.groups()
    if kind == "i":
        return _request_header_atom(name)
    if kind == "o":
        return _response_header_atom(name)
    return _environ_atom(name)


# --- the access log --------------------------------------------------------------


def check_access_format(template: str) -> None:
    """Raise ConfigError unless ``template`` is a usable ``--access-logformat``."""
    if template.strip() != JSON_FORMAT:
        _compile_format(template)


def _compile_format(template: str) -> dict[str, _Atom]:
    """The atoms a text format uses, each compiled once; ConfigError when it is unusable."""
    atoms = {key: _compile_atom(key) for key in _ATOM_PATTERN.findall(template)}
    try:
        template % dict.fromkeys(atoms, "-")
    except (ValueError, TypeError, KeyError) as exc:
        raise ConfigError(
            f"--access-logformat: invalid format {template!r}: {exc!r} "
            "(use %(atom)s and write a literal percent sign as %%)"
        ) from exc
    return atoms


class AccessLog:
    """Formats and writes one ``porch.access`` record per request."""

    def __init__(self, config: Config) -> None:
        self._logger = logging.getLogger(ACCESS_LOGGER)
        self._error_logger = logging.getLogger(ERROR_LOGGER)
        if config.log_config is not None:
            logger = self._logger
            self.enabled: bool = (
                not logger.disabled and logger.isEnabledFor(logging.INFO) and logger.hasHandlers()
            )
        else:
            self.enabled = config.access_logfile is not None

        self._json = config.access_logformat.strip() == JSON_FORMAT
        self._template = config.access_logformat
        atoms = {} if self._json else _compile_format(self._template)
        # Only the atoms the format uses are computed on each request.
        self._atoms: tuple[tuple[str, _Atom], ...] = tuple(atoms.items())

    def format(
        self,
        environ: Environ,
        status: str,
        response_headers: HeaderPairs,
        body_bytes: int,
        duration_s: float,
    ) -> str:
        """Return the access-log line (without newline) for one finished request."""
        if self._json:
            return _json_line(environ, status, body_bytes, duration_s)
        values = {
            key: atom(environ, status, response_headers, body_bytes, duration_s)
            for key, atom in self._atoms
        }
        return self._template % values

    def log(
        self,
        environ: Environ,
        status: str,
        response_headers: HeaderPairs,
        body_bytes: int,
        duration_s: float,
        raw_target: bytes = b"",
    ) -> None:
        """Write the record for one finished request (no-op when the access log is off).

        ``raw_target`` is the request-target as received: ``%(r)s`` shows it (as
        ``RAW_URI``), not the decoded path.
        """
        if not self.enabled:
            return
        if raw_target:
            environ.setdefault("RAW_URI", raw_target.decode("latin-1"))
        try:
            line = self.format(environ, status, response_headers, body_bytes, duration_s)
        except Exception:
            # A malformed environ (set by the app) must not fail the request.
            self._error_logger.exception("cannot format access log record")
            return
        logger = self._logger
        # makeRecord + handle skips Logger._log's stack walk (findCaller).
        logger.handle(logger.makeRecord(ACCESS_LOGGER, logging.INFO, "", 0, line, (), None))


def _json_line(environ: Environ, status: str, body_bytes: int, duration_s: float) -> str:
    import datetime  # here (~0.15 us a record): only the json format needs the module

    code = status.partition(" ")[0]
    started = datetime.datetime.fromtimestamp(time.time() - duration_s).astimezone()
    record = {
        "remote_addr": _json_value(environ.get("REMOTE_ADDR")),
        "time": started.isoformat(timespec="milliseconds"),
        "method": _json_value(environ.get("REQUEST_METHOD")),
        "path": _wsgi_text(_path(environ)),
        "query": _json_value(environ.get("QUERY_STRING")) or "",
        "protocol": _json_value(environ.get("SERVER_PROTOCOL")),
        "status": int(code) if code.isdigit() else status,
        "bytes": body_bytes,
        "duration_ms": round(duration_s * 1_000, 3),
        "referer": _json_value(environ.get("HTTP_REFERER")),
        "user_agent": _json_value(environ.get("HTTP_USER_AGENT")),
        "pid": _PID[0],
    }
    # ensure_ascii (the default) guarantees a single line whatever the values hold.
    return json.dumps(record, separators=(",", ":"))


def _json_value(value: object) -> str | None:
    if value is None:
        return None
    return _wsgi_text(value if isinstance(value, str) else str(value))
