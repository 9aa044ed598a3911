"""The admin surface through the real Envoy: `/admin` and `/admin/...` reach the token-service's
admin listener with the ptk filter switched off, nothing else does, and the login throttle sees
the real client even when it lies in x-forwarded-for."""

from __future__ import annotations

import requests

from .admin_client import AdminClient


def test_login_page_and_security_headers_come_through_envoy(stack):
    r = requests.get(f"{stack.url}/admin", timeout=10)
    assert r.status_code == 200
    assert 'action="/admin/login"' in r.text
    assert r.headers["content-security-policy"].startswith("default-src 'none'; script-src 'self'")
    assert r.headers["x-frame-options"] == "DENY"
    css = requests.get(f"{stack.url}/admin/static/admin.css", timeout=10)
    assert css.status_code == 200 and css.headers["content-type"].startswith("text/css")


def test_the_filter_never_runs_on_admin_routes(stack):
    token = stack.mint()["token"]
    # A proxy token on an admin route is neither checked nor swapped nor forwarded upstream:
    # the admin API answers for itself.
    r = requests.get(f"{stack.url}/admin/api/tokens", timeout=10,
                     headers={"authorization": f"Bearer {token}", "origin": "http://elsewhere"})
    assert r.status_code == 401
    assert r.json() == {"error": {"code": "unauthenticated", "message": "login required"}}
    assert "access-control-allow-origin" not in r.headers, "no CORS on the admin surface"
    assert stack.upstream_requests() == []


def test_only_admin_paths_are_routed_to_the_admin_listener(stack):
    for path in ("/administrator", "/adminx", "/v1/admin"):
        r = requests.get(f"{stack.url}{path}", timeout=10)
        assert r.status_code in (401, 404), path
        assert "login required" not in r.text and "ptk admin" not in r.text, path
    # The check API is not reachable through the admin route.
    r = requests.post(f"{stack.url}/admin/../v1/check", json={}, timeout=10)
    assert r.status_code in (401, 404)
    assert "verdict" not in r.text


def test_session_cookie_and_api_work_through_envoy_and_directly(stack):
    via_envoy = AdminClient(stack.url, stack.admin_secret)
    cookie = next(c for c in via_envoy.http.cookies if c.name == "ptk_admin")
    assert cookie.path == "/admin"
    assert cookie.has_nonstandard_attr("HttpOnly")
    created = via_envoy.create(label="both-ways", providers=["anthropic"])
    direct = AdminClient(stack.service_admin_url, stack.admin_secret)
    assert any(t["hash"] == created["hash"] for t in direct.tokens())
    direct.patch(created["hash"], status="disabled")
    assert via_envoy.get(created["hash"]).json()["status"] == "disabled"


def test_login_throttle_counts_the_real_client_through_envoy(make_stack):
    stack = make_stack()
    attempt = "wrong-password-attempt-7f3a"
    for i in range(10):
        # Each attempt claims to come from another address; Envoy overwrites the header with
        # the TCP peer, so all ten land in one bucket.
        r = requests.post(f"{stack.url}/admin/login", json={"password": attempt}, timeout=10,
                          headers={"x-forwarded-for": f"203.0.113.{i}"})
        assert r.status_code == 401, r.text
    r = requests.post(f"{stack.url}/admin/login", json={"password": stack.admin_secret},
                      timeout=10, headers={"x-forwarded-for": "198.51.100.99"})
    assert r.status_code == 429
    assert 1 <= int(r.headers["retry-after"]) <= 60
    logs = stack.logs()
    assert logs.count("admin login failed") == 10
    assert attempt not in logs and stack.admin_secret not in logs
