"""Budgeted WebSocket sessions through the real Envoy (issue 14): an OpenAI Realtime or Gemini
Live session (or a Responses session over a WebSocket) of a budgeted token holds one turn's reservation (the filter's default output cap,
4,096 tokens) from its handshake, and every request for a response is checked against what the
session holds before it is forwarded; when the budget cannot cover the next turn, the session is
closed with that request never reaching the provider. The mock answers each request for a
response with one of a fixed usage (`x-mock-ws-usage`). The stored spend equals the metered
usage, and the overshoot past the budget stays within the documented bound: one response's
(actual - per-turn reservation)+ (docs/wire-protocol.md, "Budgets")."""

from __future__ import annotations

import asyncio
import json
import time

import aiohttp
import pytest
from yarl import URL

from .test_budgets import budgets, metered

#: The per-turn reservation: the filter's default output cap (limits.default_output_tokens).
TURN = 4096
LIVE = "//ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


def ws_url(stack, path: str) -> str:
    return stack.url.replace("http://", "ws://") + path


async def session(url: str, headers: dict, ask: str, turns: int, live: bool) -> tuple[int, bool]:
    """Asks for `turns` responses one after the other: how many were answered, and whether the
    session was closed under the client (no answer to the next request)."""
    answered = 0
    async with aiohttp.ClientSession() as client:
        async with client.ws_connect(URL(url, encoded=True), headers=headers) as ws:
            if live:
                await ws.send_str('{"setup":{"model":"models/gemini-live-2.5-flash"}}')
                assert json.loads((await ws.receive(timeout=5)).data) == {"setupComplete": {}}
            for _ in range(turns):
                await ws.send_str(ask)
                while True:
                    msg = await ws.receive(timeout=10)
                    if msg.type != aiohttp.WSMsgType.TEXT:
                        return answered, True
                    event = json.loads(msg.data)
                    if event.get("type") in ("response.done", "response.completed") or (
                            event.get("serverContent", {}).get("turnComplete")):
                        answered += 1
                        break
            await ws.close()
    return answered, False


def settled(stack, token_hash: str, tokens: int) -> dict:
    """The token budget once the session's usage is recorded (with its holds released)."""
    deadline = time.monotonic() + 15
    while True:
        b, m = budgets(stack, token_hash), metered(stack, token_hash)
        if m[0] >= 1 and b["spent"] >= tokens:
            return b
        assert time.monotonic() < deadline, (b, m)
        time.sleep(0.3)


@pytest.mark.parametrize("api", ["realtime", "responses", "live"])
@pytest.mark.parametrize("budget,used,turns", [(10_000, 3_000, 2), (5_000, 6_000, 1)])
def test_a_session_past_its_budget_is_closed_within_the_bound(stack, api, budget, used, turns):
    """Turn k is forwarded only if (k-1) x used + TURN fits the budget, so the budget covers
    `turns`; the client asks for turns + 2; the one after the last covered is never answered
    and the session is closed; the stored spend is the metered usage; the overshoot past the
    budget is at most (used - TURN)+ (the second case: one response larger than its turn)."""
    live = api == "live"
    provider = "gemini" if live else "openai"
    minted = stack.mint(provider, "--token-budget", f"{budget}/day")
    token, token_hash = minted["token"], minted["hash"]
    usage = f"{used // 3},{used - used // 3}"
    if live:
        url = ws_url(stack, f"{LIVE}?key={token}")
        headers = {"x-mock-ws-usage": usage}
        ask = '{"clientContent":{"turns":[],"turnComplete":true}}'
    else:
        path = "/v1/realtime?model=gpt-realtime" if api == "realtime" else "/v1/responses"
        url = ws_url(stack, path)
        headers = {"authorization": f"Bearer {token}", "x-mock-ws-usage": usage}
        ask = '{"type":"response.create"}'
    stack.reset_upstream()
    answered, closed = asyncio.run(session(url, headers, ask, turns + 2, live))
    assert (answered, closed) == (turns, True)
    # The request for the turn the budget could not cover never reached the provider.
    [handshake] = [r for r in stack.upstream_requests() if r["kind"] == "websocket"]
    assert [m for m in handshake["messages"] if m == ask] == [ask] * turns
    b = settled(stack, token_hash, turns * used)
    requests_seen, incomplete, tokens = metered(stack, token_hash)
    # The stored spend is exactly what the meter read: the closed session had no response
    # running, so nothing more (no shortfall) is charged.
    assert tokens == turns * used and b["spent"] == tokens, (b, tokens)
    assert requests_seen == 1
    overshoot = max(0, b["spent"] - budget)
    assert overshoot <= max(0, used - TURN), (overshoot, b)


def test_a_handshake_without_room_for_one_turn_is_refused_with_429(stack):
    """Less room than one turn: the handshake gets the usual 429, the provider sees nothing."""
    minted = stack.mint("openai", "--token-budget", f"{TURN - 1}/day")
    stack.reset_upstream()

    async def connect():
        async with aiohttp.ClientSession() as client:
            try:
                await client.ws_connect(ws_url(stack, "/v1/realtime?model=gpt-realtime"),
                                        headers={"authorization": f"Bearer {minted['token']}"})
            except aiohttp.WSServerHandshakeError as e:
                return e.status
        return 101

    assert asyncio.run(connect()) == 429
    assert [r for r in stack.upstream_requests() if r["kind"] == "websocket"] == []
