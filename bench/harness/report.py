"""Turning the runs into the tables: medians over rounds, ratios as the median of per-round
paired ratios (each round ran every target back to back, so pairing cancels drift), and one
pass/fail line per target from issue 6 (and issue 13's metering targets, harness/metering;
issue 14's budget target, harness/budgets)."""

from __future__ import annotations

from . import budgets, metering
from .stats import med as _med, paired_ratio, quantile_ms as _q


def summarize(targets: dict, runs: dict[str, list[dict]], sse: dict, store: dict) -> dict:
    rows = []
    for name, t in targets.items():
        rs = runs.get(name, [])
        clean = [r for r in rs if r["errors"] == 0]
        rows.append({
            "name": name, "label": t.label, "error": t.error,
            "rounds": len(rs), "rounds_with_errors": len(rs) - len(clean),
            "rps": _med(r["rps"] for r in clean), "p50_ms": _med(r["p50_ms"] for r in clean),
            "p99_ms": _med(r["p99_ms"] for r in clean),
            "ratio_to_plain": paired_ratio(rs, runs.get("plain", [])) if clean else None,
            "cpu_s_per_10k": _med(r["cpu_s_per_10k"] for r in clean),
            "callouts_per_1k": _med(r["callouts_per_1k"] for r in clean),
            "envoy_rss_mib": max((r["envoy_rss_mib"] or 0 for r in rs), default=None) or None,
            "sidecar_rss_mib": max((r["sidecar_rss_mib"] or 0 for r in rs), default=None) or None,
            "errors": sum(r["errors"] for r in rs),
        })
    sse_rows = []
    for name, got in sse.items():
        seq, con = got["sequential"], got["concurrent"]
        sse_rows.append({
            "name": name, "label": targets[name].label, "error": targets[name].error,
            "streams": len(seq["ttfe_us"]) + len(con["ttfe_us"]), "errors": len(got["errors"]),
            "first_errors": got["errors"][:3],
            "ttfe_p50_ms": _q(seq["ttfe_us"], 0.5), "ttfe_p99_ms": _q(seq["ttfe_us"], 0.99),
            "ttle_p50_ms": _q(seq["ttle_us"], 0.5), "ttle_p99_ms": _q(seq["ttle_us"], 0.99),
            "conc_ttfe_p50_ms": _q(con["ttfe_us"], 0.5), "conc_ttfe_p99_ms": _q(con["ttfe_us"], 0.99),
            "conc_ttle_p50_ms": _q(con["ttle_us"], 0.5), "conc_ttle_p99_ms": _q(con["ttle_us"], 0.99),
        })
    store_rows = [{"tokens": size, "rps": _med(r["rps"] for r in rs),
                   "p50_ms": _med(r["p50_ms"] for r in rs), "p99_ms": _med(r["p99_ms"] for r in rs),
                   "errors": sum(r["errors"] for r in rs)} for size, rs in store.items()]
    metered = metering.summarize(targets, runs, sse)
    budgeted = budgets.summarize(targets, runs)
    return {"rows": rows, "sse": sse_rows, "store": store_rows, "metering": metered,
            "budgets": budgeted,
            "targets": verdicts(rows, runs, sse_rows, store_rows, store)
            + metering.verdicts(metered) + budgets.verdicts(budgeted)}


def verdicts(rows, runs, sse_rows, store_rows, store) -> list[dict]:
    row = {r["name"]: r for r in rows}
    sse = {r["name"]: r for r in sse_rows}
    out = []

    def add(target: str, measured: str, ok: bool | None, why: str = "") -> None:
        out.append({"target": target, "measured": measured,
                    "result": "n/a" if ok is None else ("pass" if ok else "FAIL"), "note": why})

    warm, plain = row.get("filter_warm", {}), row.get("plain", {})
    ratio = warm.get("ratio_to_plain")
    add("cache warm >= 0.9x plain Envoy req/s", f"{ratio:.2f}x" if ratio else "-",
        None if ratio is None else ratio >= 0.9)
    if warm.get("p50_ms") is not None and plain.get("p50_ms") is not None:
        delta = warm["p50_ms"] - plain["p50_ms"]
        add("cache warm p50 within 0.2 ms of plain Envoy", f"{delta:+.3f} ms", delta <= 0.2)
    off_vs_authz = paired_ratio(runs.get("filter_off", []), runs.get("ext_authz", []))
    add("cache off >= ext_authz peer req/s",
        f"{off_vs_authz:.2f}x" if off_vs_authz else "-",
        None if off_vs_authz is None else off_vs_authz >= 1.0)
    lite = row.get("litellm", {})
    if lite.get("error") or not lite.get("rps"):
        add(">= 50x LiteLLM req/s", "-", None,
            f"LiteLLM not measured: {lite.get('error') or 'no clean run'}")
    else:
        x = paired_ratio(runs["filter_warm"], runs["litellm"])
        add(">= 50x LiteLLM req/s (cache warm vs LiteLLM)", f"{x:.0f}x" if x else "-",
            None if x is None else x >= 50)
    if len(store_rows) == 2 and all(r["p50_ms"] for r in store_rows):
        small, big = sorted(store_rows, key=lambda r: r["tokens"])
        sizes = sorted(store)
        x = paired_ratio(store[sizes[1]], store[sizes[0]], "p50_ms")
        add(f"check p50 with {big['tokens']:,} tokens <= 1.2x of {small['tokens']:,}",
            f"{x:.2f}x" if x else "-", None if x is None else x <= 1.2)
    sw, sp = sse.get("filter_warm", {}), sse.get("plain", {})
    if sw.get("ttfe_p50_ms") is not None and sp.get("ttfe_p50_ms") is not None:
        d = sw["ttfe_p50_ms"] - sp["ttfe_p50_ms"]
        add("SSE time to first event within 1 ms of plain Envoy (p50, cache warm)",
            f"{d:+.3f} ms", d <= 1.0)
    return out


def _f(v, fmt: str = "{:.2f}") -> str:
    return "-" if v is None else fmt.format(v)


def markdown(summary: dict, meta: dict) -> str:
    lines = [f"`make bench` on {meta['date']}: {meta['machine']}; wrk -t2 -c{meta['connections']}"
             f" -d{meta['duration']:g}s after a {meta['warmup']:g}s warm-up, {meta['rounds']} rounds"
             " interleaved, medians. Every proxy forwards to the same Rust mock upstream on loopback.",
             "",
             "| scenario | req/s | p50 ms | p99 ms | ratio to plain Envoy | CPU s / 10k req | callouts / 1k req | Envoy RSS MiB | sidecar RSS MiB |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["rows"]:
        if r["error"]:
            lines.append(f"| {r['label']} | not measured: {r['error']} | | | | | | | |")
            continue
        err = f" ({r['rounds_with_errors']} rounds with errors dropped)" if r["rounds_with_errors"] else ""
        lines.append(
            f"| {r['label']}{err} | {_f(r['rps'], '{:,.0f}')} | {_f(r['p50_ms'], '{:.3f}')} | "
            f"{_f(r['p99_ms'], '{:.3f}')} | {_f(r['ratio_to_plain'], '{:.2f}x')} | "
            f"{_f(r['cpu_s_per_10k'], '{:.2f}')} | {_f(r['callouts_per_1k'], '{:.1f}')} | "
            f"{_f(r['envoy_rss_mib'], '{:.0f}')} | {_f(r['sidecar_rss_mib'], '{:.0f}')} |")
    lines += ["", "CPU is utime+stime of the proxy's processes (Envoy + token-service, Envoy + "
              "bench-authz, or all LiteLLM processes; the mock row: the mock itself). "
              "Sidecar = token-service, bench-authz or LiteLLM.", ""]
    lines += [f"SSE (mock sends the first event at once and the last after 50 ms; "
              f"{meta['sse']}):", "",
              "| through | streams | errors | TTFE p50 | TTFE p99 | TTLE p50 | TTLE p99 | concurrent TTFE p50 / p99 | concurrent TTLE p50 / p99 |",
              "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for r in summary["sse"]:
        if r["error"]:
            lines.append(f"| {r['label']} | not measured | | | | | | | |")
            continue
        lines.append(
            f"| {r['label']} | {r['streams']} | {r['errors']} | {_f(r['ttfe_p50_ms'], '{:.3f}')} | "
            f"{_f(r['ttfe_p99_ms'], '{:.3f}')} | {_f(r['ttle_p50_ms'], '{:.2f}')} | "
            f"{_f(r['ttle_p99_ms'], '{:.2f}')} | {_f(r['conc_ttfe_p50_ms'], '{:.3f}')} / "
            f"{_f(r['conc_ttfe_p99_ms'], '{:.3f}')} | {_f(r['conc_ttle_p50_ms'], '{:.2f}')} / "
            f"{_f(r['conc_ttle_p99_ms'], '{:.2f}')} |")
    lines += ["", "(milliseconds, from writing the request; sequential streams unless marked "
              "concurrent)", ""]
    if summary["store"]:
        lines += [f"Token-service check API alone (wrk -c{meta['check_connections']}, a random "
                  "one of 1,000 stored hashes per request, cache TTL 0 so every check reads the "
                  "store):", "", "| tokens in store | checks/s | p50 ms | p99 ms | errors |",
                  "|---:|---:|---:|---:|---:|"]
        for r in summary["store"]:
            lines.append(f"| {r['tokens']:,} | {_f(r['rps'], '{:,.0f}')} | "
                         f"{_f(r['p50_ms'], '{:.3f}')} | {_f(r['p99_ms'], '{:.3f}')} | {r['errors']} |")
        lines.append("")
    if summary.get("metering"):
        lines += metering.markdown(summary["metering"])
    if summary.get("budgets"):
        lines += budgets.markdown(summary["budgets"])
    lines += ["Targets (issues 6, 13 and 14):", "", "| target | measured | result |", "|---|---:|---|"]
    for v in summary["targets"]:
        note = f" ({v['note']})" if v["note"] else ""
        lines.append(f"| {v['target']} | {v['measured']} | {v['result']}{note} |")
    return "\n".join(lines) + "\n"
