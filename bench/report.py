"""Write a benchmark run as JSON (everything measured) and markdown (the tables people read)."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from catalog import SCENARIOS, SERVERS

Record = dict[str, Any]


def write_json(path: Path, run: Record) -> None:
    path.write_text(json.dumps(run, indent=2, sort_keys=False) + "\n")


def _ratio(value: float | None, reference: float | None) -> str:
    if not value or not reference:
        return "-"
    return f"{value / reference:.2f}x"


def _num(value: float | None, fmt: str) -> str:
    return "-" if value is None else format(value, fmt)


def _mib(kib: int | None) -> str:
    return "-" if not kib else f"{kib / 1024:.1f}"


def _name(record: Record) -> str:
    return record["server"] + (" (!)" if record.get("warning") else "")


def _load_row(record: Record, porch: Record | None) -> str:
    name = _name(record)
    if record["status"] != "ok":
        return f"| {name} | failed: {record.get('error', '?')} |" + " |" * 9
    errors = f"{record['socket_errors']} / {record['non_2xx']}"
    porch_rps = porch["requests_per_s"] if porch else None
    porch_cpu = porch["cpu_us_per_request"] if porch else None
    cells = [
        name,
        f"{record['requests_per_s']:,.0f}",
        _ratio(record["requests_per_s"], porch_rps),
        _num(record["latency_us"]["p50"] / 1000, ".2f"),
        _num(record["latency_us"]["p99"] / 1000, ".2f"),
        errors,
        _num(record["cpu_us_per_request"], ".1f"),
        _ratio(record["cpu_us_per_request"], porch_cpu),
        _mib(record["idle"]["worker_rss_kib"]),
        _num(record["wrk_cpu_percent"], ".0f"),
        _num(record["noise_percent"], ".0f"),
    ]
    return "| " + " | ".join(cells) + " |"


LOAD_HEADER = (
    "| server | req/s | req/s ÷ porch | p50 ms | p99 ms | errors (socket / non-2xx) "
    "| CPU µs/req | CPU ÷ porch | idle worker RSS MiB | wrk CPU % | other load on server core % |\n"
    "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|"
)
IDLE_HEADER = (
    "| server | idle worker RSS MiB | RSS ÷ porch | whole tree RSS MiB | processes |\n"
    "|---|---:|---:|---:|---:|"
)


def _idle_row(record: Record, porch: Record | None) -> str:
    name = _name(record)
    if record["status"] != "ok":
        return f"| {name} | failed: {record.get('error', '?')} | | | |"
    idle = record["idle"]
    reference = porch["idle"]["worker_rss_kib"] if porch and porch["status"] == "ok" else None
    cells = [
        name,
        _mib(idle["worker_rss_kib"]),
        _ratio(idle["worker_rss_kib"], reference),
        _mib(idle["tree_rss_kib"]),
        str(idle["processes"]),
    ]
    return "| " + " | ".join(cells) + " |"


def _scenario_section(name: str, records: list[Record]) -> list[str]:
    scenario = SCENARIOS[name]
    ok = {r["server"]: r for r in records if r["status"] == "ok"}
    porch = ok.get("porch")
    lines = [f"## {name}", "", scenario.description + ".", ""]
    if scenario.load:
        lines += [LOAD_HEADER, *(_load_row(r, porch) for r in records)]
        wrk = next((r["wrk_command"] for r in records if r.get("wrk_command")), None)
        if wrk:
            lines += ["", f"Load: `{wrk}`"]
    else:
        lines += [IDLE_HEADER, *(_idle_row(r, porch) for r in records)]
    lines += [
        "",
        "<details><summary>Server command lines (cwd bench/apps, PYTHONPATH=bench/apps)</summary>",
        "",
    ]
    lines += [f"- {r['server']}: `{r['command']}`" for r in records]
    lines += ["", "</details>", ""]
    return lines


def _header(run: Record) -> list[str]:
    meta = run["meta"]
    mode = meta["mode"]
    title = "quick mode: development numbers, not results" if mode == "quick" else "full mode"
    lines = [
        f"# porch benchmark ({title})",
        "",
        f"- date (UTC): {meta['date']}",
        f"- machine: {meta['cpu_model']}, {meta['cores']} cores, Linux {meta['kernel']}",
        f"- porch commit: {meta['porch_commit']}",
        f"- per run: {meta['warmup_s']} s warm-up, {meta['duration_s']} s measured; "
        f"pinning: {meta['pinning']}",
        f"- load average at start / end: {meta['loadavg_start']} / {meta.get('loadavg_end', '?')}",
        "- versions: " + ", ".join(f"{k} {v}" for k, v in meta["versions"].items()),
    ]
    if meta.get("notes"):
        lines += [f"- note: {note}" for note in meta["notes"]]
    lines += [
        "",
        "Columns: req/s over the measured run; ratios are this server ÷ porch in the same "
        "scenario; CPU µs/req is user+sys of the server's whole process tree over the run "
        "divided by requests served; wrk CPU % near 100 means the load generator, not the "
        "server, was the limit; 'other load' is busy time on the server's core not spent by "
        "the server (noise from other processes).",
        "",
    ]
    return lines


def write_markdown(path: Path, run: Record) -> None:
    lines = _header(run)
    by_scenario: dict[str, list[Record]] = {}
    for record in run["results"]:
        by_scenario.setdefault(record["scenario"], []).append(record)
    for name, records in by_scenario.items():
        lines += _scenario_section(name, records)
    described = sorted({r["server"] for r in run["results"]})
    lines += ["## Servers", ""]
    lines += [f"- {name}: {SERVERS[name].description}" for name in described]
    path.write_text("\n".join(lines) + "\n")
