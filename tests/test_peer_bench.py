"""bench.peer's table and ratios on canned wrk output (bench/mixed.lua's MIXED line), so that the peer benchmark
cannot print zeros or flip a ratio without a test failing."""

from __future__ import annotations

import json
import math

import pytest

from bench import wrk
from bench.peer_report import BY_KEY, LOADS, NoData, ratio, summarize, table

WRK_HEADER = "Running 18s test @ http://127.0.0.1:8080/v1/embeddings\n  1 threads and 1 connections\n"


def wrk_stdout(short_ms: list[float], passage_ms: list[float] = (), timeouts: int = 0, non_200: int = 0) -> str:
    """What wrk prints with bench/mixed.lua: its own header, then the script's one MIXED line."""
    cls = lambda lat, bad: {"ok": len(lat), "p50_ms": None, "p99_ms": None, "non_200": bad,  # noqa: E731
                            "statuses": {"200": len(lat), **({"503": bad} if bad else {})}, "latencies_ms": list(lat)}
    body = {"s": cls(short_ms, non_200), "p": cls(passage_ms, 0),
            "wrk": {"requests": len(short_ms) + len(passage_ms), "duration_s": 18.0, "connect": 0, "read": 0,
                    "write": 0, "timeout": timeouts, "status": non_200, "repeats": 0}}
    return WRK_HEADER + "MIXED " + json.dumps(body) + "\n"


def run(stdout: str, cpu: float | None, window: float = 10.0, ready: float | None = 0.5, hwm: float | None = 300):
    return {"wrk": {**wrk.parse(stdout), "server_cpu_s": cpu, "wrk_cpu_s": 0.1, "window_s": window},
            "window_s": window, "ready_s": ready, "hwm_mb": hwm}


def server(short1_ms: float, short32_rps: int, mix_rps: int, batch_rps: int, idle_cpu_s: float,
           ready: float, hwm: float) -> dict:
    """Summaries of one server: each load's window is 10 s, so N requests in it are N / 10 per second."""
    runs = {
        "short1": [run(wrk_stdout([short1_ms] * 99 + [short1_ms * 3]), cpu=5.0, ready=ready, hwm=hwm - 50)],
        "short32": [run(wrk_stdout([20.0] * (short32_rps * 10)), cpu=19.0, ready=ready, hwm=hwm - 20)],
        "mix32": [run(wrk_stdout([30.0] * (mix_rps * 9), [900.0] * mix_rps, timeouts=2), cpu=19.5, ready=ready,
                      hwm=hwm)],
        "batch4": [run(wrk_stdout([200.0] * (batch_rps * 10), non_200=1), cpu=19.9, ready=ready, hwm=hwm - 10)],
        "idle": [{"idle_cpu_s": idle_cpu_s, "window_s": 10.0, "ready_s": ready, "hwm_mb": hwm - 60}],
    }
    return {load.key: summarize(load, runs[load.key]) for load in LOADS}


def cells(text: str, load: str, metric: str) -> list[str]:
    row = next(line for line in text.splitlines() if line.startswith(f"| {load} | {metric} |"))
    return [c.strip() for c in row.strip("|").split("|")][2:]


@pytest.fixture(scope="module")
def summaries() -> dict:
    return {"TEI": server(2.6, 524, 24, 16, idle_cpu_s=0.0, ready=0.35, hwm=334),
            "embedder": server(6.7, 322, 168, 19, idle_cpu_s=0.5, ready=3.3, hwm=478)}


def test_parse_reads_the_mixed_line_among_wrk_output():
    r = wrk.parse(wrk_stdout([1.0, 2.0], [5.0]))
    assert (r["s"]["ok"], r["p"]["ok"], r["p"]["latencies_ms"]) == (2, 1, [5.0])
    with pytest.raises(ValueError, match="no MIXED line"):
        wrk.parse(WRK_HEADER + "  Latency 1ms\n")


def test_summaries_hold_the_rates_latencies_and_cpu_of_the_runs(summaries):
    tei, ours = summaries["TEI"], summaries["embedder"]
    assert tei["short1"]["short_p50_ms"] == pytest.approx(2.6)
    assert tei["short1"]["short_p99_ms"] > 2.6  # the one slow request
    assert tei["short32"]["requests_per_s"] == pytest.approx(524)
    assert ours["mix32"]["requests_per_s"] == pytest.approx(168 * 10 / 10)
    assert ours["mix32"]["passage_p50_ms"] == pytest.approx(900) and ours["mix32"]["short_p50_ms"] == 30
    assert ours["mix32"]["timeouts"] == 2 and ours["batch4"]["non_2xx"] == 1
    assert ours["batch4"]["texts_per_s"] == pytest.approx(19 * 32)
    assert tei["short32"]["cpu_s_per_1000_requests"] == pytest.approx(1000 * 19.0 / 5240)
    assert ours["idle"]["idle_cpu_percent"] == pytest.approx(5.0)


def test_table_has_each_load_with_values_and_ratios_where_higher_means_embedder_better(summaries):
    text = table(summaries, "TEI")
    assert text.splitlines()[0] == "| Load | Metric | TEI | embedder | embedder vs TEI |"
    assert cells(text, BY_KEY["short1"].title, "p50 ms") == ["2.6", "6.7", "0.39x"]  # lower is better
    assert cells(text, BY_KEY["short32"].title, "requests/s") == ["524", "322", "0.61x"]  # higher is better
    assert cells(text, BY_KEY["mix32"].title, "requests/s") == ["24", "168", "7.00x"]
    assert cells(text, BY_KEY["mix32"].title, "passage p50 ms") == ["900.0", "900.0", "1.00x"]
    assert cells(text, BY_KEY["batch4"].title, "texts/s") == ["512", "608", "1.19x"]
    assert cells(text, BY_KEY["mix32"].title, "timeouts / non-2xx") == ["2 / 0", "2 / 0", ""]
    assert cells(text, "after those loads", "peak RSS (VmHWM), MB") == ["334", "478", "0.70x"]
    assert cells(text, "start to ready (no Docker)", "seconds, median of every start") == ["0.35", "3.30", "0.11x"]
    assert cells(text, BY_KEY["idle"].title, "server CPU, % of one core") == ["0.0", "5.0", ""]  # no ratio to 0
    assert "nan" not in text and "| 0 |" not in text


def test_a_server_not_started_by_the_benchmark_shows_n_a_not_zero(summaries):
    unmanaged = {"short1": [run(wrk_stdout([3.0] * 10), cpu=None, ready=None, hwm=None)]}
    s = summarize(BY_KEY["short1"], unmanaged["short1"])
    assert s["cpu_s_per_1000_requests"] is None and s["hwm_mb"] is None and s["ready_s"] == []
    text = table({"TEI": {**summaries["TEI"], "short1": s}, "embedder": summaries["embedder"]}, "TEI")
    assert cells(text, BY_KEY["short1"].title, "server CPU s per 1,000 requests")[0] == "n/a"


def test_no_successful_request_is_an_error_not_a_row_of_zeros():
    with pytest.raises(NoData, match="no request succeeded"):
        summarize(BY_KEY["short32"], [run(wrk_stdout([], non_200=40), cpu=1.0)])
    with pytest.raises(NoData, match="no runs"):
        summarize(BY_KEY["short32"], [])


def test_ratio_direction_and_missing_values():
    assert ratio(2.0, 1.0, "higher") == 2.0 and ratio(2.0, 1.0, "lower") == 0.5
    assert ratio(None, 1.0, "lower") is None and ratio(1.0, math.nan, "higher") is None
    assert ratio(0.0, 1.0, "lower") is None and ratio(1.0, 0.0, "lower") is None  # x / 0, 0 / x
