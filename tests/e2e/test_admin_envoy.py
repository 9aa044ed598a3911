"""The admin surface through the real Envoy: `/admin` and `/admin/...` reach the token-service's
admin listener with the ptk filter switched off, nothing else does, the login throttle sees
the real client even when it lies in x-forwarded-for, and the host and scheme the admin listener
believes are the ones Envoy saw, never a client's x-forwarded-host / -proto."""

from __future__ import annotations

import socket
import subprocess
import time

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


def test_admin_routes_carry_envoys_check_secret_and_no_other_route_does(make_stack):
    """The token-service trusts x-forwarded-for only next to Envoy's x-ptk-check-secret.
    Here the admin cluster points at the mock, which records what Envoy sends it."""
    stack = make_stack(render_extra=lambda s: [
        "--token-service-admin", s.mock_url.removeprefix("http://")])
    forged = {"x-ptk-check-secret": "client-chosen-value", "x-forwarded-for": "203.0.113.9"}
    for path in ("/admin", "/admin/api/tokens"):
        requests.get(f"{stack.url}{path}", headers=forged, timeout=10)
    recorded = stack.upstream_requests()
    assert [r["path"] for r in recorded] == ["/admin", "/admin/api/tokens"]
    for record in recorded:
        secrets_sent = [v for k, v in record["headers"] if k == "x-ptk-check-secret"]
        envoys_once = secrets_sent == [stack.secret]  # compared, never printed
        assert envoys_once, f"{len(secrets_sent)} value(s), not Envoy's secret once"
        assert [v for k, v in record["headers"] if k == "x-forwarded-for"] == ["127.0.0.1"]
    # The check secret never rides along to a provider.
    stack.reset_upstream()
    token = stack.mint()["token"]
    r = requests.get(f"{stack.url}/v1/models", timeout=10,
                     headers={"authorization": f"Bearer {token}"})
    assert r.status_code == 200
    (provider_call,) = stack.upstream_requests()
    leaked = stack.secret in str(provider_call)
    assert not leaked, "the check secret went to a provider"


def test_config_dump_shows_the_secrets_format_string_never_the_secret(stack):
    dump = requests.get(f"http://127.0.0.1:{stack.admin_port}/config_dump", timeout=10)
    assert dump.status_code == 200
    assert "%ENVIRONMENT(PTK_CHECK_SECRET)%" in dump.text
    leaked = stack.secret in dump.text
    assert not leaked, "the check secret is in the config dump"


# --- x-forwarded-host / -proto are Envoy's own (attack/admin_forwarded_host.py) ------------

FORGED_FORWARDING = {"x-forwarded-host": "evil.example", "x-forwarded-proto": "https",
                     "x-forwarded-for": "203.0.113.9"}


def h2_request(port: int, headers: list[tuple[str, str]]) -> bytes:
    """One HTTP/2 request (prior knowledge) with exactly these headers, pseudo-headers
    included (curl and requests choose `:scheme` themselves): HPACK literals, no Huffman."""
    def string(text: str) -> bytes:
        data = text.encode()
        assert len(data) < 127
        return bytes([len(data)]) + data
    block = b"".join(b"\x00" + string(name) + string(value) for name, value in headers)
    frame = len(block).to_bytes(3, "big") + b"\x01\x05" + (1).to_bytes(4, "big") + block
    settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
    with socket.create_connection(("127.0.0.1", port), timeout=10) as sock:
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + settings + frame)
        answer, deadline = b"", time.monotonic() + 5
        while time.monotonic() < deadline and len(answer) < 64:
            chunk = sock.recv(65535)
            if not chunk:
                break
            answer += chunk
        return answer


def test_admin_routes_send_envoys_own_forwarded_host_and_proto(make_stack):
    """The admin cluster points at the mock, which records what Envoy sends: the request's
    own host and the listener's scheme, whatever the client wrote (HTTP/1.1 and HTTP/2)."""
    stack = make_stack(render_extra=lambda s: [
        "--token-service-admin", s.mock_url.removeprefix("http://")])
    sent = []  # (host the client addressed, scheme Envoy must name)
    for base, port, scheme, tls in ((stack.url, stack.proxy_port, "http", {}),
                                    (stack.tls_url, stack.tls_port, "https",
                                     {"verify": str(stack.ca_cert)})):
        for headers in ({}, FORGED_FORWARDING, {"x-forwarded-proto": "http"}):
            requests.get(f"{base}/admin/api/tokens", headers=headers, timeout=10, **tls)
            sent.append((f"127.0.0.1:{port}", scheme))
        # Another name for the same listener is that request's own host.
        requests.get(f"{base.replace('127.0.0.1', 'localhost')}/admin", timeout=10,
                     headers=FORGED_FORWARDING, **tls)
        sent.append((f"localhost:{port}", scheme))
    h2 = subprocess.run(
        ["curl", "-s", "-o", "/dev/null", "-w", "%{http_version}", "--http2-prior-knowledge",
         *(arg for name, value in FORGED_FORWARDING.items() for arg in ("-H", f"{name}: {value}")),
         f"{stack.url}/admin"], capture_output=True, text=True, timeout=10)
    assert h2.stdout == "2"
    sent.append((f"127.0.0.1:{stack.proxy_port}", "http"))
    # An HTTP/2 client names its own :scheme, even over plain TCP: not what Envoy passes on.
    h2_request(stack.proxy_port, [(":method", "GET"), (":scheme", "https"),
                                  (":path", "/admin"), (":authority", "h2.example"),
                                  *FORGED_FORWARDING.items()])
    sent.append(("h2.example", "http"))
    recorded = stack.upstream_requests()
    assert len(recorded) == len(sent)
    for record, (host, scheme) in zip(recorded, sent):
        values = lambda name: [v for k, v in record["headers"] if k == name]  # noqa: E731
        assert values("x-forwarded-host") == [host], record["headers"]
        assert values("x-forwarded-proto") == [scheme], record["headers"]
        assert values("x-forwarded-for") == ["127.0.0.1"], record["headers"]


def test_a_clients_forwarded_host_and_proto_are_not_believed(stack):
    client = AdminClient(stack.url, stack.admin_secret)
    body = {"label": "origin", "providers": ["openai"]}
    # The Origin check compares with the host Envoy saw, not one the client names.
    r = client.http.post(f"{stack.url}/admin/api/tokens", json=body, timeout=10, headers={
        "x-csrf-token": client.csrf, "origin": "http://evil.example", **FORGED_FORWARDING})
    assert r.status_code == 403, r.text
    r = client.http.post(f"{stack.url}/admin/api/tokens", json=body, timeout=10, headers={
        "x-csrf-token": client.csrf, "origin": stack.url, **FORGED_FORWARDING})
    assert r.status_code == 201, r.text
    # The dashboard's snippets name the proxy as the browser addressed it.
    page = client.http.get(f"{stack.url}/admin", headers=FORGED_FORWARDING, timeout=10).text
    assert "evil.example" not in page and f"127.0.0.1:{stack.proxy_port}" in page
    # The Secure cookie flag follows the listener, both ways.
    password = {"password": stack.admin_secret}
    plain = requests.post(f"{stack.url}/admin/login", json=password, timeout=10,
                          headers={"x-forwarded-proto": "https"})
    tls = requests.post(f"{stack.tls_url}/admin/login", json=password, timeout=10,
                        headers={"x-forwarded-proto": "http"}, verify=str(stack.ca_cert))
    assert plain.status_code == tls.status_code == 200
    assert "secure" not in plain.headers["set-cookie"].lower()
    assert "; Secure" in tls.headers["set-cookie"]


def test_favicon_is_answered_without_a_token(stack):
    """Every dashboard page makes the browser ask for /favicon.ico on the proxy's origin: Envoy
    answers 204 itself (filter off on that one path), no 401, nothing sent upstream."""
    for path in ("/favicon.ico", "/admin/favicon.ico"):
        r = requests.get(f"{stack.url}{path}", timeout=10)
        assert r.status_code == 204, (path, r.status_code, r.text)
    # Only that exact path: anything else without a token is still the filter's 401.
    assert requests.get(f"{stack.url}/favicon.ico.php", timeout=10).status_code == 401
    assert stack.upstream_requests() == []
