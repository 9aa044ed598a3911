"""CORS against the real Envoy (original Worker §5): preflights answered before auth and never
forwarded; every proxied or local response decorated when the request had an Origin."""

from __future__ import annotations

import requests

EXPOSE = "x-goog-upload-url, x-goog-upload-status, x-goog-upload-chunk-granularity"
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
    assert r.headers["access-control-allow-methods"] == "GET, POST, PUT, DELETE, OPTIONS"
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
    assert r.headers["access-control-allow-methods"] == "GET, POST, PUT, DELETE, OPTIONS"
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
