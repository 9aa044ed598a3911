"""A hostile client against a configured provider through the real Envoy: path tricks sent
byte for byte (no client-side normalisation), other slots and WebSocket upgrades under the
prefix. Whatever reaches the mock upstream, each real key is only ever on its own provider's
host, and the proxy token never goes up. Plus a filter configured for a provider the
token-service does not know: 503, never forwarded."""

from __future__ import annotations

import http.client
import json
import subprocess
import sys
from urllib.parse import urlsplit

import pytest

from .harness import REAL_KEYS, ROOT, SERVICE
from .test_configured_provider import AUTHORITY, CHAT, SELFHOSTED_KEY, SelfhostedStack

TRICKS = [
    "/selfhosted/../v1/chat/completions",
    "/selfhosted/%2e%2e/v1/chat/completions",
    "/selfhosted/%2E%2E/%2E%2E/v1/chat/completions",
    "//selfhosted/v1/chat/completions",
    "/SELFHOSTED/v1/chat/completions",
    "/selfhosted;x=1/v1/chat/completions",
    "/selfhosted?/v1/chat/completions",
    "/selfhostedX/v1/chat/completions",
    "/selfhosted",
    "/selfhosted/selfhosted/v1/chat/completions",
    "/selfhosted/v1beta/openai/chat/completions",
    "/v1/../selfhosted/v1/chat/completions",
    "/%73elfhosted/v1/chat/completions",
    "/selfhosted%2fv1/chat/completions",
    "/selfhosted/v1/chat/completions#frag",
]


def slots(token: str) -> list[dict[str, str]]:
    bearer = {"authorization": f"Bearer {token}"}
    return [
        bearer,
        dict(bearer, **{"anthropic-version": "2023-06-01"}),
        {"x-api-key": token},
        {"x-goog-api-key": token},
        dict(bearer, upgrade="websocket", connection="Upgrade",
             **{"sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13"}),
        {"upgrade": "websocket", "connection": "Upgrade",
         "sec-websocket-key": "dGhlIHNhbXBsZSBub25jZQ==", "sec-websocket-version": "13",
         "sec-websocket-protocol": f"realtime, openai-insecure-api-key.{token}"},
    ]


def send_raw(stack, path: str, headers: dict[str, str], host: str = AUTHORITY) -> int:
    """Sends `path` exactly as written (http.client does not resolve dot segments)."""
    url = urlsplit(stack.url)
    conn = http.client.HTTPConnection(url.hostname, url.port, timeout=10)
    try:
        body = json.dumps(CHAT)
        method = "GET" if "upgrade" in headers else "POST"
        conn.putrequest(method, path, skip_host=True, skip_accept_encoding=True)
        conn.putheader("host", host)
        for name, value in headers.items():
            conn.putheader(name, value)
        if method == "POST":
            conn.putheader("content-type", "application/json")
            conn.putheader("content-length", str(len(body)))
        conn.endheaders(body.encode() if method == "POST" else None)
        return conn.getresponse().status
    except (http.client.HTTPException, OSError):
        return 0
    finally:
        conn.close()


def assert_each_key_on_its_own_host(records: list[dict], token: str) -> None:
    """The selfhosted key only on the selfhosted route, a built-in key never there. (The mock
    stands in for every provider: the built-in routes rewrite Host to the mock's own address,
    the selfhosted route keeps its authority, so Host tells the two apart.)"""
    for rec in records:
        text = json.dumps(rec)
        assert token not in text, rec
        headers = {name.lower(): value for name, value in rec["headers"]}
        selfhosted = headers.get("host") == AUTHORITY
        assert (SELFHOSTED_KEY in text) == selfhosted, rec
        for key in REAL_KEYS.values():
            assert not (selfhosted and key in text), rec


# One stack per test: the tricks refused for scope count against 127.0.0.1 in the guess
# throttle, which would then hold back the next test's fresh token.
@pytest.fixture
def stack():
    s = SelfhostedStack().start()
    try:
        yield s
    finally:
        s.stop()
        s.cleanup()


@pytest.mark.parametrize("client_host", [AUTHORITY, "api.openai.com", "proxy.local"])
def test_a_selfhosted_token_reaches_only_selfhosted_with_its_key(stack, client_host):
    token = stack.mint("selfhosted")["token"]
    stack.reset_upstream()
    for path in TRICKS:
        for headers in slots(token):
            status = send_raw(stack, path, headers, host=client_host)
            assert status != 0, ("no answer", path, list(headers))
    records = stack.upstream_requests()
    assert_each_key_on_its_own_host(records, token)
    for rec in records:
        headers = {name.lower(): value for name, value in rec["headers"]}
        assert headers["host"] == AUTHORITY, rec
        assert headers["authorization"] == f"Bearer {SELFHOSTED_KEY}", rec


@pytest.mark.parametrize("client_host", [AUTHORITY, "api.openai.com"])
def test_a_built_in_token_never_gets_the_selfhosted_key_or_host(stack, client_host):
    token = stack.mint("openai,anthropic,gemini")["token"]
    stack.reset_upstream()
    for path in TRICKS:
        for headers in slots(token):
            send_raw(stack, path, headers, host=client_host)
    records = stack.upstream_requests()
    assert records, "no trick reached a built-in provider at all: the test tests nothing"
    assert_each_key_on_its_own_host(records, token)
    for rec in records:
        assert SELFHOSTED_KEY not in json.dumps(rec), rec


class UnknownToServiceStack(SelfhostedStack):
    """The filter and Envoy know `selfhosted`; the token-service was never told (no
    PTK_PROVIDERS): the filter's checks name a provider the service cannot parse."""

    def service_env(self) -> dict[str, str]:
        env = super().service_env()
        env.pop("PTK_PROVIDERS", None)
        return env


def test_a_provider_the_token_service_does_not_know_fails_closed():
    s = UnknownToServiceStack().start()
    try:
        token = s.mint("openai,anthropic,gemini")["token"]
        s.reset_upstream()
        status = send_raw(s, "/selfhosted/v1/chat/completions",
                          {"authorization": f"Bearer {token}"})
        assert status == 503, status
        assert s.upstream_requests() == []
        # The built-in providers still work beside it.
        assert send_raw(s, "/v1/chat/completions", {"authorization": f"Bearer {token}"}) == 200
        # A token scoped while the service knew `selfhosted` (the provider since removed from
        # PTK_PROVIDERS): it keeps working for its other providers and still lists.
        env = dict(s.service_env(), PTK_PROVIDERS="selfhosted=SELFHOSTED_API_KEY",
                   SELFHOSTED_API_KEY=SELFHOSTED_KEY)
        made = subprocess.run([str(SERVICE), "tokens", "create", "--label", "was-selfhosted",
                               "--providers", "openai,selfhosted", "--json"],
                              env=env, cwd=ROOT, capture_output=True, text=True, check=True)
        scoped = json.loads(made.stdout)
        ok = send_raw(s, "/v1/chat/completions", {"authorization": f"Bearer {scoped['token']}"})
        assert ok == 200, ok
        listed = json.loads(s.cli("tokens", "list", "--json").stdout)
        mine = [t for t in listed if t["hash"] == scoped["hash"]]
        assert mine and mine[0]["providers"] == ["openai"], listed
    finally:
        s.stop()
        s.cleanup()


@pytest.mark.parametrize("value, message", [
    ("token_service=llm.internal=http://127.0.0.1:9", "name 'token_service' is taken"),
    ("token_service_admin=llm.internal=http://127.0.0.1:9", "is taken"),
    ("openai=llm.internal=http://127.0.0.1:9", "name 'openai' is taken"),
    ("unrouted=llm.internal=http://127.0.0.1:9", "is taken"),
    ("selfhosted=api.openai.com=http://127.0.0.1:9", "'api.openai.com' is another route's host"),
    ("selfhosted=API.Anthropic.com=http://127.0.0.1:9", "another route's host"),
])
def test_render_refuses_a_configured_provider_taking_a_name_or_host(tmp_path, value, message):
    done = subprocess.run(
        [sys.executable, str(ROOT / "tools/render_envoy.py"), "--out",
         str(tmp_path / "envoy.yaml"), "--configured-provider", value],
        capture_output=True, text=True, timeout=60)
    assert done.returncode == 2 and message in done.stderr, done.stderr
