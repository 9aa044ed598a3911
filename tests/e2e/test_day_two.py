"""Day-two operations through the real Envoy, the built .wasm and the real token-service:
key rotation without a restart (SIGHUP and the admin API), the proxy's token-free health path,
and the token-service's Prometheus metrics after real traffic."""

from __future__ import annotations

import os
import re
import signal
import threading
import time

import pytest
import requests

from .admin_client import AdminClient
from .harness import free_port

TTL_S = 1.0  # the Stack's default verdict cache TTL
CHAT = {"model": "m", "messages": [{"role": "user", "content": "hi"}]}
OLD = "sk-OLD-rotation-1f2e3d"
NEW = "sk-NEW-rotation-9a8b7c"
NEWER = "sk-NEWER-rotation-5d4c3b"


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "keys.env"
    path.write_text(f"OPENAI_API_KEY={OLD}\n")
    return path


@pytest.fixture(scope="module")
def ops(keys_file):
    """A stack whose only real key comes from a keys file, with the metrics listener on."""
    from .harness import Stack

    metrics_port = free_port()
    s = Stack(keys={}, service_extra_env={
        "PTK_KEYS_FILE": str(keys_file),
        "PTK_METRICS_LISTEN": f"127.0.0.1:{metrics_port}",
    })
    s.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
    s.start()
    try:
        yield s
    finally:
        s.stop()
        s.cleanup()


def sent_key(record: dict) -> str | None:
    for name, value in record["headers"]:
        if name == "authorization":
            return value.removeprefix("Bearer ")
    return None


def chat(stack, token: str, **headers) -> requests.Response:
    return requests.post(f"{stack.url}/v1/chat/completions", json=CHAT, timeout=30,
                         headers={"authorization": f"Bearer {token}", **headers})


def metrics(stack) -> str:
    r = requests.get(stack.metrics_url, timeout=5)
    assert r.status_code == 200
    return r.text


def series(text: str, name: str) -> float:
    for line in text.splitlines():
        if line.startswith(name + " "):
            return float(line.split(" ", 1)[1])
    return 0.0


def wait_for_key(stack, token: str, key: str, since: float) -> float:
    """Sends requests until the upstream sees `key`; returns seconds since `since`."""
    deadline = since + 5
    while time.monotonic() < deadline:
        stack.reset_upstream()
        assert chat(stack, token).status_code == 200
        if sent_key(stack.upstream_requests()[-1]) == key:
            return time.monotonic() - since
        time.sleep(0.05)
    raise AssertionError(f"{key} never reached the upstream")


def test_sighup_rotates_the_key_within_the_cache_ttl_and_in_flight_requests_complete(
        ops, keys_file):
    token = ops.mint("openai")["token"]
    assert chat(ops, token).status_code == 200
    assert sent_key(ops.upstream_requests()[-1]) == OLD

    # A request already forwarded with the old key, held open by the mock upstream.
    held: dict = {}
    worker = threading.Thread(
        target=lambda: held.update(r=chat(ops, token, **{"x-mock-hold": "1"})))
    worker.start()
    deadline = time.monotonic() + 5
    while len(ops.upstream_requests()) < 2 and time.monotonic() < deadline:
        time.sleep(0.02)
    assert sent_key(ops.upstream_requests()[-1]) == OLD

    keys_file.write_text(f"OPENAI_API_KEY={NEW}\n")
    os.kill(ops.procs["token-service"].pid, signal.SIGHUP)
    reloaded_at = time.monotonic()
    took = wait_for_key(ops, token, NEW, reloaded_at)
    print(f"rotated key reached the upstream {took:.2f} s after SIGHUP")
    # The filter may serve a cached verdict (and its key) for the cache TTL, never longer.
    assert took <= TTL_S + 0.5, took
    for _ in range(5):
        ops.reset_upstream()
        assert chat(ops, token).status_code == 200
        assert sent_key(ops.upstream_requests()[-1]) == NEW

    ops.release_upstream()
    worker.join(timeout=10)
    assert held["r"].status_code == 200, held["r"].text
    assert ops.procs["token-service"].poll() is None, "SIGHUP must not end the service"
    logs = ops.logs()
    assert "provider keys reloaded" in logs
    assert OLD not in logs and NEW not in logs


def test_a_broken_keys_file_keeps_the_old_key_and_the_admin_api_reloads(ops, keys_file):
    token = ops.mint("openai")["token"]
    current = sent_key_now(ops, token)
    keys_file.write_text("OPENAI_API_KEY\n")
    os.kill(ops.procs["token-service"].pid, signal.SIGHUP)
    time.sleep(TTL_S + 0.3)
    assert sent_key_now(ops, token) == current
    assert "keys file line 1: expected NAME=value" in ops.logs()

    keys_file.write_text(f"OPENAI_API_KEY={NEWER}\n")
    admin = AdminClient(ops.url, ops.admin_secret)  # through Envoy's /admin routes
    r = admin._call("POST", "/admin/api/keys/reload")
    assert r.status_code == 200, r.text
    assert r.json() == {"providers": ["openai"], "keys_file": True}
    assert NEWER not in r.text
    assert wait_for_key(ops, token, NEWER, time.monotonic()) <= TTL_S + 0.5
    text = metrics(ops)
    assert series(text, 'ptk_admin_actions_total{action="keys_reload",result="error"}') == 1
    assert series(text, 'ptk_admin_actions_total{action="keys_reload",result="ok"}') >= 1


def sent_key_now(stack, token: str) -> str | None:
    stack.reset_upstream()
    assert chat(stack, token).status_code == 200
    return sent_key(stack.upstream_requests()[-1])


def test_the_proxy_health_path_needs_no_token_and_reaches_no_provider(ops):
    ops.reset_upstream()
    r = requests.get(f"{ops.url}/ptk/healthz", timeout=5)
    assert r.status_code == 200, r.text
    assert r.json() == {"status": "ready", "store": {"status": "ok"},
                        "limiter": {"status": "ok", "backend": "memory"}}
    # A token, if a client sends one anyway, is neither needed nor forwarded anywhere.
    r = requests.get(f"{ops.url}/ptk/healthz", timeout=5,
                     headers={"authorization": "Bearer ptk_not_a_real_token_at_all"})
    assert r.status_code == 200
    assert ops.upstream_requests() == []
    # Other paths still need a token.
    assert requests.get(f"{ops.url}/ptk/healthz/x", timeout=5).status_code == 401


def test_metrics_move_with_real_traffic(ops):
    before = metrics(ops)
    token = ops.mint("openai")["token"]
    # A fresh token's first request always asks the token-service (nothing cached yet).
    assert chat(ops, token).status_code == 200
    assert chat(ops, "ptk_" + "x" * 32).status_code == 401
    # The same token on a provider outside its scope.
    assert requests.post(f"{ops.url}/v1/messages", timeout=10, json=CHAT,
                         headers={"x-api-key": token,
                                  "anthropic-version": "2023-06-01"}).status_code == 403
    after = metrics(ops)
    for name, moved in [
        ('ptk_checks_total{outcome="allow"}', 1),
        ('ptk_checks_total{outcome="invalid"}', 1),
        ('ptk_checks_total{outcome="provider_not_allowed"}', 1),
        ("ptk_check_duration_seconds_count", 3),
    ]:
        assert series(after, name) - series(before, name) >= moved, (name, after)
    buckets = re.findall(r'^ptk_check_duration_seconds_bucket\{le="([^"]+)"\} ', after, re.M)
    assert len(buckets) >= 10 and buckets[-1] == "+Inf", buckets
    for secret in (token, OLD, NEW, NEWER, ops.secret):
        assert secret not in after
    assert after.rstrip().endswith("# EOF")
    # The filter's own counters, as Prometheus scrapes them from Envoy (README: Metrics).
    # The filter adds its counts to Envoy's once per tick (1 s): poll.
    deadline = time.monotonic() + 3
    while True:
        envoy = requests.get(f"http://127.0.0.1:{ops.admin_port}/stats/prometheus",
                             timeout=5).text
        if re.search(r"^ptk_refused_provider_not_allowed\{\} [1-9]", envoy, re.M) or \
                time.monotonic() > deadline:
            break
        time.sleep(0.1)
    assert re.search(r"^ptk_allowed\{\} [1-9]", envoy, re.M), envoy[:2000]
    assert re.search(r"^ptk_refused_provider_not_allowed\{\} [1-9]", envoy, re.M), envoy[:2000]
