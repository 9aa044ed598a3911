"""Provider key pools through the real Envoy (two workers), the built .wasm and the real
token-service, with the mock upstream answering per key (`POST /__mock/keys`): round robin,
a 429's cooldown, every key cooling, a refused key leaving rotation (metrics, keys view), a
token bound to a named pool, a reload rotating keys without a restart, and no key value in any
log, metric or page."""

from __future__ import annotations

import re
import time
from collections import Counter

import pytest
import requests

from .admin_client import AdminClient
from .harness import Stack, free_port
from .provider_calls import call

K1, K2, K3 = "sk-POOL-one-1a2b11aa", "sk-POOL-two-3c4d22bb", "sk-POOL-three-5e6f99ii"
TEAM = ("sk-TEAM-one-7a8b33cc", "sk-TEAM-two-9c0d44dd")
A_MAIN, A_SPARE = "sk-ant-POOL-main-55ee", "sk-ant-POOL-spare-66ff"
G1, G2 = "AIza-POOL-g1-0123-77gg", "AIza-POOL-g2-4567-88hh"
ALL_KEYS = (K1, K2, K3, *TEAM, A_MAIN, A_SPARE, G1, G2)
NAMES = {K1: "k1", K2: "k2", K3: "k3", TEAM[0]: "team-a-1", TEAM[1]: "...44dd",
         A_MAIN: "a-main", A_SPARE: "...66ff", G1: "g1", G2: "g2"}


def keys_text(default_openai: str) -> str:
    return (f"OPENAI_API_KEYS={default_openai}\n"
            f"OPENAI_API_KEYS_POOL_TEAM_A=[team-a-1]{TEAM[0]},{TEAM[1]}\n"
            f"ANTHROPIC_API_KEYS=[a-main]{A_MAIN},{A_SPARE}\n"
            f"GEMINI_API_KEYS=[g1]{G1},[g2]{G2}\n")


@pytest.fixture(scope="module")
def keys_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("keys") / "keys.env"
    path.write_text(keys_text(f"[k1]{K1},[k2]{K2}"))
    return path


@pytest.fixture(scope="module")
def pools(keys_file):
    """A stack whose only keys are the pools of the keys file, with the metrics listener on."""
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


@pytest.fixture(autouse=True)
def _clean(pools):
    pools.reset_upstream()
    per_key(pools, {})
    yield
    per_key(pools, {})


def per_key(stack, table: dict) -> None:
    requests.post(f"{stack.mock_url}/__mock/keys", json=table, timeout=5).raise_for_status()


def sent_key(record: dict) -> str | None:
    for name, value in record["headers"]:
        if name == "authorization":
            return value.removeprefix("Bearer ")
        if name in ("x-api-key", "x-goog-api-key"):
            return value
    return None


def keys_seen(stack) -> list[str | None]:
    return [sent_key(r) for r in stack.upstream_requests()]


def chat(stack, token: str) -> requests.Response:
    # A fresh connection per request, so Envoy spreads them over its two workers.
    return call(stack.url, token, "openai", {"connection": "close"})


def key_states(stack) -> dict[tuple[str, str], dict]:
    """The keys view's JSON (one sign-in per stack: sign-ins are throttled)."""
    if not hasattr(stack, "admin"):
        stack.admin = AdminClient(stack.service_admin_url, stack.admin_secret)
    listing = stack.admin.http.get(f"{stack.service_admin_url}/admin/api/keys", timeout=5).json()
    return {(p["provider"], k["key"]): k for p in listing["providers"] for k in p["keys"]}


def test_two_keys_share_the_load_in_round_robin(pools):
    token = pools.mint("openai")["token"]
    for _ in range(40):
        assert chat(pools, token).status_code == 200
    counts = Counter(keys_seen(pools))
    print(f"requests per key: {dict((NAMES[k], n) for k, n in counts.items())}")
    assert set(counts) == {K1, K2}, counts
    # Each worker alternates; two workers' turns differ by at most one each.
    assert abs(counts[K1] - counts[K2]) <= 2, counts


def test_a_429_key_rests_until_retry_after_then_comes_back(pools):
    token = pools.mint("openai")["token"]
    per_key(pools, {K2: {"status": 429, "headers": {"retry-after": "3"}}})
    for _ in range(4):
        r = chat(pools, token)
        if r.status_code == 429:
            break
    assert r.status_code == 429, "the pool never reached the rate-limited key"
    cooled_at = time.monotonic()
    pools.reset_upstream()
    cooling = None
    while time.monotonic() - cooled_at < 2.5:
        assert chat(pools, token).status_code == 200
        state = key_states(pools)[("openai", "k2")]
        if state["state"] == "cooling":
            cooling = state
        time.sleep(0.1)
    seen = keys_seen(pools)
    assert seen and set(seen) == {K1}, "a cooling key was used"
    # The filter reported the cooldown; the keys view says until when (within a report).
    assert cooling is not None and cooling["until"], "the keys view never showed k2 cooling"
    per_key(pools, {})
    time.sleep(max(0.0, cooled_at + 3.2 - time.monotonic()))
    pools.reset_upstream()
    for _ in range(6):
        assert chat(pools, token).status_code == 200
    assert K2 in keys_seen(pools), "the key never came back after its cooldown"
    assert "openai pool key k2 rate-limited; cooling down for" in pools.logs()


def test_every_key_cooling_answers_a_local_429_with_retry_after(pools):
    token = pools.mint("gemini")["token"]
    per_key(pools, {G1: {"status": 429, "headers": {"retry-after": "3"}},
                    G2: {"status": 429, "headers": {"retry-after": "3"}}})
    forwarded = 0
    for _ in range(5):
        r = call(pools.url, token, "gemini", {"connection": "close"})
        assert r.status_code == 429, r.text
        now = len(pools.upstream_requests())
        if now == forwarded:
            break
        forwarded = now
    assert forwarded == 2, f"{forwarded} forwarded: every key should be tried once"
    assert 1 <= int(r.headers["retry-after"]) <= 3, r.headers
    assert "error" in r.json()
    assert not any(k in r.text for k in ALL_KEYS)


def test_a_refused_key_leaves_rotation_and_shows_by_name(pools):
    token = pools.mint("anthropic")["token"]
    per_key(pools, {A_SPARE: {"error": "invalid_key"}})
    for _ in range(4):
        r = call(pools.url, token, "anthropic", {"connection": "close"})
        if r.status_code == 401:
            break
    assert r.status_code == 401, "the pool never reached the refused key"
    assert A_SPARE not in r.text
    pools.reset_upstream()
    for _ in range(10):
        assert call(pools.url, token, "anthropic", {"connection": "close"}).status_code == 200
    assert set(keys_seen(pools)) == {A_MAIN}, "a refused key stayed in rotation"
    deadline = time.monotonic() + 5
    pattern = re.compile(r'ptk_provider_key_state\{(?=[^}]*provider="anthropic")'
                         r'(?=[^}]*key="\.\.\.66ff")[^}]*\} 1$', re.M)
    while not pattern.search(requests.get(pools.metrics_url, timeout=5).text):
        assert time.monotonic() < deadline, "ptk_provider_key_state never showed ...66ff refused"
        time.sleep(0.2)
    state = key_states(pools)[("anthropic", "...66ff")]
    assert state["state"] == "refused" and state["until"], state
    assert key_states(pools)[("anthropic", "a-main")]["state"] == "usable"
    assert "anthropic pool key ...66ff refused; out of rotation" in pools.logs()


def test_a_token_bound_to_a_pool_uses_only_its_keys(pools):
    token = pools.mint("openai", "--key-pool", "team_a")["token"]
    for _ in range(12):
        assert chat(pools, token).status_code == 200
    assert set(keys_seen(pools)) == set(TEAM)


def test_a_reload_rotates_pool_keys_without_a_restart(pools, keys_file):
    token = pools.mint("openai")["token"]
    assert chat(pools, token).status_code == 200  # the filter now caches the old pool
    keys_file.write_text(keys_text(f"[k3]{K3},[k2]{K2}"))
    key_states(pools)  # signs in
    r = pools.admin._call("POST", "/admin/api/keys/reload")
    assert r.status_code == 200, r.text
    reloaded_at = time.monotonic()
    while K3 not in keys_seen(pools):
        assert time.monotonic() - reloaded_at < 3, "the new key never reached the upstream"
        assert chat(pools, token).status_code == 200
    took = time.monotonic() - reloaded_at
    print(f"a reloaded pool key reached the upstream {took:.2f} s after the reload")
    time.sleep(1.1)  # the verdict cache TTL: no request may still carry the old pool
    pools.reset_upstream()
    for _ in range(10):
        assert chat(pools, token).status_code == 200
    assert set(keys_seen(pools)) == {K3, K2}
    assert ("openai", "k1") not in key_states(pools)
    assert pools.procs["token-service"].poll() is None


def test_no_key_value_in_any_log_metric_or_page(pools):
    admin = AdminClient(pools.url, pools.admin_secret)
    page = admin.http.get(f"{pools.url}/admin", timeout=10)
    assert page.status_code == 200 and 'id="keys"' in page.text
    surfaces = {
        "logs": pools.logs(),
        "metrics": requests.get(pools.metrics_url, timeout=5).text,
        "dashboard": page.text,
        "keys API": admin.http.get(f"{pools.url}/admin/api/keys", timeout=10).text,
    }
    assert 'data-key="...66ff" data-state="refused"' in surfaces["dashboard"]
    for where, text in surfaces.items():
        for key in ALL_KEYS:
            assert key not in text, f"{NAMES[key]}'s value in the {where}"


# OpenAI answers 401 for a permission the key lacks, not only for a bad key: a restricted key
# (or a project key on an admin route) gets `missing_scope`. The client chooses the route, so
# one such request per key would take the whole pool out of rotation (10 min here, 1 h on
# every replica) for every token bound to it.
MISSING_SCOPE = {"error": {
    "message": "You have insufficient permissions for this operation. Missing scopes: "
               "api.model.read. Check that you have the correct role in your organization.",
    "type": "invalid_request_error", "param": None, "code": "missing_scope"}}


def test_a_401_for_a_missing_scope_leaves_the_key_in_rotation(pools):
    # Last in the module: were it to fail, k1 and k2 would stay refused for the stack's life.
    token = pools.mint("openai")["token"]
    # The default pool's two keys (k1, k2; k3, k2 after the reload test).
    per_key(pools, {k: {"status": 401, "body": MISSING_SCOPE} for k in (K1, K2, K3)})
    for _ in range(4):
        r = chat(pools, token)
        # Answered as any refusal of the operator's credential: none of the provider's text.
        assert r.status_code == 401 and r.json()["error"]["code"] == "upstream_credential_refused"
        assert "scopes" not in r.text
    per_key(pools, {})
    pools.reset_upstream()
    for _ in range(4):
        assert chat(pools, token).status_code == 200, "a client's 401 took the pool out"
    seen = set(keys_seen(pools))
    assert len(seen) == 2 and seen <= {K1, K2, K3}, "a key left rotation"
