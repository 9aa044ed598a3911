#!/usr/bin/env python3
"""What token usage metering costs per request: two end-to-end stacks (real Envoy, token-service,
the mock upstream), the same filter module with `metering.enabled` on and off, loaded side by
side with wrk in alternating rounds. Three request kinds: a small non-streamed Chat Completions
POST (request body held until complete, the JSON response read), the same streamed without
`stream_options` (body held and rewritten, the SSE read and the usage chunk cut), and a model
listing (not metered: only the request body callback's one VM entry).

Reports requests/s per kind for each, and the ratio on / off. Not part of `make test` or
`make bench` (a few minutes):

    make build venv && .venv/bin/python bench/metering_cost.py

Knobs (environment): METER_ROUNDS (3), METER_SECONDS (5), METER_CONNECTIONS (16).
"""

from __future__ import annotations

import os
import re
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e.harness import Stack  # noqa: E402

ROUNDS = int(os.environ.get("METER_ROUNDS", "3"))
SECONDS = int(os.environ.get("METER_SECONDS", "5"))
CONNECTIONS = int(os.environ.get("METER_CONNECTIONS", "16"))

KINDS = {
    "chat": ("POST", "/v1/chat/completions",
             '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'),
    "stream": ("POST", "/v1/chat/completions",
               '{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}'),
    "models": ("GET", "/v1/models", ""),
}


def script(method: str, body: str, token: str, folder: Path) -> Path:
    path = folder / f"{method}-{abs(hash(body))}.lua"
    lines = [f'wrk.method = "{method}"', f'wrk.headers["Authorization"] = "Bearer {token}"']
    if body:
        lines += [f"wrk.body = '{body}'", 'wrk.headers["Content-Type"] = "application/json"']
    path.write_text("\n".join(lines) + "\n")
    return path


def rate(url: str, lua: Path) -> float:
    out = subprocess.run(["wrk", "-t", "2", "-c", str(CONNECTIONS), "-d", f"{SECONDS}s",
                          "-s", str(lua), url], capture_output=True, text=True, check=True).stdout
    errors = re.search(r"Non-2xx or 3xx responses: (\d+)", out)
    if errors:
        raise RuntimeError(f"{errors.group(1)} failed requests:\n{out}")
    return float(re.search(r"Requests/sec:\s+([\d.]+)", out).group(1))


def main() -> int:
    stacks = {
        "on": Stack(cache_ttl_ms=60_000, rate_limit="100000000/60"),
        "off": Stack(cache_ttl_ms=60_000, rate_limit="100000000/60",
                     plugin_config={"metering": {"enabled": False}}),
    }
    results: dict[tuple[str, str], list[float]] = {}
    try:
        for stack in stacks.values():
            stack.start()
        with tempfile.TemporaryDirectory() as tmp:
            scripts = {}
            for name, stack in stacks.items():
                folder = Path(tmp) / name
                folder.mkdir()
                token = stack.mint()["token"]
                for kind, (method, _, body) in KINDS.items():
                    scripts[name, kind] = script(method, body, token, folder)
            for round_ in range(ROUNDS):
                for kind, (_, path, _) in KINDS.items():
                    for name in (("on", "off") if round_ % 2 == 0 else ("off", "on")):
                        r = rate(stacks[name].url + path, scripts[name, kind])
                        results.setdefault((name, kind), []).append(r)
                        print(f"round {round_ + 1}/{ROUNDS} {kind:7} metering {name:3} "
                              f"{r:8.0f} req/s", flush=True)
    finally:
        for stack in stacks.values():
            stack.stop()
            stack.cleanup()
    print("\nmedians (req/s) and the ratio metering on / off, measured side by side:")
    for kind in KINDS:
        on = statistics.median(results["on", kind])
        off = statistics.median(results["off", kind])
        print(f"  {kind:7} on {on:8.0f}  off {off:8.0f}  ratio {on / off:.3f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
