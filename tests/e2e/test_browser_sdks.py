"""The real browser builds of `openai`, `@anthropic-ai/sdk` and `@google/genai` in headless
Chromium, on a page of another origin, through the real Envoy to the mock upstream
(tests/browser/sdk_headers.mjs, issue 10 item 11): each SDK reads the provider's request id,
rate-limit and retry headers from a proxied response (the browser hides every header the
response does not expose), and `@google/genai`'s `caches.update` (PATCH) passes the preflight."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
from pathlib import Path

from .harness import ROOT

CHROMIUM = Path("/usr/bin/chromium")
MODULES = ROOT / "tests/browser/node_modules"


def run_page(stack) -> dict:
    # Never skip: a missing browser or module is a set-up error with the command that fixes it.
    assert CHROMIUM.exists(), "Chromium missing: run `make browser-deps`"
    for module in ("playwright-core", "esbuild", "openai", "@anthropic-ai/sdk", "@google/genai"):
        assert (MODULES / module).exists(), f"{module} missing: run `make browser-deps`"
    assert shutil.which("node"), "node missing"
    token = stack.mint("openai,anthropic,gemini", "--rate-limit", "1000/60")["token"]
    env = dict(os.environ, PTK_PROXY_URL=stack.url, PTK_TOKEN=token)
    run = subprocess.run(["node", str(ROOT / "tests/browser/sdk_headers.mjs")], env=env,
                         cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert run.returncode == 0, run.stderr[-3000:]
    report = json.loads(run.stdout.strip().splitlines()[-1])
    assert report["results"] is not None, report["console"]
    report["token"] = token
    return report


def test_browser_sdks_read_the_providers_headers_through_the_proxy(stack):
    report = run_page(stack)
    got = report["results"]
    recorded = stack.upstream_requests()

    # openai: the request id and the rate-limit headers of a success.
    assert got["openai"]["text"] == "hi", got["openai"]
    assert (got["openai"]["requestId"] or "").startswith("req_mock"), got["openai"]
    assert got["openai"]["remaining"] == "4999" and got["openai"]["resetTokens"] == "1ms"
    # ... and of a 429: retry-after read, x-should-retry: false obeyed (no second attempt).
    assert got["openai_429"] == {"thrown": True, "status": 429, "rateLimitError": True,
                                 "retryAfter": "7", "shouldRetry": "false",
                                 "requestID": got["openai_429"]["requestID"]}, got["openai_429"]
    assert (got["openai_429"]["requestID"] or "").startswith("req_mock")

    # @anthropic-ai/sdk: Anthropic exposes "*"; kept, so the SDK reads everything.
    assert got["anthropic"]["text"] == "hi", got["anthropic"]
    assert (got["anthropic"]["requestId"] or "").startswith("req_mock"), got["anthropic"]
    assert got["anthropic"]["remaining"] == "3999"
    assert got["anthropic"]["organization"] == "org-mock-0001", "Anthropic's '*' was not kept"
    assert got["anthropic_429"]["status"] == 429, got["anthropic_429"]
    assert got["anthropic_429"]["rateLimitError"] is True
    assert got["anthropic_429"]["retryAfter"] == "7"
    assert got["anthropic_429"]["shouldRetry"] == "false"
    assert (got["anthropic_429"]["requestID"] or "").startswith("req_mock")
    too_many = [r for r in recorded if ["x-mock-status", "429"] in r["headers"]]
    assert len(too_many) == 2, "each SDK obeyed x-should-retry: false (one attempt each)"

    # @google/genai: the response headers it hands its user, then caches.update (PATCH).
    assert got["genai"]["text"] == "hi", got["genai"]
    headers = got["genai"]["headers"] or {}
    assert headers.get("retry-after") == "7", headers
    assert headers.get("x-ratelimit-remaining-requests") == "41", headers
    assert (headers.get("x-request-id") or "").startswith("req_mock"), headers
    assert got["genai_caches_update"]["name"] == "cachedContents/c1", got["genai_caches_update"]
    patch = [r for r in recorded if r["method"] == "PATCH"]
    assert len(patch) == 1 and patch[0]["path"].startswith("/v1beta/cachedContents/c1")
    assert json.loads(patch[0]["body"])["ttl"] == "3600s"

    assert all(r["method"] != "OPTIONS" for r in recorded), "a preflight reached the upstream"
    assert report["token"] not in json.dumps(recorded)
