"""What the benchmark runs: every server's exact command line and every scenario.

Fairness rules, applied here and nowhere else:

* every server loads the same WSGI callable from ``bench/apps`` (cwd and
  PYTHONPATH are ``bench/apps`` for all of them);
* one worker process each (a master process, where the server has one, is idle
  but its CPU is counted too);
* threads: ``scenario.threads`` for every server that has a thread setting
  (1 for throughput scenarios, 8 for the blocking app); gunicorn sync and bjoern
  are single-threaded by design; ``gunicorn-gthread`` and ``porch-t8`` always
  run 8 threads, as the threaded reference points;
* no access logs anywhere; capacity limits that would refuse 1,000 connections
  outright are raised the same way for everyone who has them (backlog 1024+,
  connection limits 2000), and those flags stay on in every scenario;
* static files (issue 4): every server that can serve files itself serves the
  same files, written by the harness into one directory per run, under
  ``/static/`` with its own file handler and its default response headers
  (porch: ETag, Last-Modified, Cache-Control; nginx: ETag, Last-Modified;
  uWSGI: Last-Modified; granian: Cache-Control, chunked, no Content-Length).
  Nothing is compressed (wrk sends no Accept-Encoding) and no server caches
  open files (nginx's ``open_file_cache`` stays off, its default). nginx uses
  ``sendfile on``; uWSGI has no offload threads (its one worker sends the file);
  the app behind porch, uWSGI and granian is hello, which a static request never
  reaches. gunicorn, waitress and bjoern cannot serve files without app code
  and are left out.
"""

from __future__ import annotations

import random
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
APPS_DIR = BENCH_DIR / "apps"
VENV_BIN = BENCH_DIR / ".venv" / "bin"
HOST = "127.0.0.1"
KIB = 1024
MIB = 1024 * KIB
STATIC_PREFIX = "/static"  # URL prefix of the static scenarios, for every server


@dataclass(frozen=True, slots=True, kw_only=True)
class Launch:
    """Everything a command line depends on."""

    app: str  # "module:attr" inside bench/apps
    port: int
    threads: int
    tmp_dir: Path  # per-run scratch directory (nginx config, pid files)
    static_dir: Path | None = None  # static scenarios: serve this directory at STATIC_PREFIX


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    name: str
    description: str
    command: Callable[[Launch], list[str]]
    wsgi: bool = True  # False: nginx, which serves a fixed response, not the app
    module: str | None = None  # import name that must exist in the venv
    ready_line: str | None = None  # a log line the server promises once it serves


@dataclass(frozen=True, slots=True, kw_only=True)
class StaticFile:
    """A file the harness writes for a static scenario; same bytes on every run."""

    name: str
    size: int
    text: bool  # True: CSS rules; False: incompressible bytes (an image, an archive)

    @property
    def path(self) -> str:
        return f"{STATIC_PREFIX}/{self.name}"

    def content(self) -> bytes:
        """Deterministic bytes of exactly ``size`` (the probe compares them too)."""
        if not self.text:
            return random.Random(self.name).randbytes(self.size)
        rules: list[str] = []
        length = index = 0
        while True:
            rule = (
                f".c{index:04d} {{ margin: {index % 7}px {index % 5}px; "
                f"color: #{(index * 2654435761) & 0xFFFFFF:06x}; }}\n"
            )
            if length + len(rule) + len("/**/\n") > self.size:
                break
            rules.append(rule)
            length += len(rule)
            index += 1
        padding = self.size - length - len("/**/\n")
        rules.append("/*" + "-" * padding + "*/\n")  # exact size
        return "".join(rules).encode("ascii")

    def write(self, directory: Path) -> None:
        directory.mkdir(parents=True, exist_ok=True)
        (directory / self.name).write_bytes(self.content())


@dataclass(frozen=True, slots=True, kw_only=True)
class Scenario:
    name: str
    description: str
    app: str
    path: str = "/"
    expect_body_bytes: int | None = 13  # probe check before measuring
    connections: int = 64
    threads: int = 1
    post_body_bytes: int = 0
    headers: tuple[str, ...] = ()
    servers: tuple[str, ...] = ()
    load: bool = True  # False: start, probe once, sit idle, measure RSS only
    static_file: StaticFile | None = None  # served by the server itself at static_file.path


def _bin(name: str) -> str:
    return str(VENV_BIN / name)


def _porch(fixed_threads: int | None) -> Callable[[Launch], list[str]]:
    def command(launch: Launch) -> list[str]:
        threads = fixed_threads or launch.threads
        line = [
            _bin("python"),
            "-m",
            "porch",
            launch.app,
            "-b",
            f"{HOST}:{launch.port}",
            "-w",
            "1",
            "--threads",
            str(threads),
        ]
        if launch.static_dir is not None:
            line += ["--static", f"{STATIC_PREFIX}={launch.static_dir}"]
        return line

    return command


def _gunicorn_sync(launch: Launch) -> list[str]:
    return [_bin("gunicorn"), "-w", "1", "-k", "sync", "-b", f"{HOST}:{launch.port}", launch.app]


def _gunicorn_gthread(launch: Launch) -> list[str]:
    return [
        _bin("gunicorn"),
        "-w",
        "1",
        "-k",
        "gthread",
        "--threads",
        "8",
        "-b",
        f"{HOST}:{launch.port}",
        launch.app,
    ]


def _waitress(launch: Launch) -> list[str]:
    # connection-limit defaults to 100 and select() stops at 1024 fds: both would
    # make the 1,000-connection scenario fail for reasons an operator would configure away.
    return [
        _bin("waitress-serve"),
        f"--listen={HOST}:{launch.port}",
        f"--threads={launch.threads}",
        "--connection-limit=2000",
        "--asyncore-use-poll",
        launch.app,
    ]


def _uwsgi(launch: Launch) -> list[str]:
    # --http-socket closes the connection after every response. Its keep-alive
    # variant (--http11-socket) serves one connection at a time per thread and
    # leaves the other 63 waiting, which measures one connection, not 64; so the
    # closing socket it is, announced with Connection: close so that clients (and
    # wrk) see an orderly close rather than a read error. --listen raises uWSGI's
    # 100-entry backlog.
    command = [
        _bin("uwsgi"),
        "--http-socket",
        f"{HOST}:{launch.port}",
        "--add-header",
        "Connection: close",
        "--module",
        launch.app,
        "--master",
        "--processes",
        "1",
        "--disable-logging",
        "--die-on-term",
        "--need-app",
        "--listen",
        "1024",
    ]
    if launch.threads > 1:
        command += ["--threads", str(launch.threads)]
    if launch.static_dir is not None:
        command += ["--static-map", f"{STATIC_PREFIX}={launch.static_dir}"]
    return command


def _granian(launch: Launch) -> list[str]:
    command = [
        _bin("granian"),
        "--interface",
        "wsgi",
        "--host",
        HOST,
        "--port",
        str(launch.port),
        "--workers",
        "1",
        "--runtime-threads",
        "1",
        "--blocking-threads",
        str(launch.threads),
        "--log-level",
        "warning",
    ]
    if launch.static_dir is not None:
        command += [
            "--static-path-route",
            STATIC_PREFIX,
            "--static-path-mount",
            str(launch.static_dir),
        ]
    return [*command, launch.app]


def _bjoern(launch: Launch) -> list[str]:
    return [
        _bin("python"),
        str(BENCH_DIR / "servers" / "bjoern_serve.py"),
        launch.app,
        HOST,
        str(launch.port),
    ]


NGINX_CONF = """\
daemon off;
master_process on;
worker_processes 1;
pid {tmp}/nginx.pid;
error_log stderr warn;
events {{ worker_connections 4096; }}
http {{
    access_log off;
    keepalive_requests 1000000;
    client_body_temp_path {tmp}/body;
    proxy_temp_path {tmp}/proxy;
    fastcgi_temp_path {tmp}/fastcgi;
    uwsgi_temp_path {tmp}/uwsgi;
    scgi_temp_path {tmp}/scgi;
    server {{
        listen {host}:{port} backlog=1024;
        location / {{
            default_type text/plain;
            return 200 "Hello, World!";
        }}{static}
    }}
}}
"""
NGINX_STATIC = """
        location {prefix}/ {{
            alias {directory}/;
            sendfile on;
            types {{ text/css css; application/octet-stream bin; }}
        }}"""


def _nginx(launch: Launch) -> list[str]:
    conf = launch.tmp_dir / "nginx.conf"
    static = (
        ""
        if launch.static_dir is None
        else NGINX_STATIC.format(prefix=STATIC_PREFIX, directory=launch.static_dir)
    )
    conf.write_text(
        NGINX_CONF.format(tmp=launch.tmp_dir, host=HOST, port=launch.port, static=static)
    )
    return ["nginx", "-p", str(launch.tmp_dir), "-e", "stderr", "-c", str(conf)]


SERVERS: dict[str, Server] = {
    server.name: server
    for server in [
        Server(
            name="porch",
            description="porch, --threads from the scenario (1, or 8 for the blocking app)",
            command=_porch(None),
            module="porch",
            ready_line="porch ready:",
        ),
        Server(
            name="porch-t8",
            description="porch --threads 8",
            command=_porch(8),
            module="porch",
            ready_line="porch ready:",
        ),
        Server(
            name="gunicorn-sync",
            description="gunicorn sync worker",
            command=_gunicorn_sync,
            module="gunicorn",
        ),
        Server(
            name="gunicorn-gthread",
            description="gunicorn gthread worker, 8 threads",
            command=_gunicorn_gthread,
            module="gunicorn",
        ),
        Server(
            name="waitress",
            description="waitress, --threads from the scenario",
            command=_waitress,
            module="waitress",
        ),
        Server(
            name="uwsgi",
            description="uWSGI (pyuwsgi) --http-socket (no keep-alive), master + 1 process",
            command=_uwsgi,
            module="pyuwsgi",
        ),
        Server(
            name="granian",
            description="granian WSGI, 1 runtime thread, blocking threads from the scenario",
            command=_granian,
            module="granian",
        ),
        Server(
            name="bjoern",
            description="bjoern (C, libev), single thread",
            command=_bjoern,
            module="bjoern",
        ),
        Server(
            name="nginx",
            description="nginx: `return 200` for hello, `alias` + sendfile for static files "
            "(ceiling reference, no Python)",
            command=_nginx,
            wsgi=False,
        ),
    ]
}

WSGI_SERVERS = (
    "porch",
    "porch-t8",
    "gunicorn-sync",
    "gunicorn-gthread",
    "waitress",
    "uwsgi",
    "granian",
    "bjoern",
)
WITH_NGINX = (*WSGI_SERVERS, "nginx")
THREADED = ("porch", "gunicorn-gthread", "waitress", "uwsgi", "granian")
# Servers that serve files without app code (issue 4); nginx is the reference.
STATIC = ("porch", "uwsgi", "granian", "nginx")
SMALL_FILE = StaticFile(name="site.css", size=4 * KIB, text=True)
LARGE_FILE = StaticFile(name="blob-1m.bin", size=MIB, text=False)

SCENARIOS: dict[str, Scenario] = {
    scenario.name: scenario
    for scenario in [
        Scenario(
            name="hello",
            description="plaintext 'Hello, World!' (13 bytes, Content-Length)",
            app="plain:hello",
            servers=WITH_NGINX,
        ),
        Scenario(
            name="json",
            description="small JSON object, json.dumps per request",
            app="plain:json_app",
            expect_body_bytes=None,
            servers=WSGI_SERVERS,
        ),
        Scenario(
            name="flask",
            description="Flask hello (one route, text/plain)",
            app="flask_app:app",
            servers=WSGI_SERVERS,
        ),
        Scenario(
            name="django",
            description="Django hello view (security, common, "
            "clickjacking middleware; no database)",
            app="django_app:application",
            servers=WSGI_SERVERS,
        ),
        Scenario(
            name="body-64k",
            description="64 KiB response body",
            app="plain:body_64k",
            expect_body_bytes=64 * KIB,
            servers=WSGI_SERVERS,
        ),
        Scenario(
            name="body-1m",
            description="1 MiB response body",
            app="plain:body_1m",
            expect_body_bytes=MIB,
            servers=WSGI_SERVERS,
        ),
        Scenario(
            name="upload-1m",
            description="1 MiB POST body read fully by the app (64 KiB reads)",
            app="plain:upload",
            post_body_bytes=MIB,
            expect_body_bytes=len(str(MIB)),
            servers=WSGI_SERVERS,
        ),
        Scenario(
            name="conn-1000",
            description="hello with 1,000 concurrent keep-alive connections",
            app="plain:hello",
            connections=1000,
            servers=WITH_NGINX,
        ),
        Scenario(
            name="close",
            description="hello with `Connection: close` on every request",
            app="plain:hello",
            headers=("Connection: close",),
            servers=WITH_NGINX,
        ),
        Scenario(
            name="sleep-10ms",
            description="blocking app sleeping 10 ms, 8 threads everywhere (ideal: 800 req/s)",
            app="plain:sleep_10ms",
            threads=8,
            servers=THREADED,
        ),
        Scenario(
            name="idle-rss",
            description="RSS of an idle worker after one hello request",
            app="plain:hello",
            load=False,
            servers=WSGI_SERVERS,
        ),
        Scenario(
            name="static-small",
            description=f"static file {SMALL_FILE.path} (4 KiB of CSS), "
            "served by the server itself, not the app",
            app="plain:hello",
            path=SMALL_FILE.path,
            expect_body_bytes=SMALL_FILE.size,
            static_file=SMALL_FILE,
            servers=STATIC,
        ),
        Scenario(
            name="static-1m",
            description=f"static file {LARGE_FILE.path} (1 MiB, incompressible bytes), "
            "served by the server itself, not the app",
            app="plain:hello",
            path=LARGE_FILE.path,
            expect_body_bytes=LARGE_FILE.size,
            static_file=LARGE_FILE,
            servers=STATIC,
        ),
    ]
}
