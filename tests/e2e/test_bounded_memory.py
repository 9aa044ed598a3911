"""Whatever the filter keeps per client input is bounded: a flood of distinct random tokens
(each one checked with the token-service: the guess throttle is off here) leaves Envoy's heap
where it was, while a valid token keeps working throughout.

Before the fix, the filter wrote a shared-data placeholder for every unseen token before its
check; proxy-wasm shared data is never freed, so 50,000 tokens cost about 9 MB for good."""

from __future__ import annotations

import threading
import time

import pytest
import requests

from .flood import allocated, flood, stat

STACK_SETTINGS = {"plugin_config": {"guess_throttle": {"enabled": False}}}

#: Distinct tokens the flood must send.
TOKENS = 50_000
#: Envoy heap growth allowed for them. Per worker the filter keeps at most 4,096 remembered
#: refusals (about 100 bytes each, cleared when full) and its callout buffers; 2 workers.
BOUND = 2 * 1024 * 1024


def warm(stack, token: str, n: int = 50) -> None:
    with requests.Session() as s:
        for _ in range(n):
            r = s.get(f"{stack.url}/v1/models", headers={"authorization": f"Bearer {token}"})
            assert r.status_code == 200


def test_a_flood_of_distinct_tokens_leaves_memory_bounded(stack):
    valid = stack.mint("openai", "--rate-limit", "1000000/60")["token"]
    # Warm-up: the filter's caches, Envoy's buffers and the connection pools reach their
    # steady size first, with a flood as big as the measured one's first seconds.
    warm(stack, valid)
    flood(stack.url, 2)
    time.sleep(1.5)
    before = allocated(stack.admin_port)
    checks_before = stat(stack.admin_port, "cluster.token_service.upstream_rq_total")

    stop = threading.Event()
    valid_codes: list[int] = []

    def use_valid():
        with requests.Session() as s:
            while not stop.is_set():
                valid_codes.append(s.get(f"{stack.url}/v1/models", timeout=10,
                                         headers={"authorization": f"Bearer {valid}"}).status_code)
                time.sleep(0.01)

    user = threading.Thread(target=use_valid)
    user.start()
    sent = 0
    try:
        deadline = time.monotonic() + 90
        while sent < TOKENS and time.monotonic() < deadline:
            sent += flood(stack.url, 5)
    finally:
        stop.set()
        user.join()
    checked = stat(stack.admin_port, "cluster.token_service.upstream_rq_total") - checks_before
    assert sent >= TOKENS, f"only {sent} requests in 90 s"
    # Every flood request was a distinct token the token-service had to refuse.
    assert checked >= TOKENS, (checked, sent)
    time.sleep(1.5)
    growth = allocated(stack.admin_port) - before
    assert growth < BOUND, f"{sent} distinct tokens grew Envoy's heap by {growth} bytes"
    assert valid_codes and set(valid_codes) == {200}, set(valid_codes)
    warm(stack, valid, 5)
