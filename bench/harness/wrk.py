"""Running wrk and reading its summary: req/s, p50/p99 latency, and anything that was not a
2xx (a run with errors is reported as such, never as a throughput)."""

from __future__ import annotations

import os
import re
import subprocess
from dataclasses import dataclass

UNITS = {"us": 0.001, "ms": 1.0, "s": 1000.0, "m": 60000.0}


@dataclass
class WrkResult:
    rps: float
    p50_ms: float
    p99_ms: float
    requests: int
    errors: int  # non-2xx/3xx responses plus socket errors
    duration_s: float


def _ms(text: str) -> float:
    m = re.fullmatch(r"([\d.]+)(us|ms|s|m)", text)
    if not m:
        raise ValueError(f"cannot read wrk latency {text!r}")
    return float(m.group(1)) * UNITS[m.group(2)]


def parse(out: str) -> WrkResult:
    rps = float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))
    p50 = _ms(re.search(r"^\s+50%\s+(\S+)", out, re.M).group(1))
    p99 = _ms(re.search(r"^\s+99%\s+(\S+)", out, re.M).group(1))
    m = re.search(r"(\d+) requests in ([\d.]+)(ms|s|m)", out)
    requests = int(m.group(1))
    duration = float(m.group(2)) * UNITS[m.group(3)] / 1000.0
    errors = 0
    if m := re.search(r"Non-2xx or 3xx responses: (\d+)", out):
        errors += int(m.group(1))
    if m := re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", out):
        # Read errors are connection closes; timeouts and failed connects are real failures.
        errors += int(m.group(1)) + int(m.group(3)) + int(m.group(4))
    return WrkResult(rps, p50, p99, requests, errors, duration)


def run(url: str, script: str, duration_s: float, connections: int, threads: int = 2,
        env: dict[str, str] | None = None) -> WrkResult:
    """One wrk run; `env` carries the token / Host / secret the Lua script reads."""
    args = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{max(1, round(duration_s))}s", "--latency",
            "--timeout", "10s", "-s", script, url]
    out = subprocess.run(args, env=dict(os.environ, **(env or {})), capture_output=True,
                         text=True, timeout=duration_s + 60)
    if out.returncode != 0:
        raise RuntimeError(f"wrk failed: {out.stderr.strip() or out.stdout.strip()}")
    return parse(out.stdout)
