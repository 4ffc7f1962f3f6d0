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
    return str(record["server"]) + (" (!)" if record.get("warnings") else "")


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
    "| server | idle worker RSS MiB | RSS ÷ porch | worker private (USS) MiB | whole tree RSS MiB "
    "| processes |\n"
    "|---|---:|---:|---:|---:|---:|"
)


def _idle_row(record: Record, porch: Record | None) -> str:
    name = _name(record)
    if record["status"] != "ok":
        return f"| {name} | failed: {record.get('error', '?')} | | | | |"
    idle = record["idle"]
    reference = porch["idle"]["worker_rss_kib"] if porch and porch["status"] == "ok" else None
    cells = [
        name,
        _mib(idle["worker_rss_kib"]),
        _ratio(idle["worker_rss_kib"], reference),
        _mib(idle.get("worker_uss_kib")),
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
    for record in records:
        lines += [f"\n(!) {record['server']}: {w}" for w in record.get("warnings", [])]
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
        _rounds_line(meta.get("rounds", 1)),
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


def _rounds_line(rounds: int) -> str:
    if rounds <= 1:
        return "- one run per server and scenario"
    return (
        f"- {rounds} runs per server and scenario, taken in turn across the servers (round "
        "robin); each row is the run with the median req/s (idle RSS: the median run), errors "
        "are the most any run had, and every run's figures are in the JSON (`rounds`)"
    )


def _rps(ok: dict[tuple[str, str], Record], scenario: str, server: str) -> float | None:
    record = ok.get((scenario, server))
    return record["requests_per_s"] if record and "requests_per_s" in record else None


def _at_least(value: float | None, floor: float | None) -> str:
    if value is None or floor is None:
        return "n/a"
    return "met" if value >= floor else "not met"


def _vs_all(ok: dict[tuple[str, str], Record], scenario: str) -> tuple[str, str]:
    """porch's req/s against the best peer of a scenario."""
    porch = _rps(ok, scenario, "porch")
    peers = [
        (r["requests_per_s"], server)
        for (name, server), r in ok.items()
        if name == scenario
        and server not in ("porch", "porch-t8", "nginx")
        and "requests_per_s" in r
    ]
    if porch is None or not peers:
        return "n/a", "n/a"
    best_rps, best = max(peers)
    return f"porch {porch:,.0f} vs best peer {best} {best_rps:,.0f}", _at_least(porch, best_rps)


def _targets(run: Record) -> list[str]:
    """Issue 3's targets, computed from this run (one run; full mode is what counts)."""
    ok = {(r["scenario"], r["server"]): r for r in run["results"] if r["status"] == "ok"}
    ran = {r["scenario"] for r in run["results"]}  # targets of scenarios not run are not listed
    rows: list[tuple[str, str, str]] = []

    def ratio(scenario: str, peer: str, goal: float) -> None:
        if scenario not in ran:
            return
        porch, other = _rps(ok, scenario, "porch"), _rps(ok, scenario, peer)
        shown = f"{porch / other:.2f}x" if porch and other else "n/a"
        rows.append(
            (
                f"{scenario}: porch >= {goal:g}x {peer} req/s",
                shown,
                _at_least(porch, other * goal if other else None),
            )
        )

    ratio("hello", "granian", 1.15)
    ratio("hello", "gunicorn-sync", 10)
    ratio("flask", "granian", 1.2)
    for scenario in ("body-1m", "upload-1m"):
        if scenario not in ran:
            continue
        shown, verdict = _vs_all(ok, scenario)
        rows.append((f"{scenario}: porch >= every peer", shown, verdict))
    many, hello = ok.get(("conn-1000", "porch")), _rps(ok, "hello", "porch")
    if many:
        errors = many["socket_errors"] + many["non_2xx"]
        shown = f"{errors} errors, {many['requests_per_s']:,.0f} req/s vs hello {hello or 0:,.0f}"
        met = errors == 0 and _at_least(many["requests_per_s"], (hello or 0) * 0.9) == "met"
        rows.append(
            (
                "conn-1000: no errors, >= 0.9x porch hello",
                shown,
                "met" if met and hello else "not met",
            )
        )
    sleepy, gthread = _rps(ok, "sleep-10ms", "porch"), _rps(ok, "sleep-10ms", "gunicorn-gthread")
    if sleepy is not None:
        shown = f"{sleepy:,.0f} vs gthread " + (f"{gthread:,.0f}" if gthread else "not run")
        floor = max(720.0, gthread or 0.0)
        rows.append(
            (
                "sleep-10ms: porch >= 720 req/s and >= gunicorn gthread",
                shown,
                _at_least(sleepy, floor if gthread else None),
            )
        )
    porch_rss = ok.get(("idle-rss", "porch"))
    sync_rss = ok.get(("idle-rss", "gunicorn-sync"))
    if porch_rss and sync_rss:
        mine, theirs = porch_rss["idle"]["worker_rss_kib"], sync_rss["idle"]["worker_rss_kib"]
        rows.append(
            (
                "idle-rss: porch worker <= gunicorn sync worker",
                f"{mine / 1024:.1f} vs {theirs / 1024:.1f} MiB",
                "met" if mine <= theirs else "not met",
            )
        )
    for scenario in ("hello", "flask"):
        porch = ok.get((scenario, "porch"))
        refs = [
            f"{peer} {ok[(scenario, peer)]['cpu_us_per_request']:.1f}"
            for peer in ("bjoern", "nginx", "granian")
            if (scenario, peer) in ok
        ]
        if porch and refs:
            rows.append(
                (
                    f"{scenario}: CPU µs/req (aim: bjoern's)",
                    f"porch {porch['cpu_us_per_request']:.1f}; " + ", ".join(refs),
                    "info",
                )
            )
    if not rows:
        return [
            "## Issue 3 targets in this run",
            "",
            "None: no scenario of this run has an issue 3 target (the static file "
            "scenarios of issue 4 have none; their tables below are the result).",
            "",
        ]
    lines = [
        "## Issue 3 targets in this run",
        "",
        "| target | this run | verdict |",
        "|---|---|---|",
    ]
    lines += [f"| {target} | {shown} | {verdict} |" for target, shown, verdict in rows]
    lines += [
        "",
        "Verdicts compare the rows below (with several rounds, each server's median run): "
        "check the 'other load' column of the rows involved, and the spread of the rounds "
        "in the JSON, before trusting one; issue 3 judges a full-mode run.",
    ]
    return [*lines, ""]


def write_markdown(path: Path, run: Record) -> None:
    lines = _header(run) + _targets(run)
    by_scenario: dict[str, list[Record]] = {}
    for record in run["results"]:
        by_scenario.setdefault(record["scenario"], []).append(record)
    for name, records in by_scenario.items():
        lines += _scenario_section(name, records)
    described = sorted({r["server"] for r in run["results"]})
    lines += ["## Servers", ""]
    lines += [f"- {name}: {SERVERS[name].description}" for name in described]
    path.write_text("\n".join(lines) + "\n")
