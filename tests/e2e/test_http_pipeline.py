"""The HTTP proxy path end to end: real Envoy + built .wasm + real token-service + recording
mock upstream. Covers every row of the original Worker's §1.2 table, the strip-all-then-set-one
swap, fail-closed behaviour, and unbuffered streaming."""

from __future__ import annotations

import json
import sqlite3
from datetime import datetime, timedelta, timezone

import requests

from .harness import REAL_KEYS

OPENAI_KEY = REAL_KEYS["OPENAI_API_KEY"]
ANTHROPIC_KEY = REAL_KEYS["ANTHROPIC_API_KEY"]
GEMINI_KEY = REAL_KEYS["GEMINI_API_KEY"]
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")
CHAT = {"model": "gpt-4o-mini", "messages": [{"role": "user", "content": "hello"}]}
#: These tests pin the check pipeline itself: every request asks the token-service, so a
#: change made with the CLI shows on the very next request. test_cache.py covers caching.
STACK_SETTINGS = {"cache_ttl_ms": 0}


def headers_of(record: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in record["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def credentials(record: dict) -> dict[str, list[str]]:
    h = headers_of(record)
    return {name: h[name] for name in CREDENTIAL_HEADERS if name in h}


def only_request(stack) -> dict:
    recorded = stack.upstream_requests()
    assert len(recorded) == 1, f"expected one upstream request, got {len(recorded)}"
    return recorded[0]


def error_message(resp: requests.Response) -> str:
    body = resp.json()
    return body["error"]["message"]


def past(seconds: int = 60) -> str:
    return (datetime.now(timezone.utc) - timedelta(seconds=seconds)).strftime("%Y-%m-%dT%H:%M:%SZ")


# --- the auth swap -------------------------------------------------------------------------


def test_openai_bearer_is_swapped_and_forwarded(stack):
    token = stack.mint()["token"]
    r = requests.post(f"{stack.url}/v1/chat/completions", json=CHAT,
                      headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert r.json()["object"] == "chat.completion"
    rec = only_request(stack)
    assert rec["path"] == "/v1/chat/completions"
    assert credentials(rec) == {"authorization": [f"Bearer {OPENAI_KEY}"]}
    assert json.loads(rec["body"]) == CHAT


def test_the_provider_route_is_taken_whichever_host_the_client_named(stack):
    # An SDK names the proxy (the filter rewrites :authority); an egress gateway or a DNS
    # override names the provider already (the filter leaves it as is). Either way Envoy picks
    # the provider's virtual host, whose route here rewrites the host to the mock's own.
    token = stack.mint()["token"]
    mock_authority = stack.mock_url.split("//", 1)[1]
    for host in (None, "api.openai.com"):
        stack.reset_upstream()
        extra = {"host": host} if host else {}
        r = requests.post(f"{stack.url}/v1/chat/completions", json=CHAT,
                          headers={"authorization": f"Bearer {token}", **extra})
        assert r.status_code == 200, (host, r.text)
        rec = only_request(stack)
        assert headers_of(rec)["host"] == [mock_authority], host
        assert credentials(rec) == {"authorization": [f"Bearer {OPENAI_KEY}"]}


def test_an_istio_style_check_cluster_name_works(make_stack):
    # Under Istio the token-service is the cluster `outbound|PORT||HOST`; the plugin config
    # names it and the callout must reach it like any other cluster.
    name = "outbound|10080||token-service.ptk.svc.cluster.local"
    s = make_stack(token_service_cluster=name, cache_ttl_ms=0)
    token = s.mint()["token"]
    r = requests.post(f"{s.url}/v1/chat/completions", json=CHAT,
                      headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    assert credentials(only_request(s)) == {"authorization": [f"Bearer {OPENAI_KEY}"]}
    bogus = requests.post(f"{s.url}/v1/chat/completions", json=CHAT,
                          headers={"authorization": "Bearer ptk_not_a_real_token_000"})
    assert bogus.status_code == 401


def test_anthropic_x_api_key_keeps_its_slot(stack):
    token = stack.mint()["token"]
    r = requests.post(f"{stack.url}/v1/messages",
                      json={"model": "claude", "max_tokens": 5, "messages": []},
                      headers={"x-api-key": token, "anthropic-version": "2023-06-01"})
    assert r.status_code == 200, r.text
    rec = only_request(stack)
    assert credentials(rec) == {"x-api-key": [ANTHROPIC_KEY]}
    assert headers_of(rec)["anthropic-version"] == ["2023-06-01"]


def test_anthropic_bearer_with_version_goes_to_anthropic_as_bearer(stack):
    token = stack.mint("anthropic")["token"]
    r = requests.post(f"{stack.url}/v1/messages",
                      json={"model": "claude", "max_tokens": 5, "messages": []},
                      headers={"authorization": f"Bearer {token}", "anthropic-version": "2026-10-21"})
    assert r.status_code == 200, r.text
    assert credentials(only_request(stack)) == {"authorization": [f"Bearer {ANTHROPIC_KEY}"]}


def test_gemini_header(stack):
    token = stack.mint("gemini")["token"]
    r = requests.post(f"{stack.url}/v1beta/models/gemini-2.5-flash:generateContent",
                      json={"contents": []}, headers={"x-goog-api-key": token})
    assert r.status_code == 200, r.text
    assert credentials(only_request(stack)) == {"x-goog-api-key": [GEMINI_KEY]}


def test_gemini_query_key_moves_to_the_header_and_the_rest_stays_verbatim(stack):
    token = stack.mint("gemini")["token"]
    body = b'{"contents":[{"parts":[{"text":"byte-identical \\u00e9"}]}]}'
    r = requests.post(
        f"{stack.url}/v1beta/models/m:streamGenerateContent?alt=sse&key={token}&foo=a%20b",
        data=body, headers={"content-type": "application/json"}, stream=True)
    assert r.status_code == 200
    r.close()
    rec = only_request(stack)
    assert rec["path"] == "/v1beta/models/m:streamGenerateContent?alt=sse&foo=a%20b"
    assert credentials(rec) == {"x-goog-api-key": [GEMINI_KEY]}
    assert rec["body"].encode() == body


def test_gemini_openai_endpoint_gets_the_gemini_key_as_bearer(stack):
    token = stack.mint("gemini")["token"]
    r = requests.post(f"{stack.url}/v1beta/openai/chat/completions", json=CHAT,
                      headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text
    rec = only_request(stack)
    assert rec["path"] == "/v1beta/openai/chat/completions"
    assert credentials(rec) == {"authorization": [f"Bearer {GEMINI_KEY}"]}


def test_sentinel_in_every_slot_never_reaches_upstream(stack):
    created = stack.mint("anthropic", "--token", "ptk_SENTINEL_every_slot_0001")
    token = created["token"]
    assert token == "ptk_SENTINEL_every_slot_0001"
    r = requests.post(
        f"{stack.url}/v1/messages?key={token}&k%65y={token}&keep=1",
        json={"model": "claude", "max_tokens": 5, "messages": []},
        headers={"x-api-key": token, "x-goog-api-key": token,
                 "authorization": f"Bearer {token}", "anthropic-version": "2023-06-01"})
    assert r.status_code == 200, r.text
    rec = only_request(stack)
    assert token not in json.dumps(rec)
    assert rec["path"] == "/v1/messages?keep=1"
    # The real key is in exactly one slot: x-api-key wins, every other slot is gone.
    assert credentials(rec) == {"x-api-key": [ANTHROPIC_KEY]}
    everywhere = json.dumps(rec)
    assert everywhere.count(ANTHROPIC_KEY) == 1
    for other in (OPENAI_KEY, GEMINI_KEY):
        assert other not in everywhere


def test_large_body_is_forwarded_intact_after_the_check(stack):
    token = stack.mint()["token"]
    big = {"model": "m", "messages": [{"role": "user", "content": "x" * 3_000_000}]}
    r = requests.post(f"{stack.url}/v1/chat/completions", json=big,
                      headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200, r.text[:200]
    assert json.loads(only_request(stack)["body"]) == big


# --- every row of the original Worker's §1.2 -----------------------------------------------


def test_missing_token_is_401_and_nothing_is_forwarded(stack):
    r = requests.post(f"{stack.url}/v1/chat/completions", json=CHAT)
    assert r.status_code == 401
    assert error_message(r) == "missing token"
    assert r.headers["content-type"] == "application/json"
    r = requests.get(f"{stack.url}/v1/models", headers={"authorization": "Basic dXNlcjpwYXNz"})
    assert r.status_code == 401
    assert stack.upstream_requests() == []


def test_unknown_token_is_401_invalid(stack):
    r = requests.post(f"{stack.url}/v1/chat/completions", json=CHAT,
                      headers={"authorization": "Bearer ptk_never_issued_0000000000000"})
    assert r.status_code == 401
    assert error_message(r) == "invalid or revoked token"
    assert stack.upstream_requests() == []


def test_disabled_token_is_401_invalid_and_enable_restores_it(stack):
    created = stack.mint()
    auth = {"authorization": f"Bearer {created['token']}"}
    assert requests.post(f"{stack.url}/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    stack.cli("tokens", "disable", created["hash"][:12])
    r = requests.post(f"{stack.url}/v1/chat/completions", json=CHAT, headers=auth)
    assert r.status_code == 401
    assert error_message(r) == "invalid or revoked token"
    stack.cli("tokens", "enable", created["hash"])
    assert requests.post(f"{stack.url}/v1/chat/completions", json=CHAT, headers=auth).status_code == 200
    assert len(stack.upstream_requests()) == 2


def test_deleted_token_is_401_invalid(stack):
    created = stack.mint()
    stack.cli("tokens", "delete", created["hash"])
    r = requests.get(f"{stack.url}/v1/models", headers={"authorization": f"Bearer {created['token']}"})
    assert r.status_code == 401
    assert error_message(r) == "invalid or revoked token"


def test_expired_token_is_401_token_expired_in_each_providers_shape(stack):
    created = stack.mint()
    stack.cli("tokens", "expire", created["hash"], "--at", past())
    token = created["token"]
    r = requests.post(f"{stack.url}/v1/chat/completions", json=CHAT,
                      headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 401
    assert r.json()["error"]["message"] == "token expired"
    r = requests.post(f"{stack.url}/v1/messages", json={},
                      headers={"x-api-key": token, "anthropic-version": "2023-06-01"})
    assert r.status_code == 401
    assert r.json() == {"type": "error", "error": {"type": "authentication_error", "message": "token expired"}}
    r = requests.post(f"{stack.url}/v1beta/models/m:generateContent", json={},
                      headers={"x-goog-api-key": token})
    assert r.status_code == 401
    assert r.json() == {"error": {"code": 401, "message": "token expired", "status": "UNAUTHENTICATED"}}
    stack.cli("tokens", "expire", created["hash"], "--at", "never")
    r = requests.get(f"{stack.url}/v1/models", headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert len(stack.upstream_requests()) == 1


def test_precedence_disabled_beats_expired_and_expired_beats_scope(stack):
    both = stack.mint("openai")
    stack.cli("tokens", "expire", both["hash"], "--at", past())
    stack.cli("tokens", "disable", both["hash"])
    r = requests.get(f"{stack.url}/v1/models", headers={"authorization": f"Bearer {both['token']}"})
    assert error_message(r) == "invalid or revoked token"
    expired = stack.mint("openai")
    stack.cli("tokens", "expire", expired["hash"], "--at", past())
    r = requests.post(f"{stack.url}/v1beta/models/m:generateContent", json={},
                      headers={"x-goog-api-key": expired["token"]})
    assert r.status_code == 401
    assert error_message(r) == "token expired"
    assert stack.upstream_requests() == []


def test_malformed_expiry_fails_closed(stack):
    created = stack.mint()
    with sqlite3.connect(stack.db) as db:
        db.execute("UPDATE tokens SET expires_at = 'not-a-date' WHERE hash = ?", (created["hash"],))
    r = requests.get(f"{stack.url}/v1/models", headers={"authorization": f"Bearer {created['token']}"})
    assert r.status_code == 401
    assert error_message(r) == "invalid or revoked token"
    assert stack.upstream_requests() == []


def test_provider_out_of_scope_is_403(stack):
    token = stack.mint("gemini")["token"]
    r = requests.post(f"{stack.url}/v1/chat/completions", json=CHAT,
                      headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert r.json()["error"] == {"message": "token not allowed for provider",
                                 "type": "permission_error", "param": None,
                                 "code": "provider_not_allowed"}
    r = requests.post(f"{stack.url}/v1/messages", json={},
                      headers={"authorization": f"Bearer {token}", "anthropic-version": "2026-10-21"})
    assert r.status_code == 403
    assert r.json()["error"]["type"] == "permission_error"
    assert stack.upstream_requests() == []


def test_rate_limit_is_429_with_retry_after(stack):
    token = stack.mint("openai", "--rate-limit", "3/60")["token"]
    auth = {"authorization": f"Bearer {token}"}
    codes = [requests.get(f"{stack.url}/v1/models", headers=auth).status_code for _ in range(5)]
    assert codes == [200, 200, 200, 429, 429]
    r = requests.get(f"{stack.url}/v1/models", headers=auth)
    assert r.status_code == 429
    assert error_message(r) == "rate limit exceeded"
    assert 1 <= int(r.headers["retry-after"]) <= 60
    assert len(stack.upstream_requests()) == 3


def test_refusals_do_not_consume_the_rate_limit(stack):
    token = stack.mint("gemini", "--rate-limit", "1/60")["token"]
    for _ in range(3):  # out of scope: 403, never counted
        assert requests.get(f"{stack.url}/v1/models",
                            headers={"authorization": f"Bearer {token}"}).status_code == 403
    r = requests.get(f"{stack.url}/v1beta/models", headers={"x-goog-api-key": token})
    assert r.status_code == 200


def test_upstream_status_passes_through_untouched(stack):
    token = stack.mint()["token"]
    r = requests.post(f"{stack.url}/v1/messages", json={},
                      headers={"x-api-key": token, "anthropic-version": "2023-06-01",
                               "x-mock-status": "529"})
    assert r.status_code == 529
    assert r.json()["type"] == "error"
    assert len(stack.upstream_requests()) == 1


# --- fail closed ---------------------------------------------------------------------------


def test_unreachable_upstream_is_502_upstream_request_failed(make_stack):
    from .harness import free_port

    s = make_stack(upstreams={"GEMINI_UPSTREAM": f"http://127.0.0.1:{free_port()}"})
    token = s.mint("gemini")["token"]
    r = requests.post(f"{s.url}/v1beta/models/m:generateContent", json={},
                      headers={"x-goog-api-key": token})
    assert r.status_code == 502
    assert error_message(r) == "upstream request failed"


def test_token_service_down_is_503_and_nothing_is_forwarded(make_stack):
    s = make_stack(cache_ttl_ms=0)
    token = s.mint()["token"]
    auth = {"authorization": f"Bearer {token}"}
    assert requests.get(f"{s.url}/v1/models", headers=auth).status_code == 200
    s.reset_upstream()
    s.kill_service()
    for _ in range(3):
        r = requests.post(f"{s.url}/v1/chat/completions", json=CHAT, headers=auth)
        assert r.status_code == 503
        assert error_message(r) == "token store unavailable"
    assert s.upstream_requests() == []


def test_token_store_failure_is_503(make_stack):
    s = make_stack(cache_ttl_ms=0)
    created = s.mint()
    with sqlite3.connect(s.db) as db:
        db.execute("DROP TABLE IF EXISTS last_used")
        db.execute("DROP TABLE tokens")
    r = requests.get(f"{s.url}/v1/models", headers={"authorization": f"Bearer {created['token']}"})
    assert r.status_code == 503
    assert error_message(r) == "token store unavailable"
    assert s.upstream_requests() == []


def test_provider_without_a_real_key_is_503_not_forwarded(make_stack):
    from .harness import REAL_KEYS as keys

    s = make_stack(keys={k: v for k, v in keys.items() if k != "GEMINI_API_KEY"})
    token = s.mint()["token"]
    r = requests.get(f"{s.url}/v1beta/models", headers={"x-goog-api-key": token})
    assert r.status_code == 503
    assert r.json()["error"]["status"] == "UNAVAILABLE"
    assert s.upstream_requests() == []


def test_a_slot_sent_twice_never_leaks(stack):
    """Envoy's codec joins a repeated `authorization` into one value ("Bearer t, Bearer t"),
    which is no token: refused. A repeated `x-api-key` stays two entries: the first is the
    token, and setting the real key replaces every entry, so exactly one reaches upstream."""
    import http.client

    token = stack.mint("openai,anthropic", "--token", "ptk_SENTINEL_duplicates_01")["token"]

    def send(path: str, slot: str, value: str, extra: dict[str, str]) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", stack.proxy_port, timeout=10)
        conn.putrequest("POST", path)
        conn.putheader(slot, value)
        conn.putheader(slot, value)
        for name, v in extra.items():
            conn.putheader(name, v)
        conn.putheader("content-type", "application/json")
        conn.putheader("content-length", "2")
        conn.endheaders(b"{}")
        status = conn.getresponse().status
        conn.close()
        return status

    assert send("/v1/chat/completions", "authorization", f"Bearer {token}", {}) == 401
    assert stack.upstream_requests() == []
    assert send("/v1/messages", "x-api-key", token, {"anthropic-version": "2023-06-01"}) == 200
    rec = only_request(stack)
    assert token not in json.dumps(rec)
    assert credentials(rec) == {"x-api-key": [ANTHROPIC_KEY]}
