"""An OpenAI-compatible provider the operator configures (README "Adding a provider"), end to
end through the real Envoy: its own path prefix, authority and key, scoped like the others,
refusals in OpenAI's shape. The mock upstream stands in for it."""

from __future__ import annotations

import json
import time

import pytest
import requests

from .harness import REAL_KEYS, Stack

SELFHOSTED_KEY = "sk-REAL-selfhosted-93c1e7"
AUTHORITY = "llm.selfhosted.internal"
CHAT = {"model": "local-model", "messages": [{"role": "user", "content": "hello"}]}


class SelfhostedStack(Stack):
    """The stack with `selfhosted` configured on all three sides: plugin config, Envoy route,
    token-service (PTK_PROVIDERS and the key variable it names)."""

    def __init__(self, **settings):
        super().__init__(
            cache_ttl_ms=0,
            plugin_config={"providers": {"selfhosted": {
                "path_prefix": "/selfhosted/", "authority": AUTHORITY}}},
            service_extra_env={"PTK_PROVIDERS": "selfhosted=SELFHOSTED_API_KEY"},
            keys=dict(REAL_KEYS, SELFHOSTED_API_KEY=SELFHOSTED_KEY),
            render_extra=lambda s: ["--configured-provider",
                                    f"selfhosted={AUTHORITY}={s.mock_url}"],
            **settings,
        )


@pytest.fixture(scope="module")
def stack():
    s = SelfhostedStack().start()
    try:
        yield s
    finally:
        s.stop()
        s.cleanup()


def chat(stack, path: str, token: str) -> requests.Response:
    return requests.post(f"{stack.url}{path}", json=CHAT,
                         headers={"authorization": f"Bearer {token}"}, timeout=10)


def test_the_configured_provider_gets_its_own_key_never_the_token(stack):
    stack.reset_upstream()
    token = stack.mint("selfhosted")["token"]
    r = chat(stack, "/selfhosted/v1/chat/completions", token)
    assert r.status_code == 200, r.text
    [rec] = stack.upstream_requests()
    assert rec["path"] == "/v1/chat/completions"
    headers = {name.lower(): value for name, value in rec["headers"]}
    assert headers["authorization"] == f"Bearer {SELFHOSTED_KEY}"
    assert headers["host"] == AUTHORITY
    assert json.loads(rec["body"]) == CHAT
    assert token not in json.dumps(rec)
    for key in REAL_KEYS.values():
        assert key not in json.dumps(rec)


def test_a_token_not_scoped_to_it_gets_403_in_openai_shape(stack):
    stack.reset_upstream()
    token = stack.mint("openai,anthropic,gemini")["token"]
    r = chat(stack, "/selfhosted/v1/chat/completions", token)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "provider_not_allowed"
    assert r.json()["error"]["message"] == "token not allowed for provider"
    assert stack.upstream_requests() == []


def test_its_tokens_are_scoped_to_it_alone(stack):
    stack.reset_upstream()
    token = stack.mint("selfhosted")["token"]
    r = chat(stack, "/v1/chat/completions", token)
    assert r.status_code == 403, r.text
    assert r.json()["error"]["code"] == "provider_not_allowed"
    assert stack.upstream_requests() == []


def test_an_unknown_token_gets_401_in_openai_shape(stack):
    r = chat(stack, "/selfhosted/v1/chat/completions", "ptk_not_a_real_token_000000000000")
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "invalid_api_key"


def test_an_unconfigured_name_is_refused_at_token_creation(stack):
    out = stack.cli("tokens", "create", "--label", "x", "--providers", "mistral", check=False)
    assert out.returncode != 0
    assert 'unknown provider "mistral"' in out.stderr
    assert "selfhosted" in out.stderr


def refusal_counters(stack) -> dict[str, int]:
    """The per-provider `upstream_credential_refused` counters, by provider name."""
    family = "wasmcustom.ptk.upstream_credential_refused."
    text = requests.get(f"http://127.0.0.1:{stack.admin_port}/stats?filter={family}",
                        timeout=5).text
    pairs = (line.split(": ") for line in text.splitlines() if line.startswith(family))
    return {name[len(family):]: int(value) for name, value in pairs}


def test_a_refusal_of_its_key_counts_under_its_own_name_not_openai(stack):
    token = stack.mint("selfhosted")["token"]
    before = refusal_counters(stack)
    assert before["selfhosted"] == 0, before  # defined with the configuration
    r = requests.post(f"{stack.url}/selfhosted/v1/chat/completions", json=CHAT, timeout=10,
                      headers={"authorization": f"Bearer {token}", "x-mock-error": "invalid_key"})
    assert r.status_code == 401, r.text
    assert r.json()["error"]["code"] == "upstream_credential_refused"
    time.sleep(1.5)  # counters are flushed on the tick
    after = refusal_counters(stack)
    assert after["selfhosted"] == before["selfhosted"] + 1, after
    assert after["openai"] == before["openai"], after
    assert "selfhosted refused the proxy's upstream credential (status 401)" in stack.logs()
