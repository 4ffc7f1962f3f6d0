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
  connection limits 2000), and those flags stay on in every scenario.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BENCH_DIR = Path(__file__).resolve().parent
APPS_DIR = BENCH_DIR / "apps"
VENV_BIN = BENCH_DIR / ".venv" / "bin"
HOST = "127.0.0.1"
KIB = 1024
MIB = 1024 * KIB


@dataclass(frozen=True, slots=True, kw_only=True)
class Launch:
    """Everything a command line depends on."""

    app: str  # "module:attr" inside bench/apps
    port: int
    threads: int
    tmp_dir: Path  # per-run scratch directory (nginx config, pid files)


@dataclass(frozen=True, slots=True, kw_only=True)
class Server:
    name: str
    description: str
    command: Callable[[Launch], list[str]]
    wsgi: bool = True  # False: nginx, which serves a fixed response, not the app
    module: str | None = None  # import name that must exist in the venv
    ready_line: str | None = None  # a log line the server promises once it serves


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


def _bin(name: str) -> str:
    return str(VENV_BIN / name)


def _porch(fixed_threads: int | None) -> Callable[[Launch], list[str]]:
    def command(launch: Launch) -> list[str]:
        threads = fixed_threads or launch.threads
        return [
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
    return command


def _granian(launch: Launch) -> list[str]:
    return [
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
        launch.app,
    ]


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
        }}
    }}
}}
"""


def _nginx(launch: Launch) -> list[str]:
    conf = launch.tmp_dir / "nginx.conf"
    conf.write_text(NGINX_CONF.format(tmp=launch.tmp_dir, host=HOST, port=launch.port))
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
            description="nginx `return 200` (ceiling reference, no Python)",
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
    ]
}
