"""WebSocket upgrades through the real Envoy (original Worker §1.3 and §2.3, DESIGN.md step 4):
every handshake slot, the real key in exactly one place (a header, never the URL), frames and
close codes both ways, upstream refusals passed through, local refusals in plain text."""

from __future__ import annotations

import asyncio
import base64
import json
import os
import ssl

import aiohttp
import requests
from yarl import URL

from .harness import REAL_KEYS

OPENAI_KEY = REAL_KEYS["OPENAI_API_KEY"]
GEMINI_KEY = REAL_KEYS["GEMINI_API_KEY"]
LIVE = "//ws/google.ai.generativelanguage.v1beta.GenerativeService.BidiGenerateContent"


def handshake(stack) -> dict:
    recorded = [r for r in stack.upstream_requests() if r["kind"] == "websocket"]
    assert len(recorded) == 1, recorded
    return recorded[0]


def headers_of(record: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in record["headers"]:
        out.setdefault(name, []).append(value)
    return out


def credentials(record: dict) -> dict[str, list[str]]:
    h = headers_of(record)
    return {n: h[n] for n in ("authorization", "x-api-key", "x-goog-api-key") if n in h}


async def round_trip(url: str, *, headers=None, protocols=(), ssl_context=None) -> dict:
    """Connects, echoes a text and a binary frame, closes with 4101, reports what happened."""
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(URL(url, encoded=True), headers=headers or {},
                                      protocols=protocols, ssl=ssl_context or True) as ws:
            await ws.send_str('{"type":"session.update"}')
            text = await ws.receive(timeout=5)
            payload = os.urandom(300) + b"\x00\xff"
            await ws.send_bytes(payload)
            binary = await ws.receive(timeout=5)
            await ws.close(code=4101, message=b"client bye")
            return {
                "protocol": ws.protocol,
                "text": text.data,
                "binary_ok": binary.type == aiohttp.WSMsgType.BINARY and binary.data == payload,
                "close_code": ws.close_code,
            }


async def server_close(url: str, headers: dict) -> tuple[int | None, str]:
    async with aiohttp.ClientSession() as session:
        async with session.ws_connect(URL(url, encoded=True), headers=headers) as ws:
            await ws.send_str("__close:4102:bye")
            msg = await ws.receive(timeout=5)
            return ws.close_code, msg.extra or ""


def ws_url(stack, path: str) -> str:
    return stack.url.replace("http://", "ws://") + path


def raw_handshake(stack, path: str, headers: dict) -> requests.Response:
    """A handshake whose refusal body we can read (aiohttp hides it)."""
    base = {"connection": "Upgrade", "upgrade": "websocket", "sec-websocket-version": "13",
            "sec-websocket-key": base64.b64encode(os.urandom(16)).decode()}
    return requests.get(f"{stack.url}{path}", headers={**base, **headers}, timeout=10)


def test_openai_realtime_bearer_header(stack):
    token = stack.mint()["token"]
    got = asyncio.run(round_trip(ws_url(stack, "/v1/realtime?model=gpt-realtime"),
                                 headers={"authorization": f"Bearer {token}",
                                          "openai-beta": "realtime=v1"}))
    assert got["text"] == '{"type":"session.update"}'
    assert got["binary_ok"]
    assert got["close_code"] == 4101  # the upstream answered the client's close code
    rec = handshake(stack)
    assert rec["path"] == "/v1/realtime?model=gpt-realtime"
    assert credentials(rec) == {"authorization": [f"Bearer {OPENAI_KEY}"]}
    assert headers_of(rec)["openai-beta"] == ["realtime=v1"]
    assert token not in json.dumps(rec)


def test_openai_realtime_subprotocol_form(stack):
    token = stack.mint()["token"]
    offered = ("realtime", f"openai-insecure-api-key.{token}", "openai-organization.org-1",
               "openai-beta.realtime-v1")
    got = asyncio.run(round_trip(ws_url(stack, "/v1/realtime?model=gpt-realtime"),
                                 protocols=offered))
    assert got["protocol"] == "realtime"  # the 101 carries what the upstream chose
    assert got["binary_ok"]
    rec = handshake(stack)
    assert credentials(rec) == {"authorization": [f"Bearer {OPENAI_KEY}"]}
    # The organization entry picks whose account pays: stripped (issue 10 item 12).
    assert headers_of(rec)["sec-websocket-protocol"] == ["realtime, openai-beta.realtime-v1"]
    assert token not in json.dumps(rec)


def test_openai_responses_websocket_mode(stack):
    token = stack.mint()["token"]
    got = asyncio.run(round_trip(ws_url(stack, "/v1/responses"),
                                 headers={"authorization": f"Bearer {token}"}))
    assert got["binary_ok"]
    assert credentials(handshake(stack)) == {"authorization": [f"Bearer {OPENAI_KEY}"]}


def test_gemini_live_query_key_moves_to_the_header(stack):
    token = stack.mint("gemini")["token"]
    got = asyncio.run(round_trip(ws_url(stack, f"{LIVE}?key={token}")))
    assert got["binary_ok"]
    rec = handshake(stack)
    assert rec["path"] == LIVE  # double slash kept, key gone: nothing secret in the URL
    assert credentials(rec) == {"x-goog-api-key": [GEMINI_KEY]}
    assert token not in json.dumps(rec)


def test_gemini_live_header_over_tls(stack):
    token = stack.mint("gemini")["token"]
    ctx = ssl.create_default_context(cafile=str(stack.ca_cert))
    url = stack.tls_url.replace("https://", "wss://") + LIVE.replace("v1beta", "v1")
    got = asyncio.run(round_trip(url, headers={"x-goog-api-key": token}, ssl_context=ctx))
    assert got["binary_ok"]
    rec = handshake(stack)
    assert credentials(rec) == {"x-goog-api-key": [GEMINI_KEY]}
    assert "key=" not in rec["path"]


def test_gemini_ephemeral_tokens_are_refused_by_default(stack):
    """The pass-through is opt-in (`ephemeral.pass_through`, issue 10 item 3; relayed when on:
    test_token_never_upstream.py). Off, a Google token is no proxy token: the Node form fills no
    slot (401 missing token), the Python form is checked like any token (401 invalid)."""
    path = LIVE.replace("BidiGenerateContent", "BidiGenerateContentConstrained")
    r = raw_handshake(stack, path + "?access_token=auth_tokens/google-minted-1", {})
    assert (r.status_code, r.text) == (401, "missing token")
    r = raw_handshake(stack, path, {"authorization": "Token auth_tokens/google-minted-1",
                                    "x-goog-api-key": "auth_tokens/google-minted-1"})
    assert (r.status_code, r.text) == (401, "invalid or revoked token")
    assert stack.upstream_requests() == []


def test_server_close_code_and_reason_reach_the_client(stack):
    token = stack.mint()["token"]
    code, reason = asyncio.run(server_close(ws_url(stack, "/v1/realtime"),
                                            {"authorization": f"Bearer {token}"}))
    assert (code, reason) == (4102, "bye")


def test_upstream_refusal_comes_back_as_sent(stack):
    # (A 401 or 403 refuses the operator's key: answered by the filter, see
    # test_upstream_credential.py.)
    token = stack.mint()["token"]
    r = raw_handshake(stack, "/v1/realtime?model=m",
                      {"authorization": f"Bearer {token}", "x-mock-status": "404"})
    assert r.status_code == 404
    assert "error" in r.json()
    assert len(stack.upstream_requests()) == 1


def test_local_refusals_are_plain_text_and_never_reach_upstream(stack):
    disabled = stack.mint()
    stack.cli("tokens", "disable", disabled["hash"])
    gemini_only = stack.mint("gemini")["token"]
    limited = stack.mint("openai", "--rate-limit", "1/60")["token"]
    assert raw_handshake(stack, "/v1/realtime", {"authorization": f"Bearer {limited}",
                                                 "x-mock-status": "401"}).status_code == 401
    stack.reset_upstream()
    cases = [
        ({}, 401, "missing token"),
        ({"authorization": "Bearer ptk_never_issued_000000000000"}, 401, "invalid or revoked token"),
        ({"authorization": f"Bearer {disabled['token']}"}, 401, "invalid or revoked token"),
        ({"sec-websocket-protocol": f"realtime, openai-insecure-api-key.{gemini_only}"}, 403,
         "token not allowed for provider"),
        ({"authorization": f"Bearer {limited}"}, 429, "rate limit exceeded"),
    ]
    for headers, status, message in cases:
        r = raw_handshake(stack, "/v1/realtime?model=m", headers)
        assert (r.status_code, r.text) == (status, message), headers
        assert r.headers["content-type"].startswith("text/plain")
        assert "access-control-allow-origin" not in r.headers
    assert raw_handshake(stack, "/v1/realtime", {"authorization": f"Bearer {limited}"}).headers["retry-after"]
    assert stack.upstream_requests() == []
