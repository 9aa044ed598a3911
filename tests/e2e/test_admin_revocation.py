"""Revocation latency through the real Envoy: a token in use is disabled, deleted or given an
expiry in the past through the admin API (itself reached through Envoy's /admin route), and we
measure how long until the next request through Envoy is refused.

With the verdict cache on (the default 1 s TTL) a cached allow may outlive the change by up to
the TTL; with the cache off (TTL 0) the very next request is refused. Measured values go to
tests/artifacts/revocation-latency.json (and are quoted in the README)."""

from __future__ import annotations

import json
import time
from datetime import datetime, timedelta, timezone
from pathlib import Path

import pytest
import requests

from .admin_client import AdminClient

ARTIFACTS = Path(__file__).resolve().parents[1] / "artifacts"
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hi"}]}
POLL_FOR_S = 3.0
LIMIT_S = 1.5
MEASURED: dict[str, float] = {}


def past() -> str:
    return (datetime.now(timezone.utc) - timedelta(minutes=1)).strftime("%Y-%m-%dT%H:%M:%SZ")


def revoke(admin: AdminClient, kind: str, token_hash: str) -> None:
    if kind == "disable":
        admin.patch(token_hash, status="disabled")
    elif kind == "delete":
        admin.delete(token_hash)
    else:
        admin.patch(token_hash, expires_at=past())


def measure(stack, admin: AdminClient, kind: str) -> tuple[float, int, int]:
    """Uses a fresh token until it is surely cached, revokes it, then polls. Returns the
    latency (s from the admin API's answer to the first refusal), the number of requests still
    allowed after it, and the refusal's status."""
    created = admin.create(label=f"revoke-{kind}", providers=["openai"],
                           rate_limit={"count": 100000, "window_s": 60})
    auth = {"authorization": f"Bearer {created['token']}"}
    http = requests.Session()
    url = f"{stack.url}/v1/chat/completions"
    for _ in range(3):  # warm the verdict cache
        r = http.post(url, json=CHAT, headers=auth, timeout=10)
        assert r.status_code == 200, r.text
    revoke(admin, kind, created["hash"])
    revoked_at = time.monotonic()
    allowed_after = 0
    while time.monotonic() - revoked_at < POLL_FOR_S:
        r = http.post(url, json=CHAT, headers=auth, timeout=10)
        if r.status_code != 200:
            return time.monotonic() - revoked_at, allowed_after, r.status_code
        allowed_after += 1
        time.sleep(0.005)
    pytest.fail(f"{kind}: still allowed {POLL_FOR_S}s after the admin API answered")


def record(name: str, seconds: float) -> None:
    MEASURED[name] = round(seconds * 1000, 1)
    ARTIFACTS.mkdir(exist_ok=True)
    (ARTIFACTS / "revocation-latency.json").write_text(json.dumps(MEASURED, indent=2) + "\n")


@pytest.mark.parametrize("kind", ["disable", "delete", "expire"])
def test_revocation_through_the_admin_api_lands_within_the_cache_ttl(stack, kind):
    admin = AdminClient(stack.url, stack.admin_secret)  # through Envoy's /admin route
    worst = 0.0
    for _ in range(3):
        latency, allowed_after, status = measure(stack, admin, kind)
        assert status == 401, status
        worst = max(worst, latency)
    record(f"cached_{kind}_worst_ms", worst)
    print(f"revocation ({kind}) with the 1 s verdict cache: worst {worst * 1000:.0f} ms")
    assert worst <= LIMIT_S, f"{kind}: refused only after {worst:.3f}s"


def test_without_the_cache_the_very_next_request_is_refused(make_stack):
    stack = make_stack(cache_ttl_ms=0)
    admin = AdminClient(stack.url, stack.admin_secret)
    for kind in ("disable", "delete", "expire"):
        latency, allowed_after, status = measure(stack, admin, kind)
        assert allowed_after == 0, f"{kind}: {allowed_after} requests allowed after revocation"
        assert status == 401
        record(f"uncached_{kind}_ms", latency)
    # The message tells an expired token apart from a revoked one.
    expired = admin.create(label="expired", providers=["openai"], expires_at=past())
    r = requests.post(f"{stack.url}/v1/chat/completions", json=CHAT, timeout=10,
                      headers={"authorization": f"Bearer {expired['token']}"})
    assert (r.status_code, r.json()["error"]["message"]) == (401, "token expired")
