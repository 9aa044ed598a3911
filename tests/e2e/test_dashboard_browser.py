"""The dashboard in a real browser: Debian's Chromium (never a downloaded one) driven by
playwright-core (tests/browser/dashboard.mjs) through the real Envoy, against a real
token-service and the recording mock upstream. Saves tests/artifacts/dashboard.png."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import time
from pathlib import Path

from .harness import REAL_KEYS, ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = ROOT / "tests/browser/dashboard.mjs"
MODULES = ROOT / "tests/browser/node_modules/playwright-core"
SCREENSHOT = ROOT / "tests/artifacts/dashboard.png"


def test_dashboard_in_chromium(stack):
    # Never skip: a missing browser or module is a set-up error with the command that fixes it.
    assert CHROMIUM.exists(), "Chromium missing: run `make browser-deps` (apt-get install chromium)"
    assert MODULES.exists(), "playwright-core missing: run `make browser-deps` (npm ci)"
    assert shutil.which("node"), "node missing"
    SCREENSHOT.unlink(missing_ok=True)
    SCREENSHOT.with_name("dashboard-failure.png").unlink(missing_ok=True)
    env = dict(
        os.environ,
        PTK_PROXY_URL=stack.url,
        PTK_ADMIN_SECRET=stack.admin_secret,
        PTK_MOCK_URL=stack.mock_url,
        PTK_REAL_OPENAI_KEY=REAL_KEYS["OPENAI_API_KEY"],
        PTK_SCREENSHOT=str(SCREENSHOT),
    )
    started = time.monotonic()
    run = subprocess.run(["node", str(SCRIPT)], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    took = time.monotonic() - started
    print(run.stdout)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    assert SCREENSHOT.exists() and SCREENSHOT.stat().st_size > 10_000
    latency = int(re.search(r"REVOCATION_LATENCY_MS=(\d+)", run.stdout).group(1))
    assert latency <= 1500, latency
    print(f"browser test took {took:.1f}s; disable -> refused in {latency} ms")
    assert took < 60, f"browser test took {took:.1f}s"
