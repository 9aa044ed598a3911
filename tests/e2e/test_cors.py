"""CORS against the real Envoy (original Worker §5): preflights answered before auth and never
forwarded; every proxied or local response decorated when the request had an Origin. Unlike
the original, the provider's `access-control-expose-headers` is kept (ours merged in), what the
browser SDKs read is exposed when the provider sends none, and preflights allow PATCH
(issue 10, item 11)."""

from __future__ import annotations

import json

import requests

#: What the filter exposes when the provider exposes nothing (filter-core/src/expose.rs).
EXPOSE = ("retry-after, retry-after-ms, x-should-retry, x-request-id, request-id, "
          "openai-poll-after-ms, x-ratelimit-limit-requests, x-ratelimit-limit-tokens, "
          "x-ratelimit-remaining-requests, x-ratelimit-remaining-tokens, "
          "x-ratelimit-reset-requests, x-ratelimit-reset-tokens, "
          "anthropic-ratelimit-requests-limit, anthropic-ratelimit-requests-remaining, "
          "anthropic-ratelimit-requests-reset, anthropic-ratelimit-tokens-limit, "
          "anthropic-ratelimit-tokens-remaining, anthropic-ratelimit-tokens-reset, "
          "anthropic-ratelimit-input-tokens-limit, anthropic-ratelimit-input-tokens-remaining, "
          "anthropic-ratelimit-input-tokens-reset, anthropic-ratelimit-output-tokens-limit, "
          "anthropic-ratelimit-output-tokens-remaining, anthropic-ratelimit-output-tokens-reset, "
          "x-goog-upload-url, x-goog-upload-control-url, x-goog-upload-status, "
          "x-goog-upload-chunk-granularity, x-goog-upload-size-received")
METHODS = "GET, POST, PUT, PATCH, DELETE, OPTIONS"
ORIGIN = "https://app.example"
#: Headers that browser builds of the SDKs send, which must pass preflight.
SDK_HEADERS = ("authorization, content-type, x-stainless-os, x-stainless-lang, "
               "x-stainless-package-version, x-stainless-runtime, x-stainless-arch, "
               "x-stainless-retry-count, x-stainless-timeout, openai-beta, anthropic-version, "
               "anthropic-dangerous-direct-browser-access, x-api-key, x-goog-api-key, "
               "x-goog-api-client")


def test_preflight_with_origin(stack):
    r = requests.options(f"{stack.url}/v1/chat/completions",
                         headers={"origin": ORIGIN, "access-control-request-method": "POST",
                                  "access-control-request-headers": SDK_HEADERS})
    assert r.status_code == 204
    assert r.content == b""
    assert r.headers["access-control-allow-methods"] == METHODS
    assert r.headers["access-control-allow-headers"] == SDK_HEADERS
    assert r.headers["access-control-max-age"] == "86400"
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["vary"] == "Origin"
    assert r.headers["access-control-expose-headers"] == EXPOSE
    assert "access-control-allow-credentials" not in r.headers
    assert stack.upstream_requests() == []


def test_preflight_without_origin_or_token(stack):
    r = requests.options(f"{stack.url}/v1beta/models/m:generateContent?key=ptk_not_checked")
    assert r.status_code == 204
    assert r.headers["access-control-allow-headers"] == "*"
    assert r.headers["access-control-allow-methods"] == METHODS
    assert "access-control-allow-origin" not in r.headers
    assert stack.upstream_requests() == []


def test_proxied_response_is_decorated(stack):
    token = stack.mint()["token"]
    r = requests.post(f"{stack.url}/v1/chat/completions", json={"model": "m", "messages": []},
                      headers={"origin": ORIGIN, "authorization": f"Bearer {token}"})
    assert r.status_code == 200
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert "Origin" in r.headers["vary"]
    assert r.headers["access-control-expose-headers"] == EXPOSE
    assert len(stack.upstream_requests()) == 1


def test_local_errors_are_decorated(stack):
    r = requests.post(f"{stack.url}/v1/messages", json={}, headers={"origin": ORIGIN})
    assert r.status_code == 401
    assert r.headers["access-control-allow-origin"] == ORIGIN
    assert r.headers["vary"] == "Origin"
    assert r.headers["access-control-expose-headers"] == EXPOSE
    token = stack.mint("gemini")["token"]
    r = requests.get(f"{stack.url}/v1/models",
                     headers={"origin": ORIGIN, "authorization": f"Bearer {token}"})
    assert r.status_code == 403
    assert r.headers["access-control-allow-origin"] == ORIGIN


def test_no_origin_no_cors_headers(stack):
    token = stack.mint()["token"]
    for headers in ({}, {"authorization": f"Bearer {token}"}):
        r = requests.get(f"{stack.url}/v1/models", headers=headers)
        assert not [h for h in r.headers if h.lower().startswith("access-control-")], r.headers


def test_preflight_allows_every_method_the_providers_use(stack):
    # @google/genai: caches.update and models.update are PATCH; files and caches are deleted
    # with DELETE; environment uploads use PUT.
    for method in ("PATCH", "DELETE", "PUT", "GET", "POST"):
        r = requests.options(f"{stack.url}/v1beta/cachedContents/c1",
                             headers={"origin": ORIGIN, "access-control-request-method": method})
        assert method in r.headers["access-control-allow-methods"].split(", ")
    token = stack.mint()["token"]
    r = requests.patch(f"{stack.url}/v1beta/cachedContents/c1?updateMask=ttl",
                       json={"ttl": "3600s"}, headers={"origin": ORIGIN, "x-goog-api-key": token})
    assert r.status_code == 200 and r.json()["name"] == "cachedContents/c1"
    assert r.headers["access-control-allow-origin"] == ORIGIN


def _expose(stack, path: str, headers: dict) -> str:
    token = stack.mint()["token"]
    auth = {"x-api-key": token, "anthropic-version": "2023-06-01"} if "messages" in path \
        else {"authorization": f"Bearer {token}"}
    r = requests.post(f"{stack.url}{path}", json={"model": "m", "messages": []},
                      headers={"origin": ORIGIN, **auth, **headers})
    return r.headers["access-control-expose-headers"]


def test_the_providers_expose_list_is_kept(stack):
    # Anthropic exposes everything with "*": kept as it is.
    assert _expose(stack, "/v1/messages", {}) == "*"
    # A provider's own list comes first, ours follow once each.
    mine = json.dumps({"access-control-expose-headers": "X-Request-ID, openai-processing-ms"})
    value = _expose(stack, "/v1/chat/completions", {"x-mock-headers": mine}).split(", ")
    assert value[:2] == ["X-Request-ID", "openai-processing-ms"]
    assert [v.lower() for v in value].count("x-request-id") == 1
    assert set(EXPOSE.split(", ")) <= {v.lower() for v in value}
    # Every value of a repeated header is kept.
    twice = json.dumps([["access-control-expose-headers", "x-a"],
                        ["access-control-expose-headers", "x-b"]])
    assert _expose(stack, "/v1/chat/completions", {"x-mock-headers": twice}).startswith("x-a, x-b, ")


def test_the_provider_headers_the_sdks_read_reach_the_page(stack):
    token = stack.mint()["token"]
    extra = json.dumps({"retry-after": "7", "x-should-retry": "false"})
    r = requests.post(f"{stack.url}/v1/chat/completions", json={"model": "m", "messages": []},
                      headers={"origin": ORIGIN, "authorization": f"Bearer {token}",
                               "x-mock-status": "429", "x-mock-headers": extra})
    assert r.status_code == 429
    exposed = r.headers["access-control-expose-headers"].split(", ")
    for name in ("retry-after", "x-should-retry", "x-request-id", "x-ratelimit-remaining-requests"):
        assert name in exposed and name in r.headers, name


def test_local_429s_expose_retry_after(stack):
    limited = stack.mint("openai", "--rate-limit", "1/60")["token"]
    statuses = []
    for _ in range(2):
        r = requests.post(f"{stack.url}/v1/chat/completions", json={},
                          headers={"origin": ORIGIN, "authorization": f"Bearer {limited}"})
        statuses.append(r.status_code)
    assert statuses == [200, 429]
    assert r.headers["retry-after"]
    assert "retry-after" in r.headers["access-control-expose-headers"].split(", ")
