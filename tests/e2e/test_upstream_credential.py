"""Provider errors about the operator's key, through the real Envoy (issue 10, item 14).

Once a token was accepted and the real key went upstream, a provider 401/403 (and Gemini's
400 `API_KEY_INVALID`) means the provider refused the operator's key: the client gets the
provider's status in the provider's shape, saying the proxy's upstream credential was refused,
and never a fragment of the key (OpenAI quotes it masked: `sk-proj-****…INEL`). Any other error
that quotes the key has it masked in place. Successes and unrelated errors pass byte for byte.
The stack runs with realistic keys so that "no fragment" means something."""

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
from .provider_calls import SHAPES, call
from .test_websocket import LIVE, raw_handshake, ws_url

#: Real-looking keys: public prefix, then the secret part no client may ever see any of.
KEYS = {
    "OPENAI_API_KEY": "sk-proj-N3v8Qk2LmZr7Tx9WbYc4Hd6Fg1Js5Ap0UeKiOoPqRsTuVwXyZ1INEL",
    "ANTHROPIC_API_KEY": "sk-ant-api03-Zq8Wm3Rk7Lp2Tx6Nb9Vc4Hd1Fg5Js0AeKiOoPqRsTuVwXy-7b3QAA",
    "GEMINI_API_KEY": "AIzaSyD4x9Qk2LmZr7Tx9WbYc4Hd6Fg1Js5Ap0Ue",
}
PREFIXES = {"OPENAI_API_KEY": "sk-proj-", "ANTHROPIC_API_KEY": "sk-ant-api03-",
            "GEMINI_API_KEY": "AIza"}
ROUTE_KEY = {"openai": "OPENAI_API_KEY", "anthropic": "ANTHROPIC_API_KEY",
             "gemini": "GEMINI_API_KEY", "gemini_openai": "GEMINI_API_KEY"}
MESSAGE = ("The provider refused this proxy's upstream credential (the operator's API key or "
           "its account); your proxy token was accepted. Contact the operator of this proxy.")

STACK_SETTINGS = {"keys": KEYS, "rate_limit": "1000/60"}


def visible(resp: requests.Response) -> str:
    """Everything the client sees of a response: status line, headers, body."""
    head = "\n".join(f"{k}: {v}" for k, v in resp.headers.items())
    return f"{resp.status_code}\n{head}\n\n{resp.content.decode('utf-8', 'replace')}"


def assert_no_fragment(text: str) -> None:
    """No key, and no 4 consecutive characters of any key's secret part, anywhere in `text`."""
    for name, key in KEYS.items():
        secret = key[len(PREFIXES[name]):]
        assert key not in text
        for i in range(len(secret) - 3):
            assert secret[i:i + 4] not in text, (name, secret[i:i + 4], text)


@pytest.fixture(scope="module")
def token(stack):
    return stack.mint()["token"]


def counters(stack) -> dict[str, int]:
    text = requests.get(f"http://127.0.0.1:{stack.admin_port}/stats?filter=wasmcustom.ptk.upstream",
                        timeout=5).text
    return {line.split(": ")[0]: int(line.split(": ")[1]) for line in text.splitlines() if ": " in line}


def test_the_mock_quotes_the_real_key_masked_as_openai_does(stack):
    """The control: straight from the mock, OpenAI's invalid-key error shows the key's tail."""
    key = KEYS["OPENAI_API_KEY"]
    r = requests.post(f"{stack.mock_url}/v1/chat/completions", json={},
                      headers={"authorization": f"Bearer {key}", "x-mock-error": "invalid_key"})
    assert r.status_code == 401
    assert r.json()["error"]["message"].startswith(f"Incorrect API key provided: sk-proj-***")
    assert key[-4:] in r.text


@pytest.mark.parametrize("route", list(SHAPES))
def test_an_invalid_operator_key_is_answered_in_the_providers_shape(stack, token, route):
    for attempt in ("check", "cache"):  # the first call is checked, the second cached
        resp = call(stack.url, token, route, {"x-mock-error": "invalid_key"})
        status = 400 if route == "gemini" else 401
        assert resp.status_code == status, (route, attempt, resp.text)
        assert resp.headers["content-type"].startswith("application/json")
        body = resp.json()
        shape = SHAPES[route]
        if shape == "openai":
            assert body == {"error": {"message": MESSAGE, "type": "invalid_request_error",
                                      "param": None, "code": "upstream_credential_refused"}}
        elif shape == "anthropic":
            assert body == {"type": "error",
                            "error": {"type": "authentication_error", "message": MESSAGE}}
        else:
            assert body == {"error": {"code": 400, "message": MESSAGE,
                                      "status": "INVALID_ARGUMENT"}}
            # Gemini's body was replaced within the length it had announced.
            assert int(resp.headers["content-length"]) == len(resp.content)
        assert_no_fragment(visible(resp))
    assert len(stack.upstream_requests()) == 2, "both calls were forwarded with the real key"


@pytest.mark.parametrize("route", list(SHAPES))
def test_a_provider_403_keeps_its_status(stack, token, route):
    resp = call(stack.url, token, route, {"x-mock-status": "403"})
    assert resp.status_code == 403
    body = resp.json()
    message = body["error"]["message"]
    assert message == MESSAGE
    assert_no_fragment(visible(resp))


def test_a_browser_gets_the_replacement_decorated(stack, token):
    resp = call(stack.url, token, "openai",
                {"x-mock-error": "invalid_key", "origin": "https://app.example"})
    assert resp.status_code == 401
    assert resp.headers["access-control-allow-origin"] == "https://app.example"
    assert "retry-after" in resp.headers["access-control-expose-headers"].split(", ")


@pytest.mark.parametrize("mode", ["quote_key", "quote_key_full"])
@pytest.mark.parametrize("status", ["404", "429", "500"])
def test_any_other_error_quoting_the_key_has_it_masked(stack, token, mode, status):
    for route in SHAPES:
        resp = call(stack.url, token, route, {"x-mock-error": mode, "x-mock-status": status})
        assert resp.status_code == int(status), (route, resp.text)
        assert int(resp.headers["content-length"]) == len(resp.content)
        message = resp.json()["error"]["message"]
        assert message.startswith("Quota exceeded for API key ") and message.endswith(". Retry later.")
        assert "*" in message
        assert_no_fragment(visible(resp))


def _fixed(body: bytes, status: int | None = None, content_type: str = "application/json") -> dict:
    headers = {"x-mock-body": base64.b64encode(body).decode(),
               "x-mock-content-type": content_type}
    if status is not None:
        headers["x-mock-status"] = str(status)
    return headers


#: Bodies that look close to a key but are not one of its fragments.
UNRELATED = [
    b'{"error":{"message":"model gpt-9 does not exist","type":"invalid_request_error"}}',
    b'{"error":{"code":400,"message":"* GenerateContentRequest.model: unexpected model name format\\n","status":"INVALID_ARGUMENT"}}',
    b'{"type":"error","error":{"type":"overloaded_error","message":"INELIGIBLE ***INELIGIBLE sk-proj-"}}',
    os.urandom(512) + b"\xff\xfe\x00",
    b"",
]


@pytest.mark.parametrize("status", [None, 400, 404, 409, 422, 429, 500, 503])
def test_successes_and_unrelated_errors_pass_byte_for_byte(stack, token, status):
    for route in SHAPES:
        for body in UNRELATED:
            extra = _fixed(body, status)
            resp = call(stack.url, token, route, extra)
            assert resp.status_code == (status or 200)
            assert resp.content == body, (route, status)
            # The headers are the mock's own (Envoy adds date, server and its service time).
            key = KEYS[ROUTE_KEY[route]]
            direct = requests.post(f"{stack.mock_url}/v1beta/models/m:generateContent"
                                   if route == "gemini" else f"{stack.mock_url}/v1/chat/completions",
                                   headers={**extra, "authorization": f"Bearer {key}"}, timeout=5)
            assert direct.content == body
            skip = {"date", "server", "x-envoy-upstream-service-time"}
            got = {k.lower(): v for k, v in resp.headers.items() if k.lower() not in skip}
            assert got.get("content-type") == direct.headers["content-type"]
            assert got.get("content-length") == str(len(body))


def test_a_streamed_success_passes_untouched(stack, token):
    events = b"".join(b'data: {"n":%d,"text":"...INEL sk-proj-***"}\n\n' % i for i in range(50))
    resp = call(stack.url, token, "openai", _fixed(events, None, "text/event-stream"))
    assert resp.status_code == 200 and resp.content == events


def test_a_streamed_error_is_masked_without_being_held(stack, token):
    key = KEYS["OPENAI_API_KEY"]
    body = b'data: {"error":{"message":"bad key sk-proj-***' + key[-4:].encode() + b'"}}\n\n'
    resp = call(stack.url, token, "openai", _fixed(body, 500, "text/event-stream"))
    assert resp.status_code == 500 and len(resp.content) == len(body)
    assert_no_fragment(visible(resp))


def test_a_refused_realtime_handshake_is_plain_text_without_the_key(stack, token):
    r = raw_handshake(stack, "/v1/realtime?model=gpt-realtime",
                      {"authorization": f"Bearer {token}", "x-mock-error": "invalid_key"})
    assert (r.status_code, r.text) == (401, MESSAGE)
    assert r.headers["content-type"].startswith("text/plain")
    assert_no_fragment(visible(r))
    # The subprotocol form, refused with 403.
    r = raw_handshake(stack, "/v1/realtime?model=gpt-realtime",
                      {"sec-websocket-protocol": f"realtime, openai-insecure-api-key.{token}",
                       "x-mock-status": "403"})
    assert (r.status_code, r.text) == (403, MESSAGE)
    assert [h["kind"] for h in stack.upstream_requests()] == ["websocket", "websocket"]


def test_a_refused_live_handshake_keeps_its_status(stack, token):
    for status in ("401", "403"):
        r = raw_handshake(stack, LIVE, {"x-goog-api-key": token, "x-mock-status": status})
        assert (r.status_code, r.text) == (int(status), MESSAGE)
    # Any other refusal comes back as sent, minus the key.
    r = raw_handshake(stack, LIVE, {"x-goog-api-key": token, "x-mock-error": "quote_key",
                                    "x-mock-status": "429"})
    assert r.status_code == 429 and r.json()["error"]["message"].startswith("Quota exceeded")
    assert_no_fragment(visible(r))


def test_an_open_websocket_is_searched_only_in_its_first_frames(stack, token):
    tail_frame = f"key tail ***{KEYS['OPENAI_API_KEY'][-4:]}"

    async def echo(frames: list[str]) -> list[str]:
        async with aiohttp.ClientSession() as session:
            url = URL(ws_url(stack, "/v1/realtime?model=m"), encoded=True)
            async with session.ws_connect(url, headers={"authorization": f"Bearer {token}"}) as ws:
                got = []
                for frame in frames:
                    await ws.send_str(frame)
                    got.append((await ws.receive(timeout=5)).data)
                await ws.close()
                return got

    # Within the first 64 KiB of server frames a fragment of the key is masked, the rest kept.
    got = asyncio.run(echo(["hello", tail_frame]))
    assert got[0] == "hello" and len(got[1]) == len(tail_frame)
    assert_no_fragment(got[1])
    # After them the conversation passes unread, byte for byte.
    filler = ["x" * 16_000] * 5
    got = asyncio.run(echo([*filler, tail_frame]))
    assert got == [*filler, tail_frame]


def test_the_class_is_counted_and_logged_never_the_key(stack, token):
    before = counters(stack)
    call(stack.url, token, "anthropic", {"x-mock-error": "invalid_key"})
    call(stack.url, token, "gemini", {"x-mock-error": "invalid_key"})
    call(stack.url, token, "openai", {"x-mock-error": "quote_key"})
    time.sleep(1.5)  # counters are flushed on the tick
    after = counters(stack)
    prefix = "wasmcustom.ptk."
    assert after[prefix + "upstream_credential_refused.anthropic"] > before.get(
        prefix + "upstream_credential_refused.anthropic", 0)
    assert after[prefix + "upstream_credential_refused.gemini"] > before.get(
        prefix + "upstream_credential_refused.gemini", 0)
    assert after[prefix + "upstream_key_masked"] > before.get(prefix + "upstream_key_masked", 0)
    logs = stack.logs()
    assert "anthropic refused the proxy's upstream credential (status 401)" in logs
    assert "gemini refused the proxy's upstream credential (status 400" in logs
    assert "masked a fragment of the upstream credential in a response from openai (status 429)" in logs
    assert_no_fragment(logs)
    assert REAL_KEYS["OPENAI_API_KEY"] not in logs


def test_a_compressed_provider_error_is_read_too(stack, token):
    """Google's front end gzips even a small JSON error for a client that accepts gzip (the
    mock does with x-mock-gzip): the filter asks providers for identity so it can read them."""
    gz = {"x-mock-gzip": "1", "accept-encoding": "gzip, deflate, br"}
    resp = call(stack.url, token, "gemini", {"x-mock-error": "invalid_key", **gz})
    assert resp.status_code == 400 and resp.json()["error"]["message"] == MESSAGE
    resp = call(stack.url, token, "openai", {"x-mock-error": "quote_key", **gz})
    assert resp.status_code == 429
    assert_no_fragment(visible(resp))
    sent = [dict(r["headers"]).get("accept-encoding") for r in stack.upstream_requests()]
    assert sent == ["identity", "identity"]


def test_an_error_header_quoting_the_key_is_masked(stack, token):
    tail = KEYS["OPENAI_API_KEY"][-6:]
    extra = {"x-mock-status": "429",
             "x-mock-headers": json.dumps({"x-debug-key": f"sk-proj-****{tail}", "x-other": "kept"})}
    resp = call(stack.url, token, "openai", extra)
    assert resp.status_code == 429
    assert resp.headers["x-other"] == "kept"
    assert len(resp.headers["x-debug-key"]) == len(f"sk-proj-****{tail}")
    assert_no_fragment(visible(resp))


def test_a_realtime_session_refused_after_the_upgrade_never_shows_the_key(stack, token):
    """OpenAI's Realtime API accepts the upgrade of a refused key, sends an error event quoting
    it masked, then closes with 3000: the event reaches the client with the key masked inside
    its frame; the client's permessage-deflate offer is not passed on (a compressed frame could
    not be searched)."""
    async def session() -> tuple[str, int | None, str]:
        async with aiohttp.ClientSession() as s:
            url = URL(ws_url(stack, "/v1/realtime?model=gpt-realtime"), encoded=True)
            headers = {"authorization": f"Bearer {token}", "x-mock-error": "invalid_key_event",
                       "sec-websocket-extensions": "permessage-deflate; client_max_window_bits"}
            async with s.ws_connect(url, headers=headers) as ws:
                event = await ws.receive(timeout=5)
                closing = await ws.receive(timeout=5)
                return event.data, ws.close_code, closing.extra or ""
    event, code, reason = asyncio.run(session())
    message = json.loads(event)["error"]["message"]
    assert message.startswith("Incorrect API key provided: ") and "*" in message
    assert (code, reason) == (3000, "invalid_request_error.invalid_api_key")
    assert_no_fragment(event)
    handshake = [r for r in stack.upstream_requests() if r["kind"] == "websocket"][-1]
    assert "sec-websocket-extensions" not in dict(handshake["headers"])
