"""The verdict cache and rate-limit leases through the real Envoy (two workers): the limit
holds exactly under concurrency, revocation lands within the TTL, a verdict is never used for
another token or provider, and cached traffic really skips the token-service."""

from __future__ import annotations

import threading
import time
from concurrent.futures import ThreadPoolExecutor

import pytest
import requests

TTL_S = 1.0  # the Stack's default cache TTL
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}


def stat(stack, name: str) -> int:
    text = requests.get(f"http://127.0.0.1:{stack.admin_port}/stats?filter={name}", timeout=5).text
    for line in text.splitlines():
        key, _, value = line.partition(": ")
        if key == name:
            return int(value)
    return 0


def wait_stat(stack, name: str, at_least: int, timeout: float = 3.0) -> int:
    """The filter adds its counters to Envoy's once per tick (1 s): poll for them."""
    deadline = time.monotonic() + timeout
    while (value := stat(stack, name)) < at_least and time.monotonic() < deadline:
        time.sleep(0.1)
    return value


@pytest.mark.parametrize("limit", [100, 2000])
def test_rate_limit_holds_exactly_under_concurrency(stack, limit):
    """limit 100: leases of at most 24, spent unit by unit from shared data; limit 2000: leases
    of up to 499, taken by each worker in batches into its own pool."""
    token = stack.mint("openai", "--rate-limit", f"{limit}/60")["token"]
    local = threading.local()

    def one(_):
        # One connection per thread: requests spread over connections and both workers.
        if not hasattr(local, "session"):
            local.session = requests.Session()
        return local.session.post(f"{stack.url}/v1/chat/completions", json=CHAT, timeout=30,
                                  headers={"authorization": f"Bearer {token}"}).status_code

    total = 3 * limit
    stack.reset_upstream()
    with ThreadPoolExecutor(max_workers=24) as pool:
        codes = list(pool.map(one, range(total)))
    allowed = codes.count(200)
    assert codes.count(429) == total - allowed, set(codes)
    # Leased units are counted when granted, so nothing can overshoot; none may be lost
    # either (grants merge with compare-and-swap).
    assert allowed == limit, f"allowed {allowed} of {total}"
    assert len(stack.upstream_requests()) == allowed
    assert wait_stat(stack, "wasmcustom.ptk.cache_hits", 1) > 0


def test_revocation_lands_within_the_ttl_while_in_use(stack):
    created = stack.mint("openai", "--rate-limit", "1000000/60")
    auth = {"authorization": f"Bearer {created['token']}"}
    results: list[tuple[float, int]] = []
    stop = threading.Event()

    def hammer():
        with requests.Session() as s:
            while not stop.is_set():
                code = s.get(f"{stack.url}/v1/models", headers=auth, timeout=10).status_code
                results.append((time.monotonic(), code))

    threads = [threading.Thread(target=hammer) for _ in range(4)]
    for t in threads:
        t.start()
    time.sleep(0.5)
    stack.cli("tokens", "disable", created["hash"])
    disabled_at = time.monotonic()
    time.sleep(TTL_S + 1.0)
    stop.set()
    for t in threads:
        t.join()
    before = [c for t, c in results if t < disabled_at]
    allowed_after = [t - disabled_at for t, c in results if t >= disabled_at and c == 200]
    assert before and set(before) == {200}
    worst = max(allowed_after, default=0.0)
    # The cached allow may outlive the disable by at most the TTL (plus scheduling slack).
    assert worst <= TTL_S + 0.3, f"allowed {worst:.3f}s after the disable"
    tail = [c for t, c in results if t >= disabled_at + TTL_S + 0.3]
    assert tail and set(tail) == {401}, set(tail)
    print(f"revocation latency under caching: {worst * 1000:.0f} ms (TTL {TTL_S * 1000:.0f} ms)")


def test_a_cached_verdict_is_never_used_for_another_token_or_provider(stack):
    openai_only = stack.mint("openai")["token"]
    gemini_only = stack.mint("gemini")["token"]
    for _ in range(5):  # warm: openai_only's openai verdict is cached with a lease
        assert requests.get(f"{stack.url}/v1/models",
                            headers={"authorization": f"Bearer {openai_only}"}).status_code == 200
    # The same token on another provider: its own check, refused.
    r = requests.get(f"{stack.url}/v1beta/models", headers={"x-goog-api-key": openai_only})
    assert r.status_code == 403
    r = requests.post(f"{stack.url}/v1/messages", json={},
                      headers={"x-api-key": openai_only, "anthropic-version": "2023-06-01"})
    assert r.status_code == 403
    # Another token on the cached provider: its own check, refused.
    r = requests.get(f"{stack.url}/v1/models", headers={"authorization": f"Bearer {gemini_only}"})
    assert r.status_code == 403
    r = requests.get(f"{stack.url}/v1/models", headers={"authorization": "Bearer ptk_unknown_x_0000000000"})
    assert r.status_code == 401


def test_cached_traffic_skips_the_token_service_and_reports_usage(stack):
    token = stack.mint("openai", "--rate-limit", "1000000/60")["token"]
    auth = {"authorization": f"Bearer {token}"}
    checks_before = stat(stack, "cluster.token_service.upstream_rq_200")
    hits_before = stat(stack, "wasmcustom.ptk.cache_hits")
    with requests.Session() as s:
        for _ in range(60):
            assert s.get(f"{stack.url}/v1/models", headers=auth).status_code == 200
    checks = stat(stack, "cluster.token_service.upstream_rq_200") - checks_before
    hits = wait_stat(stack, "wasmcustom.ptk.cache_hits", hits_before + 60 - checks) - hits_before
    assert hits + checks >= 60
    assert checks <= 6, f"{checks} checks for 60 requests"
    deadline = time.monotonic() + 3
    while stat(stack, "cluster.token_service.upstream_rq_204") == 0:
        assert time.monotonic() < deadline, "no usage report reached the token-service"
        time.sleep(0.1)


def test_with_the_filter_cache_off_every_request_is_checked(make_stack):
    # The token-service still grants a 1 s TTL and leases; the filter's switch alone decides.
    s = make_stack(filter_cache=False)
    token = s.mint("openai", "--rate-limit", "1000000/60")["token"]
    auth = {"authorization": f"Bearer {token}"}
    checks_before = stat(s, "cluster.token_service.upstream_rq_200")
    with requests.Session() as session:
        for _ in range(20):
            assert session.get(f"{s.url}/v1/models", headers=auth).status_code == 200
    assert stat(s, "cluster.token_service.upstream_rq_200") - checks_before == 20
    assert wait_stat(s, "wasmcustom.ptk.allowed", 20) == 20
    assert stat(s, "wasmcustom.ptk.cache_hits") == 0


def test_a_warm_cache_outlives_the_token_service_only_for_the_ttl(make_stack):
    s = make_stack()
    token = s.mint("openai")["token"]
    auth = {"authorization": f"Bearer {token}"}
    assert requests.get(f"{s.url}/v1/models", headers=auth).status_code == 200
    assert requests.get(f"{s.url}/v1/models", headers=auth).status_code == 200
    s.kill_service()
    time.sleep(TTL_S + 0.2)
    s.reset_upstream()
    for _ in range(3):
        r = requests.get(f"{s.url}/v1/models", headers=auth)
        assert r.status_code == 503
    assert s.upstream_requests() == []


def test_a_flood_of_random_and_revoked_tokens_does_not_hurt_valid_ones(stack):
    valid = stack.mint("openai", "--rate-limit", "1000000/60")["token"]
    revoked = stack.mint("openai")
    stack.cli("tokens", "disable", revoked["hash"])
    # The valid token is in use from this address before the flood starts, so the guess
    # throttle (which soon answers the flood's random tokens with 429) knows it as good.
    assert requests.get(f"{stack.url}/v1/models",
                        headers={"authorization": f"Bearer {valid}"}).status_code == 200
    stop = threading.Event()
    flood_codes: list[int] = []

    def flood(n: int):
        with requests.Session() as s:
            i = 0
            while not stop.is_set():
                i += 1
                token = revoked["token"] if i % 2 else f"ptk_random_{n}_{i:024d}"
                flood_codes.append(s.get(f"{stack.url}/v1/models", timeout=10,
                                         headers={"authorization": f"Bearer {token}"}).status_code)

    checks_before = stat(stack, "cluster.token_service.upstream_rq_200")
    flooders = [threading.Thread(target=flood, args=(n,)) for n in range(8)]
    for t in flooders:
        t.start()
    try:
        valid_codes = []
        with requests.Session() as s:
            for _ in range(200):
                valid_codes.append(s.get(f"{stack.url}/v1/models", timeout=10,
                                         headers={"authorization": f"Bearer {valid}"}).status_code)
    finally:
        stop.set()
        for t in flooders:
            t.join()
    assert set(valid_codes) == {200}
    # Random tokens: 401 until the address is throttled, then 429 without a check. The
    # revoked token is remembered per worker and keeps its 401.
    assert len(flood_codes) > 200 and set(flood_codes) <= {401, 429}, set(flood_codes)
    health = requests.get(f"http://127.0.0.1:{stack.service_port}/healthz", timeout=5)
    assert health.status_code == 200
    # Half the flood is one revoked token, remembered per worker for a second: it costs a
    # handful of checks, so checks stay well under one per flood request.
    checks = stat(stack, "cluster.token_service.upstream_rq_200") - checks_before
    assert checks < 0.75 * len(flood_codes), (checks, len(flood_codes))


def test_the_limit_holds_with_counters_in_redis(make_stack, tmp_path):
    """PTK_REDIS_URL: the same exact limit, with the windows in a real redis-server (what lets
    several token-service replicas share one limit; see token-service/tests/redis_limiter.rs)."""
    import socket

    from .redis_server import redis_server

    with redis_server(tmp_path) as url:
        stack = make_stack(service_extra_env={"PTK_REDIS_URL": url})
        # Redis windows were aligned to the epoch when this test was written (a burst could
        # straddle a boundary: seen once, 151 of 300 allowed); they now start at the first hit
        # (token-service/tests/limiter_contract.rs), so this wait is no longer needed.
        left = 60 - time.time() % 60
        if left < 20:
            time.sleep(left + 0.5)
        test_rate_limit_holds_exactly_under_concurrency(stack, 100)
        port = int(url.rsplit(":", 1)[1].split("/")[0])
        with socket.create_connection(("127.0.0.1", port), timeout=5) as conn:
            conn.sendall(b"DBSIZE\r\n")
            keys = int(conn.recv(64).decode().strip().lstrip(":"))
        assert keys >= 1, "the window counter was not kept in Redis"
