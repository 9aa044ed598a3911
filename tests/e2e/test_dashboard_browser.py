"""The dashboard in a real browser: Debian's Chromium (never a downloaded one) driven by
playwright-core (tests/browser/dashboard.mjs, dashboard_usage.mjs) through the real Envoy,
against a real token-service and the recording mock upstream. Saves
tests/artifacts/dashboard.png and dashboard-usage.png."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import requests

from .admin_client import AdminClient
from .harness import REAL_KEYS, ROOT

CHROMIUM = Path("/usr/bin/chromium")
SCRIPT = ROOT / "tests/browser/dashboard.mjs"
MODULES = ROOT / "tests/browser/node_modules/playwright-core"
SCREENSHOT = ROOT / "tests/artifacts/dashboard.png"
USAGE_SCRIPT = ROOT / "tests/browser/dashboard_usage.mjs"
USAGE_SCREENSHOT = ROOT / "tests/artifacts/dashboard-usage.png"


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


# --- the usage view -------------------------------------------------------------------------

#: A model name is the provider's text (the mock echoes the client's): it must show as text.
HTML_MODEL = '<img src=x onerror="window.__pwned=1">gpt-x'
#: How the view names the model of a response that named none (an upstream error's).
NO_MODEL = "(none named)"
#: A model whose one reported call costs less than $0.000001.
TINY_MODEL = "text-embedding-3-small"
COUNT_KEYS = ["requests", "input_tokens", "cached_input_tokens", "cache_write_tokens",
              "output_tokens", "reasoning_tokens", "incomplete"]
#: Reported the way the filter reports (POST /v1/usage with the check secret): large counts,
#: different in every column, so a column shown in the wrong place fails the test.
REPORTED = {"requests": 2, "incomplete": 0, "input_tokens": 1_234_567,
            "cached_input_tokens": 234_567, "cache_write_tokens": 3_456,
            "output_tokens": 89_012, "reasoning_tokens": 12_345}


def usd(api: dict) -> str:
    """The view's money format (en-GB), from the exact nanodollars: cents from $1 on, every
    significant decimal below (so a cost under $0.000001 is not $0.00)."""
    nano = api["cost_nano_usd"]
    assert api["cost_usd"] == f"{(nano + 500) // 1000 / 1_000_000:.6f}", api
    if nano == 0 or nano >= 10**9:
        return f"${nano / 10**9:,.2f}"
    return "$0." + f"{nano:09d}".rstrip("0").ljust(2, "0")


def shown(counts: dict, api: dict) -> dict:
    """A table row as the view must show it: the counts we expect (from what the clients saw
    and what we reported), the cost the API priced."""
    row = {key: f"{counts[key]:,}" for key in COUNT_KEYS}
    cost = usd(api)
    if api["unknown_price"]:
        cost = f"{cost} + unknown price" if api["cost_nano_usd"] > 0 else "unknown price"
    row["cost_usd"] = cost
    return row


def summed(*rows: dict) -> dict:
    return {key: sum(r[key] for r in rows) for key in COUNT_KEYS}


def drive_usage(stack, token: str, token_hash: str) -> dict[str, dict]:
    """Calls through Envoy (metered by the filter) and one report like the filter's; returns
    the counts per model as the clients saw them and as reported."""
    seen = {m: dict.fromkeys(COUNT_KEYS, 0) for m in ("gpt-4o", HTML_MODEL, "")}
    for model, status in (("gpt-4o", 200), ("gpt-4o", 200), (HTML_MODEL, 200), ("", 500)):
        body = {"messages": [{"role": "user", "content": "hi"}]}
        if model:
            body["model"] = model
        r = requests.post(f"{stack.url}/v1/chat/completions", timeout=30, json=body,
                          headers={"authorization": f"Bearer {token}",
                                   "x-mock-status": str(status)})
        assert r.status_code == status, r.text
        if status != 200:
            # An upstream error: its body is not read, so no usage; its request named no
            # model, so none is shown.
            seen[""]["requests"] += 1
            seen[""]["incomplete"] += 1
            continue
        counts = seen[model]
        counts["requests"] += 1
        u = r.json()["usage"]
        counts["input_tokens"] += u["prompt_tokens"]
        counts["cached_input_tokens"] += u["prompt_tokens_details"]["cached_tokens"]
        counts["output_tokens"] += u["completion_tokens"]
        counts["reasoning_tokens"] += u["completion_tokens_details"]["reasoning_tokens"]
    usage = {"input": REPORTED["input_tokens"], "cached_input": REPORTED["cached_input_tokens"],
             "cache_write": REPORTED["cache_write_tokens"], "output": REPORTED["output_tokens"],
             "reasoning": REPORTED["reasoning_tokens"]}
    entry = {"hash": token_hash, "provider": "anthropic", "api": "messages",
             "model": "claude-sonnet-4-5", "status": 200, "streamed": True,
             "requests": REPORTED["requests"], "incomplete": REPORTED["incomplete"],
             "usage": usage}
    # An embedding of 5 tokens costs $0.0000001: below the six decimals of `cost_usd`.
    tiny = {"hash": token_hash, "provider": "openai", "api": "embeddings",
            "model": TINY_MODEL, "status": 200, "streamed": False, "requests": 1,
            "incomplete": 0, "usage": {"input": 5, "cached_input": 0, "cache_write": 0,
                                       "output": 0, "reasoning": 0}}
    report = requests.post(f"http://127.0.0.1:{stack.service_port}/v1/usage", timeout=10,
                           json={"entries": [], "token_usage": [entry, tiny]},
                           headers={"x-ptk-check-secret": stack.secret})
    assert report.status_code == 204, report.text
    seen["claude-sonnet-4-5"] = dict(REPORTED)
    seen[TINY_MODEL] = {**dict.fromkeys(COUNT_KEYS, 0), "requests": 1, "input_tokens": 5}
    return seen


def test_usage_view_in_chromium(stack):
    """The usage panels show what the clients used (and what was reported), per model and per
    day for one token and per token and model for the fleet, model names as text, and the
    CSV export downloads with the session."""
    created = json.loads(stack.cli("tokens", "create", "--label", "usage-view", "--providers",
                                   "openai,anthropic", "--json").stdout)
    token_hash = created["hash"]
    seen = drive_usage(stack, created["token"], token_hash)
    admin = AdminClient(stack.url, stack.admin_secret)
    deadline = time.monotonic() + 10
    while True:  # the filter's workers report once a second
        api = admin.http.get(f"{stack.url}/admin/api/tokens/{token_hash}/usage", timeout=10).json()
        if sum(m["requests"] for m in api["models"]) >= 7 or time.monotonic() > deadline:
            break
        time.sleep(0.3)
    by_model = {m["model"]: m for m in api["models"]}
    assert set(by_model) == set(seen), api
    fleet = admin.http.get(f"{stack.url}/admin/api/usage", timeout=10).json()
    fleet_token = next(t for t in fleet["tokens"] if t["token"] == token_hash)
    fleet_models = {m["model"]: m for m in fleet["models"]}
    total = summed(*seen.values())
    now = datetime.now(timezone.utc)
    today = now.strftime("%Y-%m-%d")
    # Budgets, set after the traffic (the ledger counts the day's earlier spend): the token's
    # own, and its group's; the panel shows them with what is spent and left.
    stack.cli("groups", "create", "view-team", "--cost-budget", "5/day")
    stack.cli("tokens", "update", token_hash, "--token-budget", "5000000/day", "--group",
              "view-team")
    spent = total["input_tokens"] + total["output_tokens"]
    tomorrow = (now + timedelta(days=1)).strftime("%Y-%m-%d")
    assert [d["day"] for d in api["per_day"]] == [today], api
    expect = {
        "hash": token_hash,
        "label": "usage-view",
        "models": {m or NO_MODEL: shown(c, by_model[m]) for m, c in seen.items()},
        "fleet_models": {m or NO_MODEL: shown(c, fleet_models[m]) for m, c in seen.items()},
        "day": {"day": today, **shown(total, api["per_day"][0])},
        "fleet_token": {"label": "usage-view", "token": f"{token_hash[:12]}…",
                        **shown(total, fleet_token)},
        "html_model": HTML_MODEL,
        "budgets": [["token · tokens per day", "5,000,000", f"{spent:,}", "0",
                     f"{5_000_000 - spent:,}", f"{tomorrow} 00:00"]],
        "group_budget": "group view-team · cost per day",
        # One CSV row per day, provider, model and API: one per model here.
        "csv_rows": len(seen),
        "csv_line": (f"{today},{token_hash},usage-view,anthropic,claude-sonnet-4-5,messages,2,0,1234567,"
                     f"234567,3456,89012,12345,{by_model['claude-sonnet-4-5']['cost_usd']},0"),
    }
    USAGE_SCREENSHOT.unlink(missing_ok=True)
    env = dict(os.environ, PTK_PROXY_URL=stack.url, PTK_ADMIN_SECRET=stack.admin_secret,
               PTK_SCREENSHOT=str(USAGE_SCREENSHOT), PTK_USAGE_EXPECT=json.dumps(expect))
    run = subprocess.run(["node", str(USAGE_SCRIPT)], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    print(run.stdout)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    assert USAGE_SCREENSHOT.exists() and USAGE_SCREENSHOT.stat().st_size > 10_000


# --- key pools: the token's models and pool, the provider keys' states ------------------------

POOLS_SCRIPT = ROOT / "tests/browser/dashboard_pools.mjs"
POOLS_SCREENSHOT = ROOT / "tests/artifacts/dashboard-pools.png"
POOL_KEYS = {"main": "sk-BROWSER-main-1a2b", "...77cc": "sk-BROWSER-spare-0e77cc",
             "hot": "sk-BROWSER-hot-3c4d", "t1": "sk-BROWSER-team-5e6f"}


def test_key_pool_fields_and_key_states_in_chromium(make_stack, tmp_path):
    """A token's models and pool as text (an HTML-looking model never rendered) and each
    key's state after real traffic: one refused (401), one cooling (429), one usable."""
    k = POOL_KEYS
    keys_file = tmp_path / "keys.env"
    keys_file.write_text(f"OPENAI_API_KEYS=[main]{k['main']},{k['...77cc']},[hot]{k['hot']}\n"
                         f"OPENAI_API_KEYS_POOL_TEAM_A=[t1]{k['t1']}\n")
    stack = make_stack(keys={}, service_extra_env={"PTK_KEYS_FILE": str(keys_file)})
    requests.post(f"{stack.mock_url}/__mock/keys", timeout=5, json={
        k["...77cc"]: {"error": "invalid_key"},
        k["hot"]: {"status": 429, "headers": {"retry-after": "600"}},
    }).raise_for_status()
    token = stack.mint("openai")["token"]
    for _ in range(6):  # round robin reaches each key; the two bad ones leave rotation
        requests.post(f"{stack.url}/v1/chat/completions", timeout=10,
                      json={"model": "m", "messages": []},
                      headers={"authorization": f"Bearer {token}", "connection": "close"})
    admin = AdminClient(stack.service_admin_url, stack.admin_secret)
    want = {"main": "usable", "...77cc": "refused", "hot": "cooling", "t1": "usable"}
    deadline = time.monotonic() + 5
    while True:  # the filter's workers report once a second
        listing = admin.http.get(f"{stack.service_admin_url}/admin/api/keys", timeout=5).json()
        got = {key["key"]: key["state"] for p in listing["providers"] for key in p["keys"]}
        if got == want or time.monotonic() > deadline:
            break
        time.sleep(0.2)
    assert got == want
    POOLS_SCREENSHOT.unlink(missing_ok=True)
    env = dict(os.environ, PTK_PROXY_URL=stack.url, PTK_ADMIN_SECRET=stack.admin_secret,
               PTK_SCREENSHOT=str(POOLS_SCREENSHOT),
               PTK_POOLS_EXPECT=json.dumps({"keys": want, "secrets": list(k.values())}))
    run = subprocess.run(["node", str(POOLS_SCRIPT)], env=env, cwd=ROOT, capture_output=True,
                         text=True, timeout=120)
    print(run.stdout)
    assert run.returncode == 0, f"{run.stdout}\n{run.stderr}"
    assert POOLS_SCREENSHOT.exists() and POOLS_SCREENSHOT.stat().st_size > 10_000
