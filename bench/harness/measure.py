"""The measurement loops. Every round runs every target once, in an order rotated per round,
so slow drift on a shared 2-core machine (other jobs, thermal, page cache) lands on all
targets alike; the report then takes medians and per-round paired ratios."""

from __future__ import annotations

import json
import os
import re
import subprocess
import urllib.request
from pathlib import Path

from . import wrk
from .procs import cpu_seconds, rss_mib
from .stack import RELEASE, Stack, Target

POST_LUA = str(Path(__file__).resolve().parents[1] / "lua/post.lua")


def callouts(target: Target) -> int | None:
    """Requests Envoy has sent to the auth service so far (token-service or bench-authz)."""
    if not target.callout_cluster or not target.admin_port:
        return None
    name = f"cluster.{target.callout_cluster}.upstream_rq_total"
    url = f"http://127.0.0.1:{target.admin_port}/stats?filter=^{re.escape(name)}$"
    with urllib.request.urlopen(url, timeout=5) as resp:
        for line in resp.read().decode().splitlines():
            key, _, value = line.partition(": ")
            if key == name:
                return int(value)
    return 0


def rotated(items: list, by: int) -> list:
    by %= max(len(items), 1)
    return items[by:] + items[:by]


def throughput(stack: Stack, names: list[str], rounds: int, duration: float, warmup: float,
               connections: int, log) -> dict[str, list[dict]]:
    runs: dict[str, list[dict]] = {n: [] for n in names}
    live = [n for n in names if not stack.targets[n].error]
    for r in range(rounds):
        for name in rotated(live, r):
            t = stack.targets[name]
            env = {"BENCH_TOKEN": stack.token, "BENCH_HOST": t.host}
            if warmup > 0:
                wrk.run(t.url, POST_LUA, warmup, connections, env=env)
            side = [t.sidecar_pid] if t.sidecar_pid else []
            calls0, cpu0, side0 = callouts(t), cpu_seconds(t.cpu_pids), cpu_seconds(side)
            res = wrk.run(t.url, POST_LUA, duration, connections, env=env)
            cpu, side_cpu = cpu_seconds(t.cpu_pids) - cpu0, cpu_seconds(side) - side0
            calls1 = callouts(t)
            run = {
                "round": r + 1, "rps": res.rps, "p50_ms": res.p50_ms, "p99_ms": res.p99_ms,
                "requests": res.requests, "errors": res.errors,
                "cpu_s_per_10k": cpu / res.requests * 10_000 if res.requests else None,
                # The sidecar's part of it (token-service, bench-authz or LiteLLM).
                "sidecar_cpu_s_per_10k": side_cpu / res.requests * 10_000
                if res.requests and side else None,
                "envoy_rss_mib": rss_mib(t.envoy_pid) if t.envoy_pid else None,
                "sidecar_rss_mib": rss_mib(t.sidecar_pid) if t.sidecar_pid else None,
                "callouts_per_1k": (calls1 - calls0) / res.requests * 1000
                if calls0 is not None and calls1 is not None and res.requests else None,
            }
            runs[name].append(run)
            log(f"  round {r + 1}/{rounds} {name:14s} {res.rps:9.0f} req/s  p50 {res.p50_ms:7.3f} ms"
                f"  p99 {res.p99_ms:7.3f} ms  errors {res.errors}")
    return runs


def sse(stack: Stack, names: list[str], rounds: int, sequential: int, concurrency: int,
        per_client: int, log) -> dict[str, dict]:
    """Pooled TTFE/TTLE samples (µs) per target, sequential and concurrent phases apart, and
    the CPU time of the target's processes over its runs with the SSE events delivered (the
    `data:` lines bench-sse counted in the streams that completed)."""
    pooled = {n: {"sequential": {"ttfe_us": [], "ttle_us": []},
                  "concurrent": {"ttfe_us": [], "ttle_us": []}, "errors": [],
                  "events": 0, "cpu_s": 0.0} for n in names}
    live = [n for n in names if not stack.targets[n].error]
    for r in range(rounds):
        for name in rotated(live, r):
            t = stack.targets[name]
            cpu0 = cpu_seconds(t.cpu_pids)
            out = subprocess.run(
                [str(RELEASE / "bench-sse"), "--addr", t.addr, "--host", t.host or t.addr,
                 "--sequential", str(sequential), "--concurrency", str(concurrency),
                 "--per-client", str(per_client)],
                env=dict(os.environ, BENCH_TOKEN=stack.token), capture_output=True, text=True,
                timeout=600, check=True)
            pooled[name]["cpu_s"] += cpu_seconds(t.cpu_pids) - cpu0
            got = json.loads(out.stdout)
            for phase in ("sequential", "concurrent"):
                for k in ("ttfe_us", "ttle_us"):
                    pooled[name][phase][k].extend(got[phase][k])
                pooled[name]["events"] += got[phase]["events"]
            pooled[name]["errors"].extend(got["errors"])
            log(f"  round {r + 1}/{rounds} {name:14s} SSE streams ok "
                f"{len(got['sequential']['ttfe_us']) + len(got['concurrent']['ttfe_us'])}, "
                f"errors {len(got['errors'])}")
    return pooled
