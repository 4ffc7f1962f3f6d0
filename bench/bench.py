"""Run porch and its peers through the scenarios of issues 3 and 4 and write the results.

Run it through ``bench/run`` (which installs the peers first); ``bench/README.md``
explains the method, the columns and the fairness rules.
"""

from __future__ import annotations

import argparse
import datetime
import http.client
import json
import os
import platform
import resource
import shlex
import shutil
import signal
import socket
import subprocess
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from catalog import (
    APPS_DIR,
    BENCH_DIR,
    HOST,
    SCENARIOS,
    SERVERS,
    VENV_BIN,
    Launch,
    Scenario,
    Server,
)
from measure import (
    core_busy_seconds,
    describe_tree,
    probe,
    run_wrk,
    stalled_connection,
    tree_cpu_seconds,
    tree_memory,
    wait_for_port,
)
from report import Record, write_json, write_markdown

RESULTS_DIR = BENCH_DIR / "results"
WRK_SCRIPT = BENCH_DIR / "wrk" / "report.lua"
READY_TIMEOUT_S = 30.0
PROBE_TIMEOUT_S = 30.0
STOP_TIMEOUT_S = 10.0
STALL_CHECK_CONNECTIONS = 4
STALL_CHECK_TIMEOUT_S = 2.0
IDLE_SETTLE_S = 1.0
WRK_TIMEOUT_FLAG = "10s"  # per-request timeout inside wrk (1 MiB bodies on slow servers)
WRK_OVERRUN_LIMIT_S = 1.0  # measured window longer than -d by more than this: flagged
SERVER_CORE, WRK_CORE = 0, 1
# Settings other servers would read from the environment: none may leak into a run.
FOREIGN_ENV_PREFIXES = ("PORCH_", "GUNICORN_", "GRANIAN_", "UWSGI_", "WAITRESS_")
FOREIGN_ENV_NAMES = ("WEB_CONCURRENCY", "PORT")
VERSIONED = (
    "porch",
    "gunicorn",
    "waitress",
    "pyuwsgi",
    "granian",
    "bjoern",
    "flask",
    "django",
    "uvloop",
    "httptools",
)


@dataclass(frozen=True, slots=True, kw_only=True)
class Settings:
    mode: str
    duration_s: int
    warmup_s: int
    rounds: int
    pin: bool
    run_dir: Path

    @property
    def static_dir(self) -> Path:
        """The files of the static scenarios, written once per run, served by every server."""
        return self.run_dir / "static"


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run", description=__doc__.splitlines()[0])
    parser.add_argument(
        "--quick",
        action="store_true",
        help="development mode: 1 s warm-up, 3 s runs (numbers are indicative)",
    )
    parser.add_argument(
        "--only", default="", metavar="SCENARIO[,SCENARIO]", help="run only these scenarios"
    )
    parser.add_argument(
        "--servers",
        default="",
        metavar="NAME[,NAME]",
        help="run only these servers (porch is always useful as the reference)",
    )
    parser.add_argument("--duration", type=int, metavar="S", help="measured seconds per run")
    parser.add_argument("--warmup", type=int, metavar="S", help="warm-up seconds per run")
    parser.add_argument(
        "--rounds",
        type=int,
        metavar="N",
        help="runs per server and scenario, interleaved across servers; the median run is "
        "reported (full mode: 3, quick: 1)",
    )
    parser.add_argument("--list", action="store_true", help="list scenarios and servers, then exit")
    return parser.parse_args(argv)


def _names(text: str, known: dict[str, Any], what: str) -> list[str]:
    names = [n.strip() for n in text.split(",") if n.strip()]
    unknown = [n for n in names if n not in known]
    if unknown:
        raise SystemExit(f"bench: unknown {what}: {', '.join(unknown)} (see --list)")
    return names


def server_env() -> dict[str, str]:
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(FOREIGN_ENV_PREFIXES) and k not in FOREIGN_ENV_NAMES
    }
    env["PYTHONPATH"] = str(APPS_DIR)
    env["PATH"] = f"{VENV_BIN}{os.pathsep}{env.get('PATH', '')}"
    return env


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind((HOST, 0))
        return int(sock.getsockname()[1])


def pinned(command: list[str], core: int, settings: Settings) -> list[str]:
    return ["taskset", "-c", str(core), *command] if settings.pin else command


def published(command: list[str]) -> str:
    """The command as a shell line, paths shown relative to the repository root."""
    return shlex.join(command).replace(f"{BENCH_DIR.parent}/", "")


def wrk_command(scenario: Scenario, port: int, seconds: int, settings: Settings) -> list[str]:
    command = [
        "wrk",
        "-t1",
        f"-c{scenario.connections}",
        f"-d{seconds}s",
        "--latency",
        "--timeout",
        WRK_TIMEOUT_FLAG,
        "-s",
        str(WRK_SCRIPT),
    ]
    for header in scenario.headers:
        command += ["-H", header]
    return pinned([*command, f"http://{HOST}:{port}{scenario.path}"], WRK_CORE, settings)


def wrk_env(scenario: Scenario) -> dict[str, str]:
    return {**os.environ, "BENCH_BODY_BYTES": str(scenario.post_body_bytes)}


def stop_server(process: subprocess.Popen[bytes]) -> None:
    """TERM the server, then KILL its process group (ours: started in a new session)."""
    if process.poll() is None:
        process.send_signal(signal.SIGTERM)
        try:
            process.wait(timeout=STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            pass
    try:
        os.killpg(process.pid, signal.SIGKILL)  # leftovers: workers outliving their master
    except ProcessLookupError:
        pass
    process.wait()


def check_probe(scenario: Scenario, port: int) -> None:
    status, body = probe(port, scenario.path, scenario.post_body_bytes, PROBE_TIMEOUT_S)
    if status != 200:
        raise RuntimeError(f"probe answered {status}: {body[:200]!r}")
    expected = scenario.expect_body_bytes
    if expected is not None and len(body) != expected:
        raise RuntimeError(f"probe body has {len(body)} bytes, expected {expected}")
    if scenario.static_file is not None and body != scenario.static_file.content():
        raise RuntimeError(f"probe body has the right size but is not {scenario.static_file.name}")


def measure_load(scenario: Scenario, pid: int, port: int, settings: Settings) -> Record:
    """Warm up, then one measured wrk run with CPU and core counters around it."""
    env = wrk_env(scenario)
    limit_s = settings.duration_s + 60
    if settings.warmup_s:
        run_wrk(wrk_command(scenario, port, settings.warmup_s, settings), env, limit_s)
    command = wrk_command(scenario, port, settings.duration_s, settings)
    children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
    cpu_before, core_before = tree_cpu_seconds(pid), core_busy_seconds(SERVER_CORE)
    window_start = time.monotonic()
    result = run_wrk(command, env, limit_s)
    window_s = time.monotonic() - window_start
    cpu_after, core_after = tree_cpu_seconds(pid), core_busy_seconds(SERVER_CORE)
    children_after = resource.getrusage(resource.RUSAGE_CHILDREN)
    wrk_cpu_s = (
        children_after.ru_utime
        - children_before.ru_utime
        + children_after.ru_stime
        - children_before.ru_stime
    )
    cpu_s = cpu_after - cpu_before
    other_s = max(0.0, (core_after - core_before) - cpu_s) if settings.pin else None
    return {
        "wrk_command": published(command),
        "requests": result.requests,
        "duration_s": round(result.duration_s, 3),
        "requests_per_s": round(result.requests_per_s, 1),
        "latency_us": result.latency_us,
        "errors": result.errors,
        "socket_errors": result.socket_errors,
        "non_2xx": result.errors["status"],
        "bytes_read": result.bytes_read,
        "server_cpu_s": round(cpu_s, 3),
        "cpu_us_per_request": round(cpu_s * 1e6 / result.requests, 2) if result.requests else None,
        "wrk_cpu_percent": round(100 * wrk_cpu_s / result.duration_s, 1),
        "window_s": round(window_s, 3),
        "noise_percent": None if other_s is None else round(100 * other_s / window_s, 1),
        "after": asdict(tree_memory(pid)),
    }


def missing_ready_line(server: Server, log_path: Path, record: Record) -> None:
    """A server that promises a readiness line but served without logging it is flagged."""
    if server.ready_line and server.ready_line not in log_path.read_text(errors="replace"):
        record["warnings"].append(f"served, but never logged {server.ready_line!r}")


def run_one(scenario: Scenario, server: Server, settings: Settings) -> Record:
    """Start one server for one scenario, measure, stop it; failures become a record."""
    tmp_dir = settings.run_dir / f"{scenario.name}-{server.name}"
    tmp_dir.mkdir(parents=True, exist_ok=True)
    port = free_port()
    threads = scenario.threads
    launch = Launch(
        app=scenario.app,
        port=port,
        threads=threads,
        tmp_dir=tmp_dir,
        static_dir=settings.static_dir if scenario.static_file else None,
    )
    command = server.command(launch)
    command = pinned(command, SERVER_CORE, settings)
    record: Record = {
        "scenario": scenario.name,
        "server": server.name,
        "command": published(command),
        "status": "error",
        "warnings": [],
        "loadavg": Path("/proc/loadavg").read_text().split()[0],
    }
    log_path = tmp_dir / "server.log"
    started = time.monotonic()
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            command,
            cwd=APPS_DIR,
            env=server_env(),
            stdin=subprocess.DEVNULL,
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        try:
            wait_for_port(port, process, READY_TIMEOUT_S)
            check_probe(scenario, port)
            stalled = stalled_connection(
                port, scenario.path, STALL_CHECK_CONNECTIONS, STALL_CHECK_TIMEOUT_S
            )
            if stalled is not None:
                record["warnings"].append(
                    f"connection {stalled + 1} was not answered within {STALL_CHECK_TIMEOUT_S:g} s "
                    "while earlier keep-alive connections stayed open: wrk's figures cover only "
                    "the connections this server chose to serve"
                )
            record["startup_s"] = round(time.monotonic() - started, 2)
            time.sleep(IDLE_SETTLE_S)
            record["idle"] = asdict(tree_memory(process.pid))
            if scenario.load:
                record.update(measure_load(scenario, process.pid, port, settings))
                overrun_s = record["window_s"] - settings.duration_s
                if overrun_s > WRK_OVERRUN_LIMIT_S:
                    record["warnings"].append(
                        f"wrk ran {overrun_s:.1f} s past its duration: CPU per request "
                        "includes that time"
                    )
                if process.poll() is not None:
                    raise RuntimeError(f"server exited with code {process.returncode} during run")
            record["status"] = "ok"
            missing_ready_line(server, log_path, record)
        except (RuntimeError, OSError, subprocess.TimeoutExpired, http.client.HTTPException) as exc:
            record["error"] = f"{type(exc).__name__}: {exc}"
            record["tree_at_failure"] = describe_tree(process.pid)
            record["log_tail"] = log_path.read_text(errors="replace")[-2000:]
        finally:
            stop_server(process)
    return record


def median_record(records: list[Record]) -> Record:
    """One server's record for a scenario: its median run (by req/s, or by idle RSS),
    whole, so that its figures come from one run; every run's own figures are kept
    in ``rounds``. A failed run makes the result a failure; errors in any run are kept.
    """
    failed = [r for r in records if r["status"] != "ok"]
    if failed:
        chosen = dict(failed[0])
    else:
        if "requests_per_s" in records[0]:
            ranked = sorted(records, key=lambda r: r["requests_per_s"])
        else:
            ranked = sorted(records, key=lambda r: r["idle"]["worker_rss_kib"])
        chosen = dict(ranked[(len(ranked) - 1) // 2])
    if len(records) > 1:
        chosen["rounds"] = [_round_summary(r) for r in records]
        if not failed and "requests_per_s" in chosen:
            chosen["socket_errors"] = max(r["socket_errors"] for r in records)
            chosen["non_2xx"] = max(r["non_2xx"] for r in records)
        chosen["warnings"] = [w for r in records for w in r["warnings"]]
    return chosen


def _round_summary(record: Record) -> Record:
    keys = ("status", "requests_per_s", "cpu_us_per_request", "socket_errors", "non_2xx",
            "noise_percent", "error")  # fmt: skip
    summary = {key: record[key] for key in keys if key in record}
    if "latency_us" in record:
        summary["p99_us"] = record["latency_us"]["p99"]
    summary["idle_worker_rss_kib"] = record.get("idle", {}).get("worker_rss_kib")
    return summary


def installed_servers() -> tuple[set[str], dict[str, str]]:
    """Which servers can run here, and the versions of everything measured."""
    code = (
        "import importlib.metadata as m, importlib.util as u, json, sys\n"
        "names = sys.argv[1:]\n"
        "out = {}\n"
        "for n in names:\n"
        "    try: out[n] = m.version(n)\n"
        "    except m.PackageNotFoundError: out[n] = None\n"
        "print(json.dumps(out))\n"
    )
    output = subprocess.run(
        [str(VENV_BIN / "python"), "-c", code, *VERSIONED],
        capture_output=True,
        text=True,
        check=True,
    ).stdout
    versions = {k: v for k, v in json.loads(output).items() if v}
    available = {s.name for s in SERVERS.values() if s.module is None or s.module in versions}
    if shutil.which("nginx") is None:
        available.discard("nginx")
    else:
        nginx = subprocess.run(["nginx", "-v"], capture_output=True, text=True).stderr
        versions["nginx"] = nginx.strip().rpartition("/")[2]
    wrk = subprocess.run(["wrk", "--version"], capture_output=True, text=True).stdout
    versions["wrk"] = wrk.split()[1] if wrk else "?"
    versions["python"] = platform.python_version()
    build = subprocess.run(
        [str(VENV_BIN / "python"), "-c", "import porch; print(porch.build_name())"],
        capture_output=True,
        text=True,
        cwd="/",  # the installed porch, not a source tree on the path
    ).stdout.strip()
    if build:
        versions["porch"] = build.removeprefix("porch ")  # e.g. "0.1.0 (compiled)"
    return available, versions


def machine_meta(settings: Settings, versions: dict[str, str]) -> Record:
    cpu_model = next(
        (
            line.split(":", 1)[1].strip()
            for line in Path("/proc/cpuinfo").read_text().splitlines()
            if line.startswith("model name")
        ),
        "?",
    )
    repo = BENCH_DIR.parent
    commit = subprocess.run(
        ["git", "-C", str(repo), "rev-parse", "--short", "HEAD"], capture_output=True, text=True
    ).stdout.strip()
    dirty = subprocess.run(
        ["git", "-C", str(repo), "status", "--porcelain", "src"], capture_output=True, text=True
    ).stdout.strip()
    return {
        "mode": settings.mode,
        "date": datetime.datetime.now(datetime.UTC).strftime("%Y-%m-%d %H:%M"),
        "cpu_model": cpu_model,
        "cores": os.cpu_count(),
        "kernel": platform.release(),
        "porch_commit": commit + (" (src/ has uncommitted changes)" if dirty else ""),
        "duration_s": settings.duration_s,
        "warmup_s": settings.warmup_s,
        "rounds": settings.rounds,
        "pinning": (
            f"server on core {SERVER_CORE}, wrk on core {WRK_CORE}"
            if settings.pin
            else "none (fewer than 2 cores)"
        ),
        "loadavg_start": " ".join(Path("/proc/loadavg").read_text().split()[:3]),
        "versions": versions,
        "notes": [],
    }


def raise_fd_limit() -> None:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if soft < hard:
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))


def main(argv: list[str]) -> int:
    args = parse_args(argv)
    if args.list:
        for scenario in SCENARIOS.values():
            print(f"{scenario.name:12} {scenario.description}")
        print()
        for server in SERVERS.values():
            print(f"{server.name:17} {server.description}")
        return 0
    scenarios = _names(args.only, SCENARIOS, "scenario") or list(SCENARIOS)
    chosen = _names(args.servers, SERVERS, "server") or list(SERVERS)
    mode = "quick" if args.quick else "full"
    stamp = datetime.datetime.now(datetime.UTC).strftime("%Y%m%d-%H%M%S")
    settings = Settings(
        mode=mode,
        duration_s=args.duration or (3 if args.quick else 5),
        warmup_s=args.warmup if args.warmup is not None else (1 if args.quick else 2),
        rounds=max(1, args.rounds or (1 if args.quick else 3)),
        pin=(os.cpu_count() or 1) >= 2,
        run_dir=RESULTS_DIR / "tmp" / f"{mode}-{stamp}",
    )
    raise_fd_limit()
    available, versions = installed_servers()
    meta = machine_meta(settings, versions)
    for name in sorted(set(chosen) - available):
        meta["notes"].append(f"{name} is not installed here and was skipped")
    run: Record = {"meta": meta, "results": []}
    for name in scenarios:
        if (static_file := SCENARIOS[name].static_file) is not None:
            static_file.write(settings.static_dir)
    json_path = RESULTS_DIR / f"{mode}-{stamp}.json"
    markdown_path = RESULTS_DIR / f"{mode}-{stamp}.md"
    for name in scenarios:
        scenario = SCENARIOS[name]
        names = [s for s in scenario.servers if s in chosen and s in available]
        # Round-robin, so a machine that slows down for a while (a busy neighbour on
        # a shared host) slows every server's runs alike instead of one server's.
        rounds: dict[str, list[Record]] = {server_name: [] for server_name in names}
        for round_number in range(1, settings.rounds + 1):
            for server_name in names:
                of = f" {round_number}/{settings.rounds}" if settings.rounds > 1 else ""
                print(f"[{name}] {server_name}{of} ...", end=" ", flush=True)
                record = run_one(scenario, SERVERS[server_name], settings)
                rounds[server_name].append(record)
                print(_summary(record), flush=True)
        for server_name in names:
            run["results"].append(median_record(rounds[server_name]))
        write_json(json_path, run)  # after every scenario: a crash keeps what was measured
    meta["loadavg_end"] = " ".join(Path("/proc/loadavg").read_text().split()[:3])
    write_json(json_path, run)
    write_markdown(markdown_path, run)
    print(
        f"\nwrote {markdown_path.relative_to(BENCH_DIR.parent)} and "
        f"{json_path.relative_to(BENCH_DIR.parent)}"
    )
    return 0


def _summary(record: Record) -> str:
    if record["status"] != "ok":
        return f"FAILED {record['error']}"
    for warning in record["warnings"]:
        print(f"WARNING {warning}", end="; ")
    if "requests_per_s" not in record:
        return f"idle worker RSS {record['idle']['worker_rss_kib'] / 1024:.1f} MiB"
    return (
        f"{record['requests_per_s']:,.0f} req/s, p99 {record['latency_us']['p99'] / 1000:.2f}"
        f" ms, {record['cpu_us_per_request']} us CPU/req, errors "
        f"{record['socket_errors']}/{record['non_2xx']}, noise {record['noise_percent']}%"
    )


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
