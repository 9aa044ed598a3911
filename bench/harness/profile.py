"""Where the filter's remaining microseconds go: `perf record` (software cpu-clock event;
this VM exposes no hardware counters) on the Envoy process while wrk drives it, for each
Envoy-based scenario, samples grouped by shared object, plus Envoy's and the sidecar's CPU
per request from /proc. The pip Envoy binary is stripped,
so symbols inside Envoy are not available; the split that matters is visible anyway: V8's
JIT-compiled wasm (anonymous executable memory, no DSO), V8 itself and Envoy's C++ (both in
the envoy binary), libc, and the kernel (sockets, epoll)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from .measure import POST_LUA
from .procs import cpu_seconds
from .stack import Stack


def available() -> str | None:
    """None when perf can sample here, else why not."""
    if not shutil.which("perf"):
        return "perf is not installed (apt-get install linux-perf)"
    probe = subprocess.run(["perf", "record", "-e", "cpu-clock", "-o", "/dev/null", "--", "true"],
                           capture_output=True, text=True)
    return None if probe.returncode == 0 else f"perf record failed: {probe.stderr.strip()[:200]}"


def by_dso(data: Path) -> dict[str, float]:
    out = subprocess.run(["perf", "report", "-i", str(data), "--sort", "dso", "--stdio"],
                         capture_output=True, text=True, check=True).stdout
    shares = {}
    for line in out.splitlines():
        m = re.match(r"\s+([\d.]+)%\s+(.+?)\s*$", line)
        if m:
            # perf names V8's generated code per thread ("[JIT] tid 123"): one bucket.
            dso = "[JIT] V8-generated code (wasm)" if m.group(2).startswith("[JIT]") else m.group(2)
            shares[dso] = shares.get(dso, 0.0) + float(m.group(1))
    return shares


def profile(stack: Stack, names: list[str], seconds: float, connections: int, outdir: Path,
            log) -> dict[str, dict]:
    results = {}
    for name in names:
        t = stack.targets[name]
        if t.error or not t.envoy_pid:
            continue
        env = dict(os.environ, BENCH_TOKEN=stack.token, BENCH_HOST=t.host)
        load = subprocess.Popen(
            ["wrk", "-t2", f"-c{connections}", f"-d{seconds + 2:g}s", "-s", POST_LUA, t.url],
            env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        time.sleep(1)  # past connection set-up
        data = outdir / f"perf-{name}.data"
        cpu0 = {p: cpu_seconds([p]) for p in t.cpu_pids}
        subprocess.run(["perf", "record", "-q", "-e", "cpu-clock", "-F", "999", "-p",
                        str(t.envoy_pid), "-o", str(data), "--", "sleep", f"{seconds:g}"],
                       capture_output=True, check=True)
        cpu = {p: cpu_seconds([p]) - cpu0[p] for p in t.cpu_pids}
        out, _ = load.communicate(timeout=seconds + 30)
        m = re.search(r"(\d+) requests in ([\d.]+)s", out)
        rate = int(m.group(1)) / float(m.group(2)) if m else None
        requests = rate * seconds if rate else None
        shares = by_dso(data)
        envoy_us = cpu[t.envoy_pid] / requests * 1e6 if requests else None
        side = [p for p in t.cpu_pids if p != t.envoy_pid]
        results[name] = {
            "dso_share_pct": shares,
            "envoy_cpu_us_per_request": envoy_us,
            "sidecar_cpu_us_per_request": (sum(cpu[p] for p in side) / requests * 1e6)
            if requests and side else None,
            "rps_during_profile": rate,
        }
        log(f"  {name}: Envoy {envoy_us:.1f} µs CPU/request; top: "
            + ", ".join(f"{k} {v:.1f}%" for k, v in list(shares.items())[:4]))
    return results


def markdown(results: dict[str, dict]) -> str:
    if not results:
        return ""
    dsos: list[str] = []
    for r in results.values():
        for k in r["dso_share_pct"]:
            if k not in dsos and len(dsos) < 8 and r["dso_share_pct"][k] >= 0.1:
                dsos.append(k)
    names = list(results)
    lines = ["Profile of the Envoy process under load (perf cpu-clock samples by DSO, and CPU "
             "µs per request from /proc; same wrk load as above):", "",
             "| | " + " | ".join(names) + " |", "|---|" + "---:|" * len(names)]
    lines.append("| Envoy CPU µs / request | " + " | ".join(
        f"{results[n]['envoy_cpu_us_per_request']:.1f}" if results[n]["envoy_cpu_us_per_request"]
        else "-" for n in names) + " |")
    lines.append("| sidecar CPU µs / request | " + " | ".join(
        f"{results[n]['sidecar_cpu_us_per_request']:.1f}" if results[n]["sidecar_cpu_us_per_request"]
        else "-" for n in names) + " |")
    for d in dsos:
        cells = []
        for n in names:
            share = results[n]["dso_share_pct"].get(d)
            us = results[n]["envoy_cpu_us_per_request"]
            cells.append("-" if share is None else
                         f"{share:.1f}% ({share / 100 * us:.1f} µs)" if us else f"{share:.1f}%")
        lines.append(f"| `{d}` | " + " | ".join(cells) + " |")
    return "\n".join(lines) + "\n"
