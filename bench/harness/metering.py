"""Issue 13's metering scenarios: Envoy + ptk filter with the cache warm, token usage metering
on (the default, `filter_warm`) against the same with `{"metering":{"enabled":false}}`
(`filter_nometer`), measured in the same interleaved rounds as everything else.

- Non-streamed JSON: wrk's `POST /v1/chat/completions` (bench/lua/post.lua); the mock's
  completion carries a `usage` object, which the filter reads as the body passes.
- SSE: bench-sse's streams without `stream_options`; with metering on the filter holds the
  request body, adds `stream_options.include_usage`, reads the usage-only chunk the mock then
  sends and cuts it, so the client gets the same 3 events either way.

CPU is utime+stime of Envoy + token-service: per request over the wrk runs (median of the
rounds), and per SSE chunk as the CPU over all SSE runs divided by the `data:` events the
clients received (bench-sse counts them in each completed stream)."""

from __future__ import annotations

from .stats import med, paired_ratio, quantile_ms

ON, OFF = "filter_warm", "filter_nometer"
#: Issue 13's targets.
MIN_JSON_RATIO, MAX_TTFE_DELTA_MS = 0.9, 0.5


def _side(runs: list[dict], sse: dict) -> dict:
    clean = [r for r in runs if r["errors"] == 0]
    per_10k = med(r["cpu_s_per_10k"] for r in clean)
    streams = len(sse["sequential"]["ttfe_us"]) + len(sse["concurrent"]["ttfe_us"])
    events = sse["events"]
    return {
        "rps": med(r["rps"] for r in clean), "p50_ms": med(r["p50_ms"] for r in clean),
        "json_errors": sum(r["errors"] for r in runs),
        "cpu_us_per_request": per_10k * 100 if per_10k is not None else None,
        "ttfe_p50_ms": quantile_ms(sse["sequential"]["ttfe_us"], 0.5),
        "ttfe_p99_ms": quantile_ms(sse["sequential"]["ttfe_us"], 0.99),
        "streams": streams, "sse_errors": len(sse["errors"]), "events": events,
        "events_per_stream": events / streams if streams else None,
        "cpu_us_per_stream": sse["cpu_s"] / streams * 1e6 if streams else None,
        "cpu_us_per_chunk": sse["cpu_s"] / events * 1e6 if events else None,
    }


def summarize(targets: dict, runs: dict[str, list[dict]], sse: dict) -> dict | None:
    """Both sides and their paired JSON ratio; None if either was not measured."""
    if any(n not in targets or targets[n].error or n not in runs or n not in sse
           for n in (ON, OFF)):
        return None
    return {"on": _side(runs[ON], sse[ON]), "off": _side(runs[OFF], sse[OFF]),
            "json_ratio": paired_ratio(runs[ON], runs[OFF])}


def _verdict(target: str, measured: str, ok: bool | None) -> dict:
    return {"target": target, "measured": measured,
            "result": "n/a" if ok is None else ("pass" if ok else "FAIL"), "note": ""}


def verdicts(m: dict | None) -> list[dict]:
    """Issue 13: JSON req/s with metering >= 0.9x without; SSE TTFE p50 within 0.5 ms."""
    if m is None:
        return []
    ratio = m["json_ratio"]
    out = [_verdict(f"metering on >= {MIN_JSON_RATIO}x metering off req/s (non-streamed JSON)",
                    f"{ratio:.3f}x" if ratio else "-",
                    None if ratio is None else ratio >= MIN_JSON_RATIO)]
    on, off = m["on"]["ttfe_p50_ms"], m["off"]["ttfe_p50_ms"]
    delta = on - off if on is not None and off is not None else None
    out.append(_verdict(f"SSE time to first event within {MAX_TTFE_DELTA_MS} ms of metering off"
                        " (p50)", f"{delta:+.3f} ms" if delta is not None else "-",
                        None if delta is None else delta <= MAX_TTFE_DELTA_MS))
    return out


def _f(v, fmt: str) -> str:
    return "-" if v is None else fmt.format(v)


ROWS = [  # label, key, format, how the two sides compare ("ratio" or "diff")
    ("non-streamed JSON req/s", "rps", "{:,.0f}", "ratio"),
    ("JSON p50 ms", "p50_ms", "{:.3f}", "diff"),
    ("CPU µs / JSON request (Envoy + token-service)", "cpu_us_per_request", "{:.1f}", "diff"),
    ("SSE time to first event p50 ms", "ttfe_p50_ms", "{:.3f}", "diff"),
    ("SSE time to first event p99 ms", "ttfe_p99_ms", "{:.3f}", "diff"),
    ("SSE events received per stream", "events_per_stream", "{:.2f}", "diff"),
    ("CPU µs / SSE stream", "cpu_us_per_stream", "{:.1f}", "diff"),
    ("CPU µs / SSE chunk received", "cpu_us_per_chunk", "{:.1f}", "diff"),
]


def markdown(m: dict) -> list[str]:
    on, off = m["on"], m["off"]
    lines = ["Token usage metering (issue 13): Envoy + ptk filter, cache warm, metering on (the "
             "default) vs off, in the same rounds (JSON ratio: median of the per-round paired "
             f"ratios; errors: JSON {on['json_errors']} on / {off['json_errors']} off, SSE "
             f"{on['sse_errors']} / {off['sse_errors']}; {on['streams']} / {off['streams']} "
             "streams):", "",
             "| | metering on | metering off | on vs off |", "|---|---:|---:|---:|"]
    for label, key, fmt, how in ROWS:
        a, b = on[key], off[key]
        if how == "ratio":
            cmp = _f(m["json_ratio"], "{:.3f}x")
        else:
            cmp = _f(a - b if a is not None and b is not None else None, "{:+" + fmt[2:])
        lines.append(f"| {label} | {_f(a, fmt)} | {_f(b, fmt)} | {cmp} |")
    lines += ["", "CPU per SSE chunk is the CPU over all SSE runs (the whole stream: request, "
              "auth, the held body, the response) divided by the `data:` events the clients "
              "received; the mock sends 3 (first chunk, finish chunk, `[DONE]`) plus, when "
              "metering asks for it, a usage chunk the filter reads and cuts.", ""]
    return lines
