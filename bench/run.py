#!/usr/bin/env python3
"""`make bench`: the ptk filter side by side with plain Envoy, Envoy + ext_authz and LiteLLM,
with token usage metering on vs off (harness/metering), and a budgeted token against an
unbudgeted one (harness/budgets), all on loopback against one Rust mock upstream; writes
bench/results/latest.{md,json} and prints the markdown. Knobs
(environment): BENCH_ROUNDS, BENCH_DURATION, BENCH_WARMUP, BENCH_CONNECTIONS,
BENCH_SSE_STREAMS, BENCH_SSE_CONCURRENCY, BENCH_SSE_PER_CLIENT, BENCH_STORE_SIZES,
BENCH_CHECK_CONNECTIONS, BENCH_LITELLM (0 skips it), BENCH_LITELLM_WORKERS, BENCH_PROFILE (0
skips perf), BENCH_PROFILE_SECONDS. Expects `make bench`'s build and installs.
"""

from __future__ import annotations

import datetime
import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from harness import instructions, measure, probe, profile, report, store_scale
from harness.stack import ROOT, Stack

RESULTS = ROOT / "bench/results"


def knob(name: str, default, cast=int):
    value = os.environ.get(name, "").strip()
    return cast(value) if value else default


def machine() -> str:
    model = "unknown CPU"
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            model = line.split(":", 1)[1].strip()
            break
    return f"{os.cpu_count()} CPUs (nproc), {model}, Linux {platform.release()}"


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


def main() -> int:
    began = time.monotonic()
    rounds, duration = knob("BENCH_ROUNDS", 3), knob("BENCH_DURATION", 5)
    warmup, conns = knob("BENCH_WARMUP", 1), knob("BENCH_CONNECTIONS", 32)
    sse_seq, sse_conc = knob("BENCH_SSE_STREAMS", 40), knob("BENCH_SSE_CONCURRENCY", 8)
    sse_per = knob("BENCH_SSE_PER_CLIENT", 3)
    sizes = [int(s) for s in knob("BENCH_STORE_SIZES", "1000,1000000", str).split(",") if s]
    check_conns = knob("BENCH_CHECK_CONNECTIONS", 8)
    envoy = os.environ.get("ENVOY") or str(ROOT / ".venv/bin/envoy")

    RESULTS.mkdir(parents=True, exist_ok=True)
    workdir = Path(tempfile.mkdtemp(prefix="ptk-bench-"))
    stack = Stack(workdir, envoy, litellm_workers=knob("BENCH_LITELLM_WORKERS", 2))
    try:
        log("starting the mock upstream and seeding token stores (before any load)...")
        stack.start_mock()
        services = store_scale.start(stack, sizes, log) if sizes else {}
        log("starting Envoys (plain, empty wasm, wasm floor, filter cache warm, the same with "
            "metering off, with a budgeted token with and without the body hold, filter cache "
            "off, ext_authz)...")
        stack.start_envoys()
        if knob("BENCH_LITELLM", 1):
            log("starting LiteLLM (takes ~20-60 s to import)...")
            stack.start_litellm()
        else:
            stack.targets["litellm"] = type(stack.targets["mock"])(
                "litellm", "LiteLLM proxy", error="skipped (BENCH_LITELLM=0)")
        if stack.targets["litellm"].error:
            log(f"LiteLLM not measured: {stack.targets['litellm'].error}")
        names = ["mock", "plain", "wasm_empty", "wasm_floor", "filter_warm", "filter_nometer",
                 "filter_budget", "filter_budget_nohold", "filter_off", "ext_authz", "litellm"]
        # The budgeted scenarios are measured with JSON requests only (issue 14's target).
        sse_names = [n for n in names if not n.startswith("filter_budget")]

        log(f"throughput: {rounds} rounds x {len(names)} scenarios, {duration:g}s each...")
        runs = measure.throughput(stack, names, rounds, duration, warmup, conns, log)
        log("SSE time to first / last event...")
        sse = measure.sse(stack, sse_names, rounds, sse_seq, sse_conc, sse_per, log)
        log("token-service check latency by store size...")
        store = (store_scale.measure(stack, services, rounds, duration, warmup, check_conns, log)
                 if services else {})
        log("timing host calls inside the VM (probe)...")
        probed = probe.run(stack, log)
        instr, instr_note = {}, instructions.available()
        if instr_note is None:
            log("counting the metering core's instructions (callgrind)...")
            instr = instructions.count(log)
        else:
            log(f"instruction count skipped: {instr_note}")
        prof, prof_note = {}, None
        if knob("BENCH_PROFILE", 1):
            prof_note = profile.available()
            if prof_note is None:
                log("profiling the Envoy-based scenarios with perf...")
                prof = profile.profile(stack, ["plain", "wasm_empty", "wasm_floor", "filter_warm",
                                                "filter_nometer", "filter_off", "ext_authz"],
                                       knob("BENCH_PROFILE_SECONDS", 4), conns,
                                       workdir, log)
            else:
                log(f"profile skipped: {prof_note}")
    finally:
        stack.procs.stop_all()
        logs = RESULTS / "logs"
        shutil.rmtree(logs, ignore_errors=True)
        logs.mkdir()
        for f in workdir.glob("*.log"):
            shutil.copy(f, logs / f.name)
        shutil.rmtree(workdir, ignore_errors=True)

    meta = {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "machine": machine(), "rounds": rounds, "duration": duration, "warmup": warmup,
        "connections": conns, "check_connections": check_conns,
        "sse": f"{sse_seq} sequential + {sse_conc}x{sse_per} concurrent streams per round",
        "runtime_s": round(time.monotonic() - began),
    }
    summary = report.summarize(stack.targets, runs, sse, store)
    md = report.markdown(summary, meta)
    if probed:
        md += "\n" + probe.markdown(probed)
    if instr:
        md += "\n" + instructions.markdown(instr)
    elif instr_note:
        md += f"\nMetering core instructions not counted: {instr_note}\n"
    if prof:
        md += "\n" + profile.markdown(prof)
    elif prof_note:
        md += f"\nProfile not taken: {prof_note}\n"
    md += f"\nTotal bench runtime: {meta['runtime_s']} s.\n"
    (RESULTS / "latest.md").write_text(md)
    (RESULTS / "latest.json").write_text(json.dumps(
        {"meta": meta, "summary": summary, "runs": runs, "store_runs": store,
         "profile": prof, "probe_ns": probed, "metering_instructions": instr}, indent=1))
    print(md)
    log(f"written: {RESULTS}/latest.md and latest.json (logs in {RESULTS}/logs)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
