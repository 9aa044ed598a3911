"""Issue 10 item 13 in headless Chromium: a browser Realtime app holds no key. Its backend
(tests/browser/client_secret_realtime.mjs, the Node build of `openai`) mints a client secret
through the proxy with a proxy token; the page opens OpenAI Realtime with the browser build of
`openai` (`OpenAIRealtimeWebSocket`, the secret in the subprotocol entry) through the proxy's
TLS listener to the mock, which sees the secret as minted, never the real key, never the
proxy token."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

import requests

from .harness import REAL_KEYS, ROOT

CHROMIUM = Path("/usr/bin/chromium")
MODULES = ROOT / "tests/browser/node_modules"
STACK_SETTINGS = {"plugin_config": {"ephemeral": {"pass_through": True}}}


def run_page(stack, token: str) -> dict:
    # Never skip: a missing browser or module is a set-up error with the command that fixes it.
    assert CHROMIUM.exists(), "Chromium missing: run `make browser-deps`"
    for module in ("playwright-core", "esbuild", "openai"):
        assert (MODULES / module).exists(), f"{module} missing: run `make browser-deps`"
    assert shutil.which("node"), "node missing"
    env = dict(os.environ, PTK_PROXY_URL=stack.url, PTK_PROXY_TLS_URL=stack.tls_url,
               PTK_TOKEN=token)
    run = subprocess.run(["node", str(ROOT / "tests/browser/client_secret_realtime.mjs")],
                         env=env, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["results"] is not None, report["console"]
    return report


def test_a_browser_opens_realtime_with_a_client_secret_minted_through_the_proxy(stack):
    token = stack.mint("openai")["token"]
    report = run_page(stack, token)
    got = report["results"]
    assert "exception" not in got, (got, report["console"])
    assert got["minted"]["prefix"] == "ek_" and got["minted"]["expiresInS"] > 60
    assert got["url"] == {"protocol": "wss:", "path": "/v1/realtime?model=gpt-realtime"}
    assert got["opened"] is True, got
    assert got["protocol"] == "realtime"
    assert got["echoed"]["type"] == "session.update"
    assert got["echoed"]["session"]["instructions"] == "be brief"
    assert got["close"] == [4001, "page done"]

    minted = requests.get(f"{stack.mock_url}/__mock/client_secrets", timeout=5).json()
    assert len(minted) == 1
    secret = minted[0]["value"]
    recorded = stack.upstream_requests()
    (mint,) = [r for r in recorded if r["path"] == "/v1/realtime/client_secrets"]
    assert dict(mint["headers"])["authorization"] == f"Bearer {REAL_KEYS['OPENAI_API_KEY']}"
    (handshake,) = [r for r in recorded if r["kind"] == "websocket"]
    headers = dict(handshake["headers"])
    assert headers["sec-websocket-protocol"] == f"realtime, openai-insecure-api-key.{secret}"
    assert "authorization" not in headers
    text = json.dumps(handshake)
    for key in REAL_KEYS.values():
        assert key not in text, "a real key went up with the client secret"
    assert token not in json.dumps(recorded), "the proxy token reached the upstream"
