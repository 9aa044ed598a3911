"""Issue 10 item 13 through the real Envoy: OpenAI Realtime client secrets (`ek_…`) minted
through the proxy with a proxy token are used untouched (the WebRTC `POST /v1/realtime/calls`,
the browser WebSocket subprotocol, a Bearer handshake): the mock sees the secret, never the
real key, never the proxy token. A secret the proxy never saw minted, an expired one, or one
whose minting token was disabled is refused and nothing is forwarded; disabling the token also
closes a Realtime session opened with its secret. With `ephemeral.pass_through` off (the
default) a secret is an ordinary unknown token.

The mock (tests/mock_upstream/realtime.py) mints like OpenAI and, like OpenAI, refuses an
`ek_` it did not mint or that expired."""

from __future__ import annotations

import asyncio
import http.client
import json
import time

import aiohttp
import pytest
import requests
from yarl import URL

from .flood import stat
from .harness import REAL_KEYS
from .test_stream_revocation import BOUND_S, seconds_until_closed
from .test_websocket import headers_of, raw_handshake, round_trip, ws_url

OPENAI_KEY = REAL_KEYS["OPENAI_API_KEY"]
STACK_SETTINGS = {"plugin_config": {"ephemeral": {"pass_through": True}}}
REALTIME = "/v1/realtime?model=gpt-realtime"
SDP_OFFER = "v=0\r\no=- 1 2 IN IP4 127.0.0.1\r\ns=-\r\nt=0 0\r\nm=audio 9 UDP/TLS/RTP/SAVPF 111\r\n"
UNKNOWN = "unknown or expired client secret"


def mint(stack, token: str, path: str = "/v1/realtime/client_secrets", body: dict | None = None,
         base: str | None = None, key: str | None = None) -> dict:
    """Mints a secret through the proxy with `token` (or at the mock directly with `key`)."""
    r = requests.post(f"{base or stack.url}{path}", json=body or {"session": {"type": "realtime"}},
                      headers={"authorization": f"Bearer {key or token}"}, timeout=10)
    assert r.status_code == 200, r.text
    answer = r.json()
    return answer.get("client_secret") or answer


def call(stack, secret: str, path: str = "/v1/realtime/calls",
         headers: dict | None = None) -> requests.Response:
    """The browser's WebRTC offer, as the OpenAI docs send it."""
    return requests.post(f"{stack.url}{path}", data=SDP_OFFER, timeout=10, headers={
        "authorization": f"Bearer {secret}", "content-type": "application/sdp", **(headers or {})})


def browser_protocols(secret: str) -> tuple[str, ...]:
    """What `OpenAIRealtimeWebSocket` offers (openai 6.49 `realtime/websocket.js`)."""
    return ("realtime", f"openai-insecure-api-key.{secret}", "openai-beta.realtime-v1")


def uses(stack) -> list[dict]:
    return [r for r in stack.upstream_requests()
            if not r["path"].startswith("/v1/realtime/client_secrets")]


def assert_untouched(record: dict, secret: str, token: str) -> None:
    """The secret went up as sent; no real key, no proxy token, anywhere."""
    text = json.dumps(record)
    assert secret in text
    assert token not in text, "the proxy token reached the upstream"
    for key in REAL_KEYS.values():
        assert key not in text, "a real key went up with a client secret"


def test_a_secret_minted_through_the_proxy_is_used_untouched_in_every_form(stack):
    token = stack.mint("openai")["token"]
    before = stat(stack.admin_port, "wasmcustom.ptk.ephemeral.secret_uses")
    secret = mint(stack, token)
    assert secret["value"].startswith("ek_") and secret["expires_at"] > time.time()
    ek = secret["value"]
    (minting,) = stack.upstream_requests()
    assert headers_of(minting)["authorization"] == [f"Bearer {OPENAI_KEY}"]
    stack.reset_upstream()

    # WebRTC (GA), from a page on another origin: the SDP answer comes back readable.
    r = call(stack, ek, headers={"origin": "https://app.example"})
    assert r.status_code == 201, r.text
    assert r.text.startswith("v=0") and r.headers["content-type"].startswith("application/sdp")
    assert r.headers["access-control-allow-origin"] == "https://app.example"
    # The beta WebRTC path.
    assert call(stack, ek, path="/v1/realtime?model=gpt-4o-realtime-preview").status_code == 201
    # The browser WebSocket (subprotocol) and a server-side client's Bearer handshake.
    sub = asyncio.run(round_trip(ws_url(stack, REALTIME), protocols=browser_protocols(ek)))
    bearer = asyncio.run(round_trip(ws_url(stack, REALTIME),
                                    headers={"authorization": f"Bearer {ek}"}))
    for got in (sub, bearer):
        assert got["text"] == '{"type":"session.update"}' and got["binary_ok"]
    assert sub["protocol"] == "realtime"

    recorded = uses(stack)
    assert [r["path"] for r in recorded] == [
        "/v1/realtime/calls", "/v1/realtime?model=gpt-4o-realtime-preview", REALTIME, REALTIME]
    for record in recorded:
        assert_untouched(record, ek, token)
    calls, beta, sub_ws, bearer_ws = (headers_of(r) for r in recorded)
    assert calls["authorization"] == [f"Bearer {ek}"]
    assert recorded[0]["body"] == SDP_OFFER
    assert sub_ws["sec-websocket-protocol"] == [",".join(browser_protocols(ek))]  # as sent
    assert "authorization" not in sub_ws
    assert bearer_ws["authorization"] == [f"Bearer {ek}"]
    time.sleep(1.2)  # one tick: counters flushed
    assert stat(stack.admin_port, "wasmcustom.ptk.ephemeral.secret_uses") - before == 4


@pytest.mark.parametrize("path", ["/v1/realtime/sessions", "/v1/realtime/transcription_sessions",
                                  "/v1/realtime/translations/client_secrets"])
def test_every_minting_endpoint_binds_its_secret(stack, path):
    token = stack.mint("openai")["token"]
    ek = mint(stack, token, path, {"model": "gpt-4o-realtime-preview"})["value"]
    stack.reset_upstream()
    ws_path = "/v1/realtime/translations" if "translations" in path else REALTIME
    got = asyncio.run(round_trip(ws_url(stack, ws_path), headers={"authorization": f"Bearer {ek}"}))
    assert got["binary_ok"]
    (record,) = uses(stack)
    assert_untouched(record, ek, token)


def test_a_secret_the_proxy_never_saw_minted_is_refused_and_nothing_forwarded(stack):
    # Minted at OpenAI directly with the operator's key (the mock), never through the proxy.
    elsewhere = mint(stack, "", base=stack.mock_url, key=OPENAI_KEY)["value"]
    forged = "ek_" + "0" * 32
    stack.reset_upstream()
    for secret in (elsewhere, forged):
        r = call(stack, secret)
        assert r.status_code == 401, r.text
        assert r.json()["error"] == {"message": UNKNOWN, "type": "invalid_request_error",
                                     "param": None, "code": "unknown_client_secret"}
        for headers in ({"authorization": f"Bearer {secret}"},
                        {"sec-websocket-protocol": ", ".join(browser_protocols(secret))}):
            h = raw_handshake(stack, REALTIME, headers)
            assert (h.status_code, h.text) == (401, UNKNOWN)
            assert h.headers["content-type"].startswith("text/plain")
    assert stack.upstream_requests() == []


def test_an_expired_secret_is_refused(stack):
    token = stack.mint("openai")["token"]
    secret = mint(stack, token, body={"expires_after": {"anchor": "created_at", "seconds": 2}})
    assert call(stack, secret["value"]).status_code == 201
    time.sleep(max(0.0, secret["expires_at"] - time.time()) + 0.2)
    stack.reset_upstream()
    r = call(stack, secret["value"])
    assert (r.status_code, r.json()["error"]["message"]) == (401, UNKNOWN)
    h = raw_handshake(stack, REALTIME, {"authorization": f"Bearer {secret['value']}"})
    assert (h.status_code, h.text) == (401, UNKNOWN)
    assert stack.upstream_requests() == []


async def open_realtime(stack, secret: str):
    session = aiohttp.ClientSession()
    ws = await session.ws_connect(URL(ws_url(stack, REALTIME), encoded=True),
                                  protocols=browser_protocols(secret))
    await ws.send_str("hello")
    assert (await ws.receive(timeout=5)).data == "hello"
    return session, ws


def test_disabling_the_minting_token_refuses_its_secrets_and_closes_their_sessions(stack):
    revoked = stack.mint("openai")
    kept = stack.mint("openai")
    ek = mint(stack, revoked["token"])["value"]
    other = mint(stack, kept["token"])["value"]

    async def scenario():
        mine = await open_realtime(stack, ek)
        theirs = await open_realtime(stack, other)
        try:
            await asyncio.sleep(2.5)  # a few ticks of revalidation: a valid token stays open
            assert not mine[1].closed
            stack.cli("tokens", "disable", revoked["hash"])
            took = await seconds_until_closed(mine[1], 10)
            await theirs[1].send_str("still here")
            assert (await theirs[1].receive(timeout=5)).data == "still here"
            return took
        finally:
            for session, ws in (mine, theirs):
                await ws.close()
                await session.close()

    took = asyncio.run(scenario())
    assert took is not None and took < BOUND_S, took
    stack.reset_upstream()
    r = call(stack, ek)
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_api_key")
    h = raw_handshake(stack, REALTIME, {"sec-websocket-protocol": ", ".join(browser_protocols(ek))})
    assert (h.status_code, h.text) == (401, "invalid or revoked token")
    assert stack.upstream_requests() == []
    # The other token's secret still works.
    assert call(stack, other).status_code == 201


def test_a_proxy_token_next_to_a_secret_takes_the_normal_path(stack):
    """Item 3's strict rule: a secret is relayed only when it is alone in every slot."""
    token = stack.mint("openai")["token"]
    ek = mint(stack, token)["value"]
    stack.reset_upstream()
    # A valid proxy token in the Bearer slot: checked, swapped, the secret stripped with it.
    got = asyncio.run(round_trip(ws_url(stack, REALTIME), headers={"authorization": f"Bearer {token}"},
                                 protocols=browser_protocols(ek)))
    assert got["binary_ok"]
    (record,) = stack.upstream_requests()
    assert headers_of(record)["authorization"] == [f"Bearer {OPENAI_KEY}"]
    assert headers_of(record)["sec-websocket-protocol"] == ["realtime, openai-beta.realtime-v1"]
    assert token not in json.dumps(record) and ek not in json.dumps(record)
    stack.reset_upstream()
    # The secret in the Bearer slot and the token elsewhere: the secret is checked as a token.
    r = call(stack, ek, headers={"api-key": token})
    assert (r.status_code, r.json()["error"]["code"]) == (401, "invalid_api_key")
    assert stack.upstream_requests() == []


def test_with_the_switch_off_a_secret_is_an_unknown_token(make_stack):
    stack = make_stack()
    token = stack.mint("openai")["token"]
    ek = mint(stack, token)["value"]  # minting is an ordinary call
    stack.reset_upstream()
    r = call(stack, ek)
    assert (r.status_code, r.json()["error"]["message"]) == (401, "invalid or revoked token")
    h = raw_handshake(stack, REALTIME, {"sec-websocket-protocol": ", ".join(browser_protocols(ek))})
    assert (h.status_code, h.text) == (401, "invalid or revoked token")
    assert stack.upstream_requests() == []


def test_using_a_secret_costs_no_rate_limit_unit(stack):
    # Uses are revalidated (validity only), not checked: the mint was the counted request.
    token = stack.mint("openai", "--rate-limit", "2/60")["token"]
    ek = mint(stack, token)["value"]
    time.sleep(1.2)  # past the minting verdict's TTL: each use below revalidates
    for _ in range(5):
        assert call(stack, ek).status_code == 201
    models = lambda: requests.get(f"{stack.url}/v1/models", timeout=10,  # noqa: E731
                                  headers={"authorization": f"Bearer {token}"})
    assert models().status_code == 200, "the uses spent the token's second unit"
    assert models().status_code == 429


def test_guessing_secrets_is_throttled_and_a_known_secret_keeps_working(stack):
    token = stack.mint("openai")["token"]
    ek = mint(stack, token)["value"]
    source = "127.0.0.33"

    def from_source(secret: str) -> int:
        conn = http.client.HTTPConnection("127.0.0.1", stack.proxy_port, timeout=10,
                                          source_address=(source, 0))
        try:
            conn.request("POST", "/v1/realtime/calls", body=SDP_OFFER.encode(),
                         headers={"authorization": f"Bearer {secret}",
                                  "content-type": "application/sdp"})
            r = conn.getresponse()
            r.read()
            return r.status
        finally:
            conn.close()

    assert from_source(ek) == 201  # the address's pair (address, minting token) is known good
    codes = [from_source(f"ek_guess{n:04d}") for n in range(60)]
    # 20 refusals per address per worker (the default), two workers.
    assert codes.count(401) <= 40 and codes.count(429) >= 20, codes
    assert from_source(ek) == 201, "the address's own secret stopped working"


def test_logs_hold_no_secret_token_or_key(stack):
    token = stack.mint("openai")["token"]
    ek = mint(stack, token)["value"]
    assert call(stack, ek).status_code == 201
    forged = "ek_forgedforthelogs0000000000000"
    assert call(stack, forged).status_code == 401
    time.sleep(1.2)  # access log flush
    logs = stack.logs()
    for secret in (ek, forged, token, *REAL_KEYS.values()):
        assert secret not in logs


def test_the_table_is_bounded_and_overflow_evicts_older_secrets(make_stack):
    slots = 16
    small = make_stack(plugin_config={"ephemeral": {"pass_through": True, "slots": slots},
                                      "guess_throttle": {"enabled": False}})
    token = small.mint("openai", "--rate-limit", "1000/60")["token"]
    secrets = []
    for _ in range(3 * slots):
        secrets.append(mint(small, token)["value"])
        assert call(small, secrets[-1]).status_code == 201, "the newest secret always works"
    alive = [s for s in secrets if call(small, s).status_code == 201]
    assert len(alive) <= slots, f"{len(alive)} secrets in a table of {slots}"
    assert secrets[-1] in alive
    for n in range(32):  # a full table, and still no forged secret matches one
        assert call(small, f"ek_forged{n:03d}").status_code == 401
    time.sleep(1.2)  # counters flush on the tick
    assert stat(small.admin_port, "wasmcustom.ptk.ephemeral.secrets_recorded") == 3 * slots
    assert stat(small.admin_port, "wasmcustom.ptk.ephemeral.secrets_evicted") >= 2 * slots
    assert stat(small.admin_port, "wasmcustom.ptk.refused.unknown_client_secret") >= 2 * slots + 32


def test_a_realtime_session_opened_with_a_secret_is_metered_for_its_token(stack):
    """Attack (issue 13): a Realtime session bills tokens whoever opens it. One opened with a
    client secret the token minted must be metered for that token, like one opened with the
    token itself, or minting a secret is a way around the meter (and the budgets)."""
    minted = stack.mint("openai")
    ek = mint(stack, minted["token"])["value"]
    logged_before = len(stack.access_log.read_text().splitlines())
    done = json.dumps({"type": "response.done", "response": {
        "model": "gpt-realtime",
        "usage": {"total_tokens": 15, "input_tokens": 10, "output_tokens": 5}}})

    async def scenario():
        session, ws = await open_realtime(stack, ek)
        try:
            await ws.send_str(done)  # the mock echoes it: the provider's event
            assert json.loads((await ws.receive(timeout=5)).data)["type"] == "response.done"
        finally:
            await ws.close()
            await session.close()

    asyncio.run(scenario())
    deadline, models = time.monotonic() + 10, []
    while time.monotonic() < deadline and not models:
        models = json.loads(stack.cli("tokens", "usage", minted["hash"], "--json").stdout)["models"]
        time.sleep(0.3)
    assert [(m["input_tokens"], m["output_tokens"]) for m in models] == [(10, 5)], models
    # Its access-log line names the provider; the token stays "-" (only its hash is known
    # where the secret is used) and the secret never shows.
    deadline, lines = time.monotonic() + 10, []
    while time.monotonic() < deadline and not lines:
        lines = [line for line in stack.access_log.read_text().splitlines()[logged_before:]
                 if '"GET /v1/realtime' in line and '" 101 ' in line]
        time.sleep(0.3)
    assert lines, stack.access_log.read_text()[-2000:]
    assert " provider=openai token=- " in lines[-1], lines[-1]
    assert ek not in stack.access_log.read_text()
