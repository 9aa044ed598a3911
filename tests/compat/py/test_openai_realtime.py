"""openai (Python) Realtime client over WebSocket (`client.realtime.connect()`, the `websockets`
package): the handshake carries the token as `Authorization: Bearer`, the proxy swaps in the real
key, and events round-trip through the mock's echo."""

from __future__ import annotations

import json

import openai

from tests.compat.checks import BEARER_OPENAI, assert_forwarded, recorded


def test_realtime_session_round_trip(stack, tokens):
    token = tokens.good("openai")
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=token, max_retries=0)
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.session.update(session={"type": "realtime", "instructions": "say hi"})
        echoed = json.loads(conn.recv_bytes())
        conn.send({"type": "response.create"})
        event = conn.recv()
    assert echoed["type"] == "session.update" and echoed["session"]["instructions"] == "say hi"
    assert event.type == "response.create"
    (rec,) = recorded(stack, "websocket")
    assert_forwarded(rec, token, BEARER_OPENAI, path="/v1/realtime?model=gpt-realtime")
