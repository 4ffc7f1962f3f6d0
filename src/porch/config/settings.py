"""Every porch setting, declared once: type, default, flags, env var, TOML key and help.

The CLI parser, the ``PORCH_*`` environment loader, the TOML loader and
``docs/settings.md`` are all generated from the field metadata below.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class Kind(StrEnum):
    """How a raw string value (from CLI or env) is converted."""

    STR = "str"
    INT = "int"  # non-negative integer
    POS_INT = "pos_int"  # integer >= 1
    SECONDS = "seconds"  # non-negative float, seconds
    BYTES = "bytes"  # size with optional K/M/G suffix (1024-based)
    BOOL = "bool"  # flag on the CLI; true/false/1/0/yes/no in env and file
    OCTAL = "octal"  # file mode such as 0o22 or 022
    LIST = "list"  # repeatable flag; comma separated in env; array in TOML
    LOG_LEVEL = "log_level"  # debug, info, warning, error, critical


@dataclass(frozen=True, slots=True)
class Meta:
    """What the generators need to know about one setting."""

    kind: Kind
    flags: tuple[str, ...]
    help: str
    section: str
    env: bool = True  # also read from PORCH_<NAME>
    metavar: str | None = None


def setting(
    default: Any,
    kind: Kind,
    *flags: str,
    help: str,
    section: str,
    env: bool = True,
    metavar: str | None = None,
) -> Any:
    """Declare one setting as a dataclass field carrying its :class:`Meta`."""
    meta = Meta(kind=kind, flags=flags, help=help, section=section, env=env, metavar=metavar)
    if isinstance(default, list | tuple):
        value = tuple(default)
        return dataclasses.field(default=value, metadata={"porch": meta})
    return dataclasses.field(default=default, metadata={"porch": meta})


# The most worker processes --workers (and TTIN) may ask for. A worker is a process
# of its own (tens of MiB): a mistyped count must be refused before it forks the
# host to a halt, and 1024 is well above one worker per core on any host porch targets.
MAX_WORKERS = 1024

DEFAULT_ACCESS_LOG_FORMAT = '%(h)s %(l)s %(u)s %(t)s "%(r)s" %(s)s %(b)s "%(f)s" "%(a)s"'

# Text formats, and binary formats that are not compressed already (fonts, icons, wasm).
DEFAULT_COMPRESS_TYPES = (
    "text/*",
    "application/json",
    "application/javascript",
    "application/x-javascript",
    "application/xml",
    "application/xhtml+xml",
    "application/rss+xml",
    "application/atom+xml",
    "application/ld+json",
    "application/manifest+json",
    "application/problem+json",
    "application/geo+json",
    "application/graphql-response+json",
    "application/wasm",
    "image/svg+xml",
    "image/x-icon",
    "image/vnd.microsoft.icon",
    "font/ttf",
    "font/otf",
    "application/vnd.ms-fontobject",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Config:
    """The complete, validated configuration of one porch master."""

    # --- application -------------------------------------------------------
    app: str | None = setting(
        None,
        Kind.STR,
        help="The WSGI application: 'module:attr', 'module:factory()' "
        "or a path to a Python file ('examples/hello.py', attribute 'app' or 'application').",
        section="Application",
        metavar="APP",
    )
    chdir: str | None = setting(
        None,
        Kind.STR,
        "--chdir",
        help="The app's working directory: workers change to it before loading the app "
        "(with --preload the master imports the app there, then goes back). Relative "
        "paths of other settings and -c stay relative to where porch was started.",
        section="Application",
        metavar="DIR",
    )
    pythonpath: tuple[str, ...] = setting(
        (),
        Kind.LIST,
        "--pythonpath",
        help="Directories prepended to sys.path (repeatable, or comma separated).",
        section="Application",
        metavar="DIR",
    )
    preload: bool = setting(
        False,
        Kind.BOOL,
        "--preload",
        help="Load the app in the master before forking workers (saves memory; "
        "HUP then re-reads config but does not re-import the app).",
        section="Application",
    )
    reload: bool = setting(
        False,
        Kind.BOOL,
        "--reload",
        help="Restart workers when Python source files change (development only).",
        section="Application",
    )

    # --- server sockets -----------------------------------------------------
    bind: tuple[str, ...] = setting(
        ("127.0.0.1:8000",),
        Kind.LIST,
        "-b",
        "--bind",
        help="Address to listen on: HOST:PORT, [IPV6]:PORT, unix:/path, fd://N "
        "(repeatable). Defaults to 127.0.0.1:8000, or 0.0.0.0:$PORT when PORT is set.",
        section="Server sockets",
        metavar="ADDRESS",
    )
    backlog: int = setting(
        2048,
        Kind.POS_INT,
        "--backlog",
        help="Listen queue length of each socket.",
        section="Server sockets",
    )
    socket_mode: int | None = setting(
        None,
        Kind.OCTAL,
        "--socket-mode",
        help="File mode of UNIX sockets created by porch (for example 660).",
        section="Server sockets",
    )

    # --- processes ----------------------------------------------------------
    workers: int = setting(
        1,
        Kind.POS_INT,
        "-w",
        "--workers",
        help=f"Number of worker processes, at most {MAX_WORKERS} "
        "(WEB_CONCURRENCY is honoured when unset).",
        section="Processes",
    )
    threads: int = setting(
        1,
        Kind.POS_INT,
        "--threads",
        help="App threads per worker. 1 runs the app inline on the event loop (fastest); "
        "N runs it on a pool of N threads while the loop does all socket I/O.",
        section="Processes",
    )
    worker_connections: int = setting(
        1000,
        Kind.POS_INT,
        "--worker-connections",
        help="Maximum simultaneous connections per worker; more wait in the backlog.",
        section="Processes",
    )
    timeout: float = setting(
        30.0,
        Kind.SECONDS,
        "-t",
        "--timeout",
        help="A request whose app runs longer than this is logged with its stack and its "
        "worker replaced; time spent waiting for a slow client does not count; 0 disables. "
        "A worker importing the app for longer than this + 2s counts as a failed boot.",
        section="Processes",
    )
    graceful_timeout: float = setting(
        30.0,
        Kind.SECONDS,
        "--graceful-timeout",
        help="Time workers get to finish in-flight requests on TERM, HUP or recycling.",
        section="Processes",
    )
    max_requests: int = setting(
        0,
        Kind.INT,
        "--max-requests",
        help="Recycle a worker gracefully after this many requests; 0 disables.",
        section="Processes",
    )
    max_requests_jitter: int = setting(
        0,
        Kind.INT,
        "--max-requests-jitter",
        help="Add a random 0..N to --max-requests per worker, so workers do not recycle together.",
        section="Processes",
    )
    max_worker_memory: int = setting(
        0,
        Kind.BYTES,
        "--max-worker-memory",
        help="Recycle a worker gracefully when its RSS exceeds this size (e.g. 512M); 0 disables.",
        section="Processes",
    )
    user: str | None = setting(
        None,
        Kind.STR,
        "-u",
        "--user",
        help="Switch worker processes to this user. Run as root, the master gives it the log "
        "files (also those of --log-config), so that workers can reopen them on USR1.",
        section="Processes",
    )
    group: str | None = setting(
        None,
        Kind.STR,
        "-g",
        "--group",
        help="Switch worker processes to this group (and give it the log files, as for --user).",
        section="Processes",
    )
    umask: int = setting(
        0o22,
        Kind.OCTAL,
        "-m",
        "--umask",
        help="umask of the porch processes.",
        section="Processes",
    )
    pid: str | None = setting(
        None,
        Kind.STR,
        "-p",
        "--pid",
        help="Write the master's PID to this file (refused when it names a porch still running).",
        section="Processes",
        metavar="FILE",
    )

    # --- HTTP limits and timeouts ----------------------------------------------
    keep_alive: float = setting(
        5.0,
        Kind.SECONDS,
        "--keep-alive",
        help="Seconds an idle keep-alive connection is kept open; 0 disables keep-alive.",
        section="HTTP",
    )
    limit_request_line: int = setting(
        8190,
        Kind.POS_INT,
        "--limit-request-line",
        help="Maximum size of the request line in bytes (larger: 414).",
        section="HTTP",
    )
    limit_request_fields: int = setting(
        100,
        Kind.POS_INT,
        "--limit-request-fields",
        help="Maximum number of request header fields (more: 431).",
        section="HTTP",
    )
    limit_request_field_size: int = setting(
        8190,
        Kind.POS_INT,
        "--limit-request-field-size",
        help="Maximum size of one request header field, name and value (larger: 431).",
        section="HTTP",
    )
    limit_request_body: int = setting(
        1024**3,
        Kind.BYTES,
        "--limit-request-body",
        help="Maximum request body size (e.g. 10M); larger bodies get 413; 0 is unlimited.",
        section="HTTP",
    )
    body_buffer_size: int = setting(
        1024**2,
        Kind.BYTES,
        "--body-buffer-size",
        help="Buffered request bodies up to this size are kept in memory; larger ones spill "
        "to a temporary file.",
        section="HTTP",
    )
    request_buffering: bool = setting(
        True,
        Kind.BOOL,
        "--request-buffering",
        help="Receive the whole request body before calling the app, so a slow upload never "
        "holds an app thread. --no-request-buffering calls the app once the head is parsed: "
        "wsgi.input reads wait for the body as it arrives, with at most 256K of it unread in "
        "memory (streaming uploads; with --threads 1 a slow upload holds the whole worker). "
        "See docs/deployment.md.",
        section="HTTP",
    )
    header_timeout: float = setting(
        10.0,
        Kind.SECONDS,
        "--header-timeout",
        help="Time a client gets to send a complete request head (slowloris guard).",
        section="HTTP",
    )
    body_timeout: float = setting(
        30.0,
        Kind.SECONDS,
        "--body-timeout",
        help="Time a client may go without sending request body bytes.",
        section="HTTP",
    )
    write_timeout: float = setting(
        30.0,
        Kind.SECONDS,
        "--write-timeout",
        help="Time a client may go without reading response bytes.",
        section="HTTP",
    )
    forwarded_allow_ips: tuple[str, ...] = setting(
        ("127.0.0.1", "::1"),
        Kind.LIST,
        "--forwarded-allow-ips",
        help="Peers whose X-Forwarded-* headers are trusted ('*' for all).",
        section="HTTP",
        metavar="IPS",
    )
    proxy_protocol: bool = setting(
        False,
        Kind.BOOL,
        "--proxy-protocol",
        help="Every connection must start with a PROXY protocol header (v1 or v2, detected); "
        "its source address becomes REMOTE_ADDR. Use only behind a proxy that sends it.",
        section="HTTP",
    )
    proxy_allow_from: tuple[str, ...] = setting(
        ("127.0.0.1", "::1"),
        Kind.LIST,
        "--proxy-allow-from",
        help="With --proxy-protocol, the peers allowed to connect and send PROXY headers "
        "('*' for all); connections from any other peer are refused.",
        section="HTTP",
        metavar="IPS",
    )
    forwarded_headers: str = setting(
        "x-forwarded",
        Kind.STR,
        "--forwarded-headers",
        help="Which forwarding headers trusted proxies set: 'x-forwarded' "
        "(X-Forwarded-For/-Proto/-Host/-Port/-Prefix, as nginx, haproxy and most load "
        "balancers send) or 'forwarded' (RFC 7239). The other style is always removed, "
        "so a client cannot slip it past a proxy that does not overwrite it.",
        section="HTTP",
    )
    server_header: bool = setting(
        True,
        Kind.BOOL,
        "--server-header",
        help="Send 'Server: porch' on responses that do not set one.",
        section="HTTP",
    )

    # --- overload protection ----------------------------------------------------
    max_client_connections: int = setting(
        0,
        Kind.INT,
        "--max-client-connections",
        help="Open connections one client address may hold per worker; more are answered "
        "503 and closed. 0 disables.",
        section="Overload",
    )
    rate_limit: int = setting(
        0,
        Kind.INT,
        "--rate-limit",
        help="Requests per second one client address may make per worker (token bucket); "
        "excess requests get 429 with Retry-After. 0 disables.",
        section="Overload",
        metavar="PER_SECOND",
    )
    rate_limit_burst: int = setting(
        20,
        Kind.POS_INT,
        "--rate-limit-burst",
        help="Requests a client may make at once before --rate-limit applies.",
        section="Overload",
    )
    request_queue: int = setting(
        0,
        Kind.INT,
        "--request-queue",
        help="With --threads N: requests that may wait for a busy app thread per worker; "
        "beyond that new requests get a quick 503 (load shedding). 0 (the default) "
        "disables shedding. With --threads 1 it has no effect (a warning says so).",
        section="Overload",
    )

    # --- logging --------------------------------------------------------------
    access_logfile: str | None = setting(
        None,
        Kind.STR,
        "--access-logfile",
        help="Access log file; '-' is stdout. Off by default.",
        section="Logging",
        metavar="FILE",
    )
    access_logformat: str = setting(
        DEFAULT_ACCESS_LOG_FORMAT,
        Kind.STR,
        "--access-logformat",
        help="Access log line format (gunicorn atoms, e.g. %(h)s %(r)s %(s)s), or 'json'.",
        section="Logging",
        metavar="FORMAT",
    )
    error_logfile: str = setting(
        "-",
        Kind.STR,
        "--error-logfile",
        "--log-file",
        help="Error log file; '-' is stderr.",
        section="Logging",
        metavar="FILE",
    )
    log_level: str = setting(
        "info",
        Kind.LOG_LEVEL,
        "--log-level",
        help="Error log level: debug, info, warning, error or critical.",
        section="Logging",
    )
    log_config: str | None = setting(
        None,
        Kind.STR,
        "--log-config",
        help="A logging dictConfig file (JSON or TOML) replacing porch's logging setup; "
        "the files its handlers write are reopened on USR1.",
        section="Logging",
        metavar="FILE",
    )

    # --- static files -------------------------------------------------------------
    static: tuple[str, ...] = setting(
        (),
        Kind.LIST,
        "--static",
        help="Serve the files of DIRECTORY under URL_PREFIX before the app sees the request, "
        "e.g. /assets=./public (repeatable). GET and HEAD only; dotfiles are hidden.",
        section="Static files",
        metavar="URL_PREFIX=DIRECTORY",
    )
    static_follow_symlinks: bool = setting(
        False,
        Kind.BOOL,
        "--static-follow-symlinks",
        help="Also serve symbolic links whose target lies outside the --static directory.",
        section="Static files",
    )
    static_cache_control: str = setting(
        "public, max-age=3600",
        Kind.STR,
        "--static-cache-control",
        help="Cache-Control of static files, e.g. 'public, max-age=31536000, immutable' for "
        "fingerprinted assets; empty sends none.",
        section="Static files",
        metavar="VALUE",
    )
    static_index: str = setting(
        "",
        Kind.STR,
        "--static-index",
        help="File served for a directory URL, e.g. index.html; empty: directories are 404 "
        "(never listed).",
        section="Static files",
        metavar="NAME",
    )

    # --- response compression ------------------------------------------------------
    compress: bool = setting(
        False,
        Kind.BOOL,
        "--compress",
        help="Compress app responses with gzip (br and zstd too when the brotli / zstandard "
        "packages are installed) for clients that accept it. Off by default: see "
        "docs/deployment.md (BREACH) before compressing pages that carry secrets.",
        section="Compression",
    )
    compress_level: int = setting(
        6,
        Kind.POS_INT,
        "--compress-level",
        help="gzip level, 1 (fastest) to 9 (smallest); br and zstd use a level of similar cost.",
        section="Compression",
        metavar="LEVEL",
    )
    compress_min_size: int = setting(
        1024,
        Kind.BYTES,
        "--compress-min-size",
        help="Responses whose size is known (Content-Length or a list body) and smaller than "
        "this are sent as they are.",
        section="Compression",
    )
    compress_types: tuple[str, ...] = setting(
        DEFAULT_COMPRESS_TYPES,
        Kind.LIST,
        "--compress-types",
        help="Content types that are compressed: TYPE/SUBTYPE or TYPE/* (repeatable, or comma "
        "separated); a list given replaces the default list.",
        section="Compression",
        metavar="TYPE",
    )
