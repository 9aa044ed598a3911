#!/usr/bin/env python3
"""What the response body callback costs on a streamed response: the same ptk filter module
with `proxy_on_response_body` exported (as `make wasm` builds it since issue 10 item 14) and
with that export pruned, side by side in alternating rounds, each on its own end-to-end stack
(real Envoy, token-service, a small aiohttp SSE upstream sending many small events, each
flushed on its own after a short pause, as an LLM streams tokens).

Reports Envoy's CPU time (utime + stime from /proc) per stream and per event for each module,
the ratio exported / pruned, and the client's time to the last event. Not part of `make test`
or `make bench`:

    make build venv && .venv/bin/python bench/body_callback.py

Knobs (environment): BODY_ROUNDS (6), BODY_STREAMS (48 per round), BODY_CONCURRENCY (8),
BODY_EVENTS (400 per stream), BODY_GAP_MS (1, between events).
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import aiohttp
from aiohttp import web

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from tests.e2e import harness  # noqa: E402

WASM = ROOT / "target/wasm32-wasip1/release/ptk_filter.wasm"


def knob(name: str, default: int) -> int:
    value = os.environ.get(name, "").strip()
    return int(value) if value else default


ROUNDS, STREAMS = knob("BODY_ROUNDS", 6), knob("BODY_STREAMS", 48)
CONCURRENCY, EVENTS, GAP_MS = knob("BODY_CONCURRENCY", 8), knob("BODY_EVENTS", 400), knob("BODY_GAP_MS", 1)

EVENT = b'data: {"choices":[{"delta":{"content":"tok"}}]}\n\n'


def upstream() -> str:
    """An SSE upstream on a thread: EVENTS events per stream, each written and drained alone."""
    async def stream(request: web.Request) -> web.StreamResponse:
        await request.read()
        resp = web.StreamResponse(headers={"content-type": "text/event-stream"})
        await resp.prepare(request)
        for _ in range(EVENTS):
            await resp.write(EVENT)
            await asyncio.sleep(GAP_MS / 1000)
        await resp.write(b"data: [DONE]\n\n")
        await resp.write_eof()
        return resp

    app = web.Application()
    app.router.add_post("/{tail:.*}", stream)
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    ready = threading.Event()

    def run() -> None:
        loop = asyncio.new_event_loop()
        runner = web.AppRunner(app, access_log=None)
        loop.run_until_complete(runner.setup())
        loop.run_until_complete(web.TCPSite(runner, "127.0.0.1", port).start())
        ready.set()
        loop.run_forever()

    threading.Thread(target=run, daemon=True).start()
    ready.wait(10)
    return f"http://127.0.0.1:{port}"


def cpu_seconds(pid: int) -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


async def load(url: str, token: str) -> tuple[list[float], int]:
    """STREAMS streams, CONCURRENCY at a time; seconds to the last event, and chunks read."""
    sem = asyncio.Semaphore(CONCURRENCY)
    chunks = 0

    async def one(session: aiohttp.ClientSession) -> float:
        nonlocal chunks
        async with sem:
            started = time.monotonic()
            async with session.post(f"{url}/v1/chat/completions",
                                    json={"model": "m", "stream": True, "messages": []},
                                    headers={"authorization": f"Bearer {token}"}) as r:
                assert r.status == 200, r.status
                async for _ in r.content.iter_any():
                    chunks += 1
            return time.monotonic() - started

    async with aiohttp.ClientSession() as session:
        times = await asyncio.gather(*(one(session) for _ in range(STREAMS)))
    return list(times), chunks


def main() -> int:
    if not WASM.exists():
        print("run `make build venv` first", file=sys.stderr)
        return 1
    work = Path(os.environ.get("TMPDIR", "/tmp")) / f"ptk-body-cb-{os.getpid()}"
    work.mkdir(parents=True)
    exported = work / "exported.wasm"
    pruned = work / "pruned.wasm"
    shutil.copy(WASM, exported)
    shutil.copy(WASM, pruned)
    drop = work / "drop.txt"
    drop.write_text("proxy_on_response_body on_http_response_body\n")
    subprocess.run(["cargo", "run", "--quiet", "--release", "-p", "wasm-prune", "--",
                    str(pruned), "--drop-file", str(drop)], cwd=ROOT, check=True)
    up = upstream()
    upstreams = {v: up for v in ("OPENAI_UPSTREAM", "ANTHROPIC_UPSTREAM", "GEMINI_UPSTREAM")}
    samples: dict[str, dict[str, list[float]]] = {
        n: {"cpu_per_stream_ms": [], "cpu_per_event_us": [], "ttle_ms": []}
        for n in ("exported", "pruned")}
    try:
        for r in range(ROUNDS):
            order = ["exported", "pruned"] if r % 2 == 0 else ["pruned", "exported"]
            for name in order:
                harness.WASM = exported if name == "exported" else pruned
                stack = harness.Stack(upstreams=upstreams, rate_limit="100000/60").start()
                try:
                    token = stack.mint()["token"]
                    asyncio.run(load(stack.url, token))  # warm-up: cache, connections
                    pid = stack.procs["envoy"].pid
                    before = cpu_seconds(pid)
                    times, chunks = asyncio.run(load(stack.url, token))
                    spent = cpu_seconds(pid) - before
                finally:
                    stack.stop()
                    stack.cleanup()
                events = STREAMS * (EVENTS + 1)
                s = samples[name]
                s["cpu_per_stream_ms"].append(spent * 1000 / STREAMS)
                s["cpu_per_event_us"].append(spent * 1e6 / events)
                s["ttle_ms"].append(statistics.median(times) * 1000)
                print(f"round {r + 1} {name:8s} envoy cpu {spent * 1000:7.1f} ms for {STREAMS} "
                      f"streams ({chunks} chunks read), p50 last event "
                      f"{statistics.median(times) * 1000:.0f} ms", file=sys.stderr)
    finally:
        shutil.rmtree(work, ignore_errors=True)
    summary = {n: {k: round(statistics.median(v), 3) for k, v in s.items()}
               for n, s in samples.items()}
    summary["ratio_cpu_exported_over_pruned"] = round(
        summary["exported"]["cpu_per_stream_ms"] / summary["pruned"]["cpu_per_stream_ms"], 3)
    summary["setup"] = {"rounds": ROUNDS, "streams": STREAMS, "concurrency": CONCURRENCY,
                        "events_per_stream": EVENTS, "gap_ms": GAP_MS}
    print(json.dumps(summary, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
