"""Token-service check latency with 1,000 vs 1,000,000 tokens in the store: two fresh SQLite
files with the schema the token-service itself creates (its CLI mints the first token, which
also gives the exact row format), bulk-filled in one transaction, then wrk posting valid
CheckRequests straight to each service's check API, interleaved per round."""

from __future__ import annotations

import hashlib
import random
import sqlite3
import time
from pathlib import Path

from . import wrk
from .stack import RATE_LIMIT, Stack

CHECK_LUA = str(Path(__file__).resolve().parents[1] / "lua/check.lua")
#: Hashes wrk draws from (spread over the whole table, so the index is really walked).
PROBES = 1000


def seed(db: Path, count: int) -> list[str]:
    """Adds `count - 1` tokens next to the minted one; returns hashes to probe."""
    limit, window = (int(x) for x in RATE_LIMIT.split("/"))
    conn = sqlite3.connect(db)
    created = conn.execute("SELECT created_at FROM tokens LIMIT 1").fetchone()[0]
    rows = ((hashlib.sha256(f"ptk_bench_seed_{i:09d}".encode()).hexdigest(), "seed", f"{i % 10000:04d}",
             '["openai"]', "active", created, None, limit, window) for i in range(count - 1))
    with conn:  # one transaction: ~1M rows in seconds instead of hours of fsyncs
        conn.executemany("INSERT INTO tokens (hash, label, last4, providers, status, created_at,"
                         " expires_at, rate_limit, rate_window_s) VALUES (?,?,?,?,?,?,?,?,?)", rows)
    step = max((count - 1) // PROBES, 1)
    probes = [hashlib.sha256(f"ptk_bench_seed_{i:09d}".encode()).hexdigest()
              for i in range(0, count - 1, step)][:PROBES]
    total = conn.execute("SELECT count(*) FROM tokens").fetchone()[0]
    conn.close()
    if total != count:
        raise RuntimeError(f"{db}: expected {count} tokens, found {total}")
    return probes


def start(stack: Stack, sizes: list[int], log) -> dict[int, dict]:
    services = {}
    for size in sizes:
        db = stack.workdir / f"store-{size}.sqlite3"
        stack.mint(db)  # the CLI creates the file and schema; then we bulk-fill it
        began = time.monotonic()
        probes = seed(db, size)
        hashes = stack.workdir / f"probes-{size}.txt"
        hashes.write_text("\n".join(probes) + "\n")
        # Cache TTL 0: no leases, so every probe is a full check (store read + limiter).
        proc, listen = stack.start_token_service(f"store-{size}", 0, db=db, mint=False)
        services[size] = {"addr": listen, "hashes": hashes, "pid": proc.pid}
        log(f"  store with {size:,} tokens seeded in {time.monotonic() - began:.1f}s")
    return services


def measure(stack: Stack, services: dict[int, dict], rounds: int, duration: float,
            warmup: float, connections: int, log) -> dict[int, list[dict]]:
    runs: dict[int, list[dict]] = {size: [] for size in services}
    sizes = list(services)
    for r in range(rounds):
        for size in (sizes if r % 2 == 0 else sizes[::-1]):
            svc = services[size]
            env = {"BENCH_HASHES_FILE": str(svc["hashes"]), "BENCH_CHECK_SECRET": stack.secret}
            url = f"http://{svc['addr']}"
            if warmup > 0:
                wrk.run(url, CHECK_LUA, warmup, connections, env=env)
            res = wrk.run(url, CHECK_LUA, duration, connections, env=env)
            runs[size].append({"round": r + 1, "rps": res.rps, "p50_ms": res.p50_ms,
                               "p99_ms": res.p99_ms, "requests": res.requests,
                               "errors": res.errors})
            log(f"  round {r + 1}/{rounds} {size:>9,} tokens {res.rps:9.0f} checks/s"
                f"  p50 {res.p50_ms:7.3f} ms  p99 {res.p99_ms:7.3f} ms  errors {res.errors}")
    return runs
