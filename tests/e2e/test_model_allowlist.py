"""A token's model allow-list through the real Envoy with the request-body hold filter
(envoy.yaml's `ptk_body_hold`, after ptk): an allowed model is forwarded as sent, a refused one
gets 403 `model_not_allowed` in the provider's shape and the provider (the mock) never hears of
it; the body's model (OpenAI, Anthropic, streamed), the Gemini path and a Realtime handshake's
`?model=`; cached verdicts; a bodiless POST; the hold only for limited tokens; large bodies;
and the refusal when the hold filter is said to be absent."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import time

import aiohttp
import pytest
import requests
from yarl import URL

from .harness import REAL_KEYS

MODELS = "gpt-5*,claude-sonnet-4*,gemini-2.5-*,gpt-realtime"
HOLD = "x-ptk-hold-body"


def limited(stack) -> str:
    return stack.mint("openai,anthropic,gemini", "--models", MODELS)["token"]


def openai(stack, token: str, body, path: str = "/v1/chat/completions", **kw):
    data = json.dumps(body) if isinstance(body, dict) else body
    return requests.post(f"{stack.url}{path}", data=data, timeout=20,
                         headers={"authorization": f"Bearer {token}",
                                  "content-type": "application/json"}, **kw)


def chat(model: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def http_seen(stack) -> list[dict]:
    return [r for r in stack.upstream_requests() if r["kind"] == "http"]


def assert_refused(r: requests.Response, shape: str, model: str) -> None:
    assert r.status_code == 403, (r.status_code, r.text)
    body = r.json()
    if shape == "gemini":
        assert body["error"]["status"] == "PERMISSION_DENIED"
    else:
        assert body["error"]["type"] == "permission_error"
        if shape == "openai":
            assert body["error"]["code"] == "model_not_allowed"
    assert model in body["error"]["message"]


def test_an_allowed_body_model_is_forwarded_as_sent_without_the_mark(stack):
    token = limited(stack)
    sent = json.dumps(chat("gpt-5-mini"))
    r = openai(stack, token, sent)
    assert r.status_code == 200, r.text
    [seen] = http_seen(stack)
    assert seen["body"] == sent
    assert HOLD not in dict(seen["headers"])
    assert dict(seen["headers"])["authorization"] == f"Bearer {REAL_KEYS['OPENAI_API_KEY']}"


@pytest.mark.parametrize("provider", ["openai", "anthropic", "gemini"])
def test_a_refused_model_is_a_403_in_the_providers_shape_and_never_forwarded(stack, provider):
    token = limited(stack)
    if provider == "openai":
        r = openai(stack, token, chat("gpt-4o"))
    elif provider == "anthropic":
        r = requests.post(f"{stack.url}/v1/messages", timeout=20, json={
            "model": "claude-opus-4-1", "max_tokens": 8,
            "messages": [{"role": "user", "content": "hi"}]},
            headers={"x-api-key": token, "anthropic-version": "2023-06-01"})
    else:
        r = requests.post(f"{stack.url}/v1beta/models/gemini-1.5-pro:generateContent",
                          timeout=20, headers={"x-goog-api-key": token},
                          json={"contents": [{"parts": [{"text": "hi"}]}]})
    model = {"openai": "gpt-4o", "anthropic": "claude-opus-4-1", "gemini": "gemini-1.5-pro"}
    assert_refused(r, provider, model[provider])
    assert stack.upstream_requests() == []


def test_allowed_anthropic_and_gemini_requests_are_forwarded(stack):
    token = limited(stack)
    r = requests.post(f"{stack.url}/v1/messages", timeout=20, json={
        "model": "claude-sonnet-4-5", "max_tokens": 8,
        "messages": [{"role": "user", "content": "hi"}]},
        headers={"x-api-key": token, "anthropic-version": "2023-06-01"})
    assert r.status_code == 200, r.text
    r = requests.post(f"{stack.url}/v1beta/models/gemini-2.5-flash:generateContent",
                      timeout=20, headers={"x-goog-api-key": token},
                      json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert r.status_code == 200, r.text
    assert [s["path"].split(":")[0] for s in http_seen(stack)] == [
        "/v1/messages", "/v1beta/models/gemini-2.5-flash"]


def test_a_streamed_request_is_checked_and_streams(stack):
    token = limited(stack)
    r = openai(stack, token, chat("gpt-5", stream=True), stream=True)
    assert r.status_code == 200
    assert r.headers["content-type"].startswith("text/event-stream")
    assert b"data: [DONE]" in b"".join(r.iter_content(None))
    assert_refused(openai(stack, token, chat("gpt-4o", stream=True)), "openai", "gpt-4o")
    assert len(http_seen(stack)) == 1


def test_a_cached_verdict_is_gated_the_same(stack):
    token = limited(stack)
    for _ in range(3):
        assert openai(stack, token, chat("gpt-5")).status_code == 200
        assert_refused(openai(stack, token, chat("gpt-4.1")), "openai", "gpt-4.1")
    assert [json.loads(s["body"])["model"] for s in http_seen(stack)] == ["gpt-5"] * 3
    # Escapes are decoded as the provider decodes them.
    escaped = '{"model":"gpt\\u002d4o","messages":[]}'
    assert_refused(openai(stack, token, escaped), "openai", "gpt-4o")
    duplicate = '{"model":"gpt-5","model":"gpt-4o","messages":[]}'
    assert openai(stack, token, duplicate).status_code == 403
    assert len(http_seen(stack)) == 3


def test_a_post_without_a_body_is_refused_for_a_limited_token_only(stack):
    token = limited(stack)
    for _ in range(2):  # fresh check, then the cached verdict
        r = openai(stack, token, None)
        assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed"
    assert stack.upstream_requests() == []
    plain = stack.mint()["token"]
    assert openai(stack, plain, None).status_code == 200
    assert len(http_seen(stack)) == 1


def ws_handshake(stack, path: str, token: str) -> requests.Response:
    """A raw handshake whose refusal body can be read."""
    headers = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
               "sec-websocket-key": base64.b64encode(os.urandom(16)).decode(),
               "authorization": f"Bearer {token}"}
    return requests.get(f"{stack.url}{path}", headers=headers, timeout=10)


def test_a_realtime_handshake_is_checked_on_its_model_query(stack):
    token = limited(stack)
    refused = ws_handshake(stack, "/v1/realtime?model=gpt-4o-realtime-preview", token)
    assert refused.status_code == 403 and "gpt-4o-realtime-preview" in refused.text
    assert stack.upstream_requests() == []

    async def connect() -> str:
        url = stack.url.replace("http://", "ws://") + "/v1/realtime?model=gpt-realtime"
        async with aiohttp.ClientSession() as session:
            async with session.ws_connect(URL(url, encoded=True),
                                          headers={"authorization": f"Bearer {token}"}) as ws:
                await ws.send_str('{"type":"session.update"}')
                return (await ws.receive(timeout=5)).data

    assert asyncio.run(connect()) == '{"type":"session.update"}'
    [seen] = stack.upstream_requests()
    assert seen["kind"] == "websocket" and HOLD not in dict(seen["headers"])


def slow_body(parts: list[bytes], gap_s: float):
    for n, part in enumerate(parts):
        if n:
            time.sleep(gap_s)
        yield part


def test_only_a_limited_tokens_request_is_held_until_its_body_is_in(stack):
    """The body comes in two parts 1.5 s apart: an unlimited token's request reaches the
    provider at once (its headers go on before the body ends), a limited token's only when
    its body is whole."""
    gap = 1.5
    body = json.dumps(chat("gpt-5")).encode()
    for token, held in ((stack.mint()["token"], False), (limited(stack), True)):
        stack.reset_upstream()
        start = time.time()
        r = openai(stack, token, slow_body([body[:10], body[10:]], gap))
        assert r.status_code == 200, r.text
        [seen] = http_seen(stack)
        assert seen["body"] == body.decode()
        assert HOLD not in dict(seen["headers"])
        waited = seen["time"] - start
        assert (waited >= gap) == held, (held, waited)


def test_a_large_allowed_body_passes_whole_and_one_over_the_buffer_limit_is_a_413(stack):
    token = limited(stack)
    filler = "x" * (900 * 1024)
    sent = json.dumps(chat("gpt-5", metadata={"filler": filler}))
    r = openai(stack, token, sent)
    assert r.status_code == 200, r.text
    [seen] = http_seen(stack)
    assert seen["body"] == sent
    # Past Envoy's per-connection buffer limit (1 MiB by default) a held body cannot be
    # read whole: Envoy answers 413 and nothing is forwarded. Unheld, it passes.
    stack.reset_upstream()
    big = json.dumps(chat("gpt-5", metadata={"filler": "x" * (2 * 1024 * 1024)}))
    assert openai(stack, token, big).status_code == 413
    assert stack.upstream_requests() == []
    assert openai(stack, stack.mint()["token"], big).status_code == 200


def test_without_the_hold_filter_a_body_model_is_refused(make_stack):
    stack = make_stack(plugin_config={"limits": {"body_hold": False}})
    token = limited(stack)
    r = openai(stack, token, chat("gpt-5"))
    assert r.status_code == 403
    assert "hold filter" in r.json()["error"]["message"]
    # The Gemini path names its model at the headers: no hold needed.
    r = requests.post(f"{stack.url}/v1beta/models/gemini-2.5-flash:generateContent",
                      timeout=20, headers={"x-goog-api-key": token},
                      json={"contents": [{"parts": [{"text": "hi"}]}]})
    assert r.status_code == 200, r.text
    assert len(http_seen(stack)) == 1
    assert "limits.body_hold" in stack.logs()
