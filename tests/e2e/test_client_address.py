"""The client's address is the TCP peer Envoy accepted (`use_remote_address: true` on every
listener), never what a client writes into X-Forwarded-For: rotating it does not escape the
guess throttle, naming another address does not lock that address out, on the plain and the
TLS listener. Providers never receive a client's address or what Envoy adds about it. With
`--xff-num-trusted-hops`, the address comes from the proxies in front of Envoy instead, for
the guess throttle and the admin login throttle alike."""

from __future__ import annotations

import http.client
import json
import ssl
import time

import requests
import yaml

from .flood import stat
from .harness import Stack

MAX = 5
THROTTLE = {"guess_throttle": {"max_refusals": MAX, "window_ms": 60_000}}
STACK_SETTINGS = {"plugin_config": THROTTLE}
#: Headers Envoy adds about the client with use_remote_address; providers must get none.
ABOUT_THE_CLIENT = ("x-forwarded-for", "x-envoy-external-address", "x-envoy-internal")


#: One request per provider virtual host (route): (path, headers for a token).
PROVIDER_CALLS = {
    "openai": ("/v1/models", lambda t: {"authorization": f"Bearer {t}"}),
    "anthropic": ("/v1/messages", lambda t: {"x-api-key": t}),
    "gemini": ("/v1beta/models/m:generateContent", lambda t: {"x-goog-api-key": t}),
    "gemini_openai": ("/v1beta/openai/models", lambda t: {"authorization": f"Bearer {t}"}),
}


def call(stack, token: str, source: str, *, xff: str | None = None, tls: bool = False,
         provider: str = "openai") -> int:
    """One request from a chosen loopback source address, on a fresh connection."""
    if tls:
        ctx = ssl.create_default_context(cafile=str(stack.ca_cert))
        conn = http.client.HTTPSConnection("127.0.0.1", stack.tls_port, timeout=10,
                                           source_address=(source, 0), context=ctx)
    else:
        conn = http.client.HTTPConnection("127.0.0.1", stack.proxy_port, timeout=10,
                                          source_address=(source, 0))
    path, credential = PROVIDER_CALLS[provider]
    headers = credential(token)
    if xff is not None:
        headers["x-forwarded-for"] = xff
    try:
        conn.request("GET", path, headers=headers)
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def refusals(stack) -> int:
    time.sleep(1.2)  # the filter flushes its counters each tick
    return stat(stack.admin_port, "wasmcustom.ptk.refused.invalid")


def test_rotating_x_forwarded_for_is_still_throttled_per_real_peer(stack):
    for tls, peer in ((False, "127.0.0.21"), (True, "127.0.0.22")):
        before = refusals(stack)
        codes = [call(stack, f"ptk_rotate_{tls:d}_{n:04d}_abcdefghijklmn", peer, tls=tls,
                      xff=f"10.{n // 250}.{n % 250}.7")
                 for n in range(60)]
        checked = refusals(stack) - before
        # Each of the 2 workers lets MAX through, then answers 429 without a check.
        assert codes.count(401) <= 2 * MAX, (tls, codes)
        assert codes.count(429) >= 60 - 2 * MAX, (tls, codes)
        assert checked <= 2 * MAX, f"{checked} guesses reached the token-service (tls={tls})"


def test_an_address_written_into_x_forwarded_for_is_not_locked_out(stack):
    victim, attacker = "127.0.0.23", "127.0.0.24"
    for tls in (False, True):
        codes = [call(stack, f"ptk_lockout_{tls:d}_{n:04d}_abcdefghijkl", attacker, tls=tls,
                      xff=f"{victim}, {victim}")
                 for n in range(40)]
        assert codes.count(429) >= 40 - 2 * MAX, codes  # the attacker throttled itself
        # A token the victim never used is what a throttled address could not use.
        fresh = stack.mint("openai")["token"]
        assert [call(stack, fresh, victim, tls=tls) for _ in range(4)] == [200] * 4
    assert call(stack, stack.mint("openai")["token"], attacker) == 429


def test_providers_never_receive_a_client_address(stack):
    token = stack.mint()["token"]
    peer = "127.0.0.25"
    upgrade = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
               "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "x-mock-status": "426"}
    sent = 0
    for tls in (False, True):
        for xff in (None, "203.0.113.9", "203.0.113.9, 198.51.100.4"):
            for provider in PROVIDER_CALLS:
                assert call(stack, token, peer, xff=xff, tls=tls, provider=provider) == 200
                sent += 1
    requests.get(f"{stack.url}/v1/realtime?model=m", timeout=10,
                 headers={**upgrade, "authorization": f"Bearer {token}",
                          "x-forwarded-for": "203.0.113.9"})
    recorded = stack.upstream_requests()
    assert len(recorded) >= sent
    for record in recorded:
        names = {name for name, _ in record["headers"]}
        assert not names & set(ABOUT_THE_CLIENT), (record["path"], names)
        text = json.dumps(record["headers"])
        assert peer not in text and "203.0.113.9" not in text, record["headers"]


class InternalLoopback(Stack):
    """The operator marks loopback as internal (`internal_address_config`): Envoy then adds
    `x-envoy-internal: true`; the admin cluster points at the mock, so both kinds of route
    are recorded."""

    def render(self, out, **overrides):
        super().render(out, **overrides)
        config = yaml.safe_load(out.read_text())
        for listener in config["static_resources"]["listeners"]:
            hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
            hcm["internal_address_config"] = {
                "cidr_ranges": [{"address_prefix": "127.0.0.0", "prefix_len": 8}]}
        out.write_text(yaml.safe_dump(config))


def test_envoys_internal_marker_stops_at_the_provider_routes():
    s = InternalLoopback(render_extra=lambda s: [
        "--token-service-admin", s.mock_url.removeprefix("http://")]).start()
    try:
        token = s.mint()["token"]
        # Internal: a loopback peer with no x-forwarded-for of its own; external: with one.
        for xff in (None, "203.0.113.9"):
            for provider in PROVIDER_CALLS:
                assert call(s, token, "127.0.0.26", xff=xff, provider=provider) == 200
        requests.get(f"{s.url}/admin/x", timeout=10)
        *providers, admin = s.upstream_requests()
        assert len(providers) == 2 * len(PROVIDER_CALLS) and admin["path"] == "/admin/x"
        # Envoy did add it (so the removal is what keeps it from the providers)...
        assert ("x-envoy-internal", "true") in [tuple(h) for h in admin["headers"]]
        # ...and the providers got none of what it adds about the client.
        for record in providers:
            names = {name for name, _ in record["headers"]}
            assert not names & set(ABOUT_THE_CLIENT), (record["path"], names)
    finally:
        s.stop()
        s.cleanup()


def login(stack, password: str, source: str, xff: str | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", stack.proxy_port, timeout=10,
                                      source_address=(source, 0))
    headers = {"content-type": "application/json"}
    if xff is not None:
        headers["x-forwarded-for"] = xff
    try:
        conn.request("POST", "/admin/login", body=json.dumps({"password": password}),
                     headers=headers)
        r = conn.getresponse()
        r.read()
        return r.status
    finally:
        conn.close()


def test_the_admin_login_throttle_counts_the_real_peer_not_its_claims(stack):
    attacker, victim = "127.0.0.27", "127.0.0.28"
    for n in range(10):
        assert login(stack, "wrong-password-0000", attacker, xff=f"198.51.100.{n}") == 401
    assert login(stack, stack.admin_secret, attacker, xff="198.51.100.99") == 429
    # Naming the victim in x-forwarded-for did not fill the victim's bucket.
    for _ in range(10):
        login(stack, "wrong-password-0000", "127.0.0.29", xff=victim)
    assert login(stack, stack.admin_secret, victim) == 200


# --- behind trusted proxies ------------------------------------------------------------------


def test_trusted_hops_take_the_address_the_proxy_in_front_wrote(make_stack):
    """--xff-num-trusted-hops 1: Envoy sits behind one load balancer (here every request
    comes from 127.0.0.1, as from a balancer), which appends the client to x-forwarded-for."""
    s = make_stack(plugin_config=THROTTLE,
                   render_extra=lambda _: ["--xff-num-trusted-hops", "1"])
    lb = "127.0.0.1"
    # The client's own claims come first; only the entry the balancer wrote counts.
    codes = [call(s, f"ptk_behind_lb_{n:04d}_abcdefghijklm", lb, xff=f"10.0.0.{n}, 198.51.100.7")
             for n in range(40)]
    assert codes.count(429) >= 40 - 2 * MAX, codes
    # Another client behind the same balancer has its own budget, and its tokens work.
    assert call(s, "ptk_behind_lb_other_abcdefghijkl", lb, xff="198.51.100.8") == 401
    assert call(s, s.mint("openai")["token"], lb, xff="198.51.100.8") == 200
    assert call(s, s.mint("openai")["token"], lb, xff="198.51.100.7") == 429
    # The admin login throttle counts the same client Envoy derived.
    for n in range(10):
        assert login(s, "wrong-password-0000", lb, xff=f"10.9.9.{n}, 198.51.100.7") == 401
    assert login(s, s.admin_secret, lb, xff="198.51.100.7") == 429
    assert login(s, s.admin_secret, lb, xff="198.51.100.8") == 200
    # Providers still get none of it.
    for record in s.upstream_requests():
        names = {name for name, _ in record["headers"]}
        assert not names & set(ABOUT_THE_CLIENT), names
        assert "198.51.100" not in json.dumps(record["headers"])
