"""A flood of distinct random proxy tokens from one client, driven by `wrk` (a C load generator:
Python clients cannot send tens of thousands of requests in a few seconds on two cores)."""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

import requests

SCRIPT = Path(__file__).resolve().parent / "wrk" / "random_tokens.lua"


def stat(admin_port: int, name: str) -> int:
    """One Envoy counter, 0 when it does not exist yet."""
    text = requests.get(f"http://127.0.0.1:{admin_port}/stats?filter={re.escape(name)}$",
                        timeout=5).text
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def flood(url: str, seconds: float, connections: int = 16) -> int:
    """Sends random-token requests to `url` for `seconds`; returns how many were sent."""
    wrk = shutil.which("wrk")
    assert wrk, "wrk missing: run `make test-deps`"
    out = subprocess.run(
        [wrk, "-t2", f"-c{connections}", f"-d{seconds}s", "-s", str(SCRIPT), url],
        capture_output=True, text=True, timeout=seconds + 30, check=True,
    ).stdout
    match = re.search(r"(\d+) requests in", out)
    assert match, f"unexpected wrk output: {out!r}"
    return int(match.group(1))


def allocated(admin_port: int) -> int:
    """Envoy's heap in use (bytes), from its admin `/memory`."""
    return int(requests.get(f"http://127.0.0.1:{admin_port}/memory", timeout=5).json()["allocated"])
