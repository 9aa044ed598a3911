"""google-genai (Python) Live over WebSocket. The Python SDK always dials `wss://` (even for an
`http://` base URL), so it goes through the proxy's TLS listener; the handshake carries the token
as `x-goog-api-key`, the real key goes upstream in the same header and never in the URL. The
turn's `usage_metadata` as the SDK parses it is what the token-service recorded."""

from __future__ import annotations

import asyncio
import json
import ssl

from google import genai
from google.genai import types

from tests.compat.checks import GOOG_GEMINI, assert_forwarded, assert_metered, from_gemini, recorded

LIVE_PATH = "/ws/google.ai.generativelanguage.v1.GenerativeService.BidiGenerateContent"
MODEL = "gemini-live-2.5-flash"
#: Live's usage names the answer `responseTokenCount` (not `candidatesTokenCount`); thoughts are
#: apart from it, cached content inside the prompt.
SERVER_TURN = {"serverContent": {"modelTurn": {"role": "model", "parts": [{"text": "hi"}]},
                                 "turnComplete": True},
               "usageMetadata": {"promptTokenCount": 21, "cachedContentTokenCount": 8,
                                 "responseTokenCount": 13, "thoughtsTokenCount": 5,
                                 "totalTokenCount": 39}}


def test_live_session_round_trip(stack, tokens):
    token = tokens.good("gemini")
    # Only because the test CA is private: trust it for the WebSocket's TLS.
    ctx = ssl.create_default_context(cafile=str(stack.ca_cert))
    client = genai.Client(api_key=token, http_options=types.HttpOptions(
        base_url=stack.tls_url, async_client_args={"ssl": ctx}))

    async def session() -> tuple[dict, types.LiveServerMessage]:
        async with client.aio.live.connect(model=MODEL,
                                           config={"response_modalities": ["TEXT"]}) as s:
            await s.send_client_content(turns={"role": "user", "parts": [{"text": "say hi"}]})
            echoed = json.loads(await s._ws.recv())  # the mock echoes what the SDK sent
            # The echo stands in for the server: feed the SDK a server-shaped turn to parse.
            await s._ws.send(json.dumps(SERVER_TURN))
            async for message in s.receive():
                return echoed, message
        raise AssertionError("no message")

    echoed, message = asyncio.run(asyncio.wait_for(session(), 30))
    sent = echoed.get("client_content") or echoed.get("clientContent")  # 3.x sends snake_case
    assert sent["turns"][0]["parts"][0]["text"] == "say hi"
    assert message.text == "hi" and message.server_content.turn_complete
    (rec,) = recorded(stack, "websocket")
    assert_forwarded(rec, token, GOOG_GEMINI)
    assert rec["path"] == LIVE_PATH  # the same path Google serves, no key in the query
    # Recorded under the model the client's `setup` message named (no server message names
    # it), without its `models/` prefix.
    assert_metered(stack, token, MODEL.removeprefix("models/"),
                   from_gemini(message.usage_metadata), 1)
