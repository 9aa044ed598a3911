"""In-VM costs: one Envoy runs bench/wasm-floor in `probe` mode, one request makes it time
each host call the ptk filter makes (and the filter's own Rust work on a cache hit) in loops
inside V8, and the log lines `ptk-probe <name> <ns>` become a table. Loops run with hot
caches: these are lower bounds, to set against the per-request CPU the throughput runs see."""

from __future__ import annotations

import re
import time
import urllib.request

from . import envoy_configs
from .stack import FLOOR_WASM, WASM, Stack

#: What each probe line measures, in table order.
ITEMS = {
    "get_current_time": "clock read (`get_current_time`)",
    "get_header_map": "whole request header map (`get_header_map_pairs`; one VM re-entry to allocate)",
    "get_header_present": "one present header (`get_header_map_value`; one VM re-entry)",
    "get_header_absent": "one absent header",
    "set_header": "set one request header (`replace_header_map_value`)",
    "get_shared_data": "shared-data read (`get_shared_data`; one VM re-entry)",
    "shared_data_cas_write": "shared-data read + compare-and-swap write",
    "ptk_rust_cache_hit": "the ptk filter's Rust work for a cache hit (parse slots, SHA-256, pool, plan)",
}


def run(stack: Stack, log) -> dict[str, int]:
    """Nanoseconds per item, from a probe Envoy started and stopped here."""
    target, ports = stack.envoy_target("wasm_probe", "probe", host=envoy_configs.UPSTREAM_HOST)
    cfg = envoy_configs.render(stack.workdir, "wasm_probe", mock=f"http://{stack.mock_addr}",
                               token_service="127.0.0.1:1", wasm=WASM, deny_ttl_ms=0, **ports)
    stack.start_envoy(target, envoy_configs.wasm_floor(cfg, FLOOR_WASM, "probe"))
    logfile = stack.workdir / "envoy-wasm_probe.log"
    results: dict[str, int] = {}
    # Two requests: the second runs on a VM whose code V8 has already compiled and warmed.
    for _ in range(2):
        req = urllib.request.Request(
            target.url, data=b'{"model":"gpt-4o-mini","messages":[]}', method="POST",
            headers={"Host": envoy_configs.UPSTREAM_HOST, "Content-Type": "application/json",
                     "Authorization": f"Bearer {stack.token}"})
        with urllib.request.urlopen(req, timeout=120) as resp:
            resp.read()
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline and len(results) < len(ITEMS):
        found = re.findall(r"ptk-probe (\w+) (\d+)", logfile.read_text(errors="replace"))
        results = {name: int(ns) for name, ns in found}  # the last (warm) request's value wins
        time.sleep(0.2)
    proc = stack.procs.running.pop("envoy-wasm_probe", None)
    if proc:
        proc.terminate()
        proc.wait(timeout=15)
    log(f"probe: {len(results)} items")
    return results


def markdown(results: dict[str, int]) -> str:
    lines = ["In-VM cost of each piece (bench/wasm-floor `probe` mode: 20,000-iteration loops "
             "inside V8 on one request, hot caches, so lower bounds):", "",
             "| what | ns per call |", "|---|---:|"]
    for name, label in ITEMS.items():
        if name in results:
            lines.append(f"| {label} | {results[name]:,} |")
    return "\n".join(lines) + "\n"
