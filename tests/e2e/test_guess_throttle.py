"""Guessing tokens is throttled per client address: after `max_refusals` refused tokens in its
window an address gets 429 in the provider's shape, without a check, for every token it has
not already used successfully; other addresses and known-good tokens are unaffected."""

from __future__ import annotations

import http.client
import json
import time

import requests

from .flood import flood, stat

MAX = 5
STACK_SETTINGS = {"plugin_config": {"guess_throttle": {"max_refusals": MAX, "window_ms": 60_000}}}


def refusals(stack) -> int:
    """Tokens the token-service refused as invalid (the filter's counter, flushed each tick)."""
    time.sleep(1.2)
    return stat(stack.admin_port, "wasmcustom.ptk.refused.invalid")


def call(stack, token: str, source: str = "127.0.0.1", path: str = "/v1/models",
         headers: dict | None = None) -> tuple[int, dict, bytes]:
    """One request from a chosen loopback source address (127.0.0.0/8 is all local)."""
    conn = http.client.HTTPConnection("127.0.0.1", stack.proxy_port, timeout=10,
                                      source_address=(source, 0))
    try:
        conn.request("GET", path, headers={"authorization": f"Bearer {token}", **(headers or {})})
        r = conn.getresponse()
        return r.status, dict(r.getheaders()), r.read()
    finally:
        conn.close()


def test_guessing_is_throttled_per_address_and_known_good_tokens_keep_working(stack):
    known = stack.mint("openai")["token"]
    fresh = stack.mint("openai")["token"]
    addr = "127.0.0.11"
    assert call(stack, known, addr)[0] == 200
    checks_before = refusals(stack)
    # Each Envoy worker counts on its own; new connections spread over both workers.
    codes = [call(stack, f"ptk_guess_{n:04d}_abcdefghijklmnop", addr)[0] for n in range(60)]
    checks = refusals(stack) - checks_before
    assert codes.count(401) <= 2 * MAX, codes
    assert codes.count(429) >= 60 - 2 * MAX, codes
    assert checks <= 2 * MAX, f"{checks} guesses reached the token-service"

    status, headers, body = call(stack, "ptk_guess_last_abcdefghijklmnop", addr)
    assert status == 429
    assert 1 <= int(headers["retry-after"]) <= 60
    err = json.loads(body)["error"]
    assert err["code"] == "too_many_invalid_tokens", err
    # Anthropic's shape for an Anthropic-style request.
    status, _, body = call(stack, "ptk_guess_anthropic_abcdefghij", addr, "/v1/messages",
                           {"anthropic-version": "2023-06-01"})
    assert status == 429 and json.loads(body)["error"]["type"] == "rate_limit_error"

    # The token this address already used keeps working, on any connection and worker.
    assert [call(stack, known, addr)[0] for _ in range(10)] == [200] * 10
    # A valid token never used from this address is indistinguishable from a guess.
    assert call(stack, fresh, addr)[0] == 429
    # Other addresses are not affected: their guesses are checked, their tokens work.
    assert call(stack, "ptk_other_address_abcdefghijkl", "127.0.0.12")[0] == 401
    assert call(stack, fresh, "127.0.0.12")[0] == 200
    assert stack.upstream_requests(), "valid requests reached the provider"
    assert all(f"ptk_guess" not in json.dumps(r) for r in stack.upstream_requests())


def test_a_wrk_flood_costs_a_handful_of_checks(stack):
    known = stack.mint("openai")["token"]
    assert call(stack, known)[0] == 200
    checks_before = refusals(stack)
    sent = flood(stack.url, 3)
    checks = refusals(stack) - checks_before
    assert sent > 1000
    assert checks <= 2 * MAX, f"{checks} checks for {sent} guesses"
    assert stat(stack.admin_port, "wasmcustom.ptk.refused.throttled") >= sent - 2 * MAX
    assert call(stack, known)[0] == 200
