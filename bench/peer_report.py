"""bench.peer's numbers: per-run records summed into one summary per server and load, then one table.

A run record is what one server did under one load in one window (bench.peer makes them):
``{"wrk": <bench/mixed.lua result, with server_cpu_s, wrk_cpu_s, window_s>, "ready_s", "hwm_mb"}`` for a
wrk load, ``{"idle_cpu_s", "window_s", "ready_s", "hwm_mb"}`` for the idle window. ``ready_s`` and
``hwm_mb`` are None for a server that bench.peer did not start (``--tei-url``).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np

from bench.wrk import SOCKET_ERRORS


@dataclass(frozen=True)
class Load:
    key: str
    title: str
    connections: int = 0  # 0: the idle window, no requests
    passages: tuple[int, int] = (0, 1)  # A passages in every B requests (bench/mixed.lua)
    texts_per_request: int = 1


LOADS = (
    Load("short1", "1 client, short query", 1),
    Load("short32", "32 clients, short queries", 32),
    Load("mix32", "32 clients, 1 in 10 a 256-token passage", 32, (1, 10)),
    Load("batch4", "4 clients, 32 texts per request", 4, texts_per_request=32),
    Load("idle", "idle (no requests)"),
)
BY_KEY = {load.key: load for load in LOADS}


class NoData(ValueError):
    """A summary would rest on nothing (no successful request, no window): refuse rather than print zeros."""


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    if not latencies:
        return math.nan, math.nan
    p50, p99 = np.percentile(latencies, [50, 99])
    return float(p50), float(p99)


def summarize(load: Load, runs: list[dict]) -> dict:
    """One server's runs of one load, pooled: rates over the summed windows, percentiles over every latency."""
    if not runs:
        raise NoData(f"{load.key}: no runs")
    out = {"runs": len(runs), "window_s": sum(r["window_s"] for r in runs)}
    starts = [r["ready_s"] for r in runs if r.get("ready_s") is not None]
    hwm = [r["hwm_mb"] for r in runs if r.get("hwm_mb") is not None]
    out |= {"ready_s": starts, "hwm_mb": max(hwm) if hwm else None}
    if out["window_s"] <= 0:
        raise NoData(f"{load.key}: measured windows add up to {out['window_s']} s")
    if not load.connections:
        out["idle_cpu_percent"] = 100 * sum(r["idle_cpu_s"] for r in runs) / out["window_s"]
        return out
    w = [r["wrk"] for r in runs]
    ok = {c: sum(x[c]["ok"] for x in w) for c in ("s", "p")}
    if ok["s"] + ok["p"] == 0:
        raise NoData(f"{load.key}: no request succeeded in {out['window_s']:.0f} s (statuses: "
                     f"{[x[c]['statuses'] for x in w for c in ('s', 'p')]}, wrk: {[x['wrk'] for x in w]})")
    requests = ok["s"] + ok["p"]
    cpu = [x["server_cpu_s"] for x in w]
    out |= {
        "requests_per_s": requests / out["window_s"],
        "texts_per_s": requests * load.texts_per_request / out["window_s"],
        "ok": requests,
        "non_2xx": sum(x[c]["non_200"] for x in w for c in ("s", "p")),
        "timeouts": sum(x["wrk"]["timeout"] for x in w),
        "socket_errors": sum(x["wrk"][k] for x in w for k in SOCKET_ERRORS),
        "repeats": sum(x["wrk"].get("repeats", 0) for x in w),
        "cpu_s_per_1000_requests": None if None in cpu else 1000 * sum(cpu) / requests,
        "wrk_cpu_cores": sum(x["wrk_cpu_s"] for x in w) / out["window_s"],
    }
    for c, name in (("s", "short"), ("p", "passage")):
        if ok[c]:
            out[f"{name}_p50_ms"], out[f"{name}_p99_ms"] = _percentiles([v for x in w for v in x[c]["latencies_ms"]])
    return out


@dataclass(frozen=True)
class Row:
    load: str
    metric: str
    value: Callable[[dict], float | None]  # of the load's summary (or of all of them, for "all loads" rows)
    fmt: str
    better: str = ""  # "higher" or "lower": the ratio column reads > 1 when the embedder does better


def _peak_rss(s: dict) -> float | None:
    """The highest VmHWM of any start: each start served one load (the idle one too)."""
    return max((x["hwm_mb"] for x in s.values() if x["hwm_mb"] is not None), default=None)


def _start(s: dict) -> float | None:
    starts = [v for x in s.values() for v in x["ready_s"]]
    return float(np.median(starts)) if starts else None


def rows(keys: set[str]) -> list[Row]:
    """The table's rows for the loads that ran (``keys``)."""
    out = []
    for load in (x for x in LOADS if x.key in keys):
        t = load.title
        if not load.connections:
            out.append(Row(t, "server CPU, % of one core", lambda s, k=load.key: s[k]["idle_cpu_percent"], ".1f",
                           "lower"))
            continue
        get = lambda field, k=load.key: lambda s: s[k].get(field)  # noqa: E731
        if load.texts_per_request > 1:
            out.append(Row(t, "texts/s", get("texts_per_s"), ".0f", "higher"))
        elif load.connections > 1:
            out.append(Row(t, "requests/s", get("requests_per_s"), ".0f", "higher"))
        classes = ("short", "passage") if load.passages[0] else ("short",)
        for c in classes:
            label = f"{c} " if len(classes) > 1 else ("request " if load.texts_per_request > 1 else "")
            out += [Row(t, f"{label}p50 ms", get(f"{c}_p50_ms"), ".1f", "lower"),
                    Row(t, f"{label}p99 ms", get(f"{c}_p99_ms"), ".1f", "lower")]
        out += [Row(t, "server CPU s per 1,000 requests", get("cpu_s_per_1000_requests"), ".2f", "lower"),
                Row(t, "timeouts / non-2xx", lambda s, k=load.key: (s[k]["timeouts"], s[k]["non_2xx"]), "pair")]
    return [*out,
            Row("after those loads", "peak RSS (VmHWM), MB", _peak_rss, ".0f", "lower"),
            Row("start to ready (no Docker)", "seconds, median of every start", _start, ".2f", "lower")]


def _cell(value, fmt: str) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "n/a"
    return f"{value[0]} / {value[1]}" if fmt == "pair" else format(value, fmt)


def ratio(ours, peer, better: str) -> float | None:
    """> 1 when ours is better: ours / peer for higher-is-better, peer / ours for lower-is-better; none when
    either is missing or zero (0 % idle CPU against 0.5 % is no ratio worth printing)."""
    if not better or ours is None or peer is None or math.isnan(ours) or math.isnan(peer) or not ours * peer:
        return None
    return ours / peer if better == "higher" else peer / ours


def table(summaries: dict[str, dict[str, dict]], peer: str) -> str:
    """summaries[server][load key]; ``peer`` names the server every other one is compared with."""
    ours = [k for k in summaries if k != peer]
    head = ["Load", "Metric", peer, *ours, *(f"{k} vs {peer}" for k in ours)]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    for row in rows(set.intersection(*(set(s) for s in summaries.values()))):
        values = {k: row.value(summaries[k]) for k in summaries}
        ratios = [ratio(values[k], values[peer], row.better) for k in ours]
        cells = [_cell(values[k], row.fmt) for k in (peer, *ours)]
        cells += ["" if r is None else f"{r:.2f}x" for r in ratios]
        lines.append(f"| {row.load} | {row.metric} | " + " | ".join(cells) + " |")
    return "\n".join(lines)
