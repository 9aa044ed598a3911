"""In headless Chromium: a page on another origin calls the proxy with fetch (OpenAI, Anthropic
with its browser opt-in header, Gemini with x-goog-api-key) and opens the OpenAI Realtime
WebSocket with the subprotocol key, against the mock upstream (tests/browser/cors_realtime.mjs)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from .harness import REAL_KEYS, ROOT

CHROMIUM = Path("/usr/bin/chromium")
MODULES = ROOT / "tests/browser/node_modules/playwright-core"


def test_browser_page_on_another_origin(stack):
    # Never skip: a missing browser or module is a set-up error with the command that fixes it.
    assert CHROMIUM.exists(), "Chromium missing: run `make browser-deps`"
    assert MODULES.exists(), "playwright-core missing: run `make browser-deps`"
    assert shutil.which("node"), "node missing"
    token = stack.mint("openai,anthropic,gemini", "--rate-limit", "1000/60")["token"]
    gemini_only = stack.mint("gemini")["token"]
    env = dict(os.environ, PTK_PROXY_URL=stack.url, PTK_TOKEN=token,
               PTK_GEMINI_ONLY_TOKEN=gemini_only)
    run = subprocess.run(["node", str(ROOT / "tests/browser/cors_realtime.mjs")], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=90)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    by_name = {r["name"]: r for r in report["results"]}
    assert "exception" not in by_name, by_name

    assert by_name["openai"]["status"] == 200
    assert by_name["openai"]["json"]["choices"][0]["message"]["content"] == "hi"
    assert by_name["anthropic"]["status"] == 200
    assert by_name["anthropic"]["json"]["type"] == "message"
    assert by_name["gemini"]["status"] == 200
    assert by_name["gemini"]["json"]["candidates"][0]["content"]["parts"][0]["text"] == "hi"
    # Reading these bodies cross-origin at all needs the reflected allow-origin; the browser
    # hides every header not exposed (access-control-expose-headers itself included).
    assert by_name["openai"]["exposed"] is None
    # A refusal is readable from the page too (decorated local error).
    assert by_name["refused"]["status"] == 403
    assert by_name["refused"]["json"]["error"]["message"] == "token not allowed for provider"

    rt = by_name["realtime"]
    assert rt["protocol"] == "realtime"
    assert rt["echoed"] == '{"type":"session.update"}'
    assert rt["binary"] == [0, 1, 2, 253, 254, 255]
    assert rt["close"] == [4001, "page done"]

    recorded = stack.upstream_requests()
    assert all(r["method"] != "OPTIONS" for r in recorded), "a preflight reached the upstream"
    assert token not in json.dumps(recorded)
    handshake = [r for r in recorded if r["kind"] == "websocket"]
    assert len(handshake) == 1
    headers = dict(handshake[0]["headers"])
    assert headers["authorization"] == f"Bearer {REAL_KEYS['OPENAI_API_KEY']}"
    assert headers["sec-websocket-protocol"] == "realtime, openai-beta.realtime-v1"
    anthropic = [r for r in recorded if r["path"] == "/v1/messages"][0]
    assert dict(anthropic["headers"])["anthropic-dangerous-direct-browser-access"] == "true"
    assert dict(anthropic["headers"])["x-api-key"] == REAL_KEYS["ANTHROPIC_API_KEY"]
