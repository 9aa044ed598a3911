"""openai (Python) Realtime client over WebSocket (`client.realtime.connect()`, the `websockets`
package): the handshake carries the token as `Authorization: Bearer`, the proxy swaps in the real
key, and events round-trip through the mock's echo. A `response.done` the mock echoes back is
parsed by the SDK, and its `usage` is what the token-service recorded for the session."""

from __future__ import annotations

import json

import openai

from tests.compat.checks import (BEARER_OPENAI, assert_forwarded, assert_metered,
                                 from_openai_realtime, recorded)

#: A server's `session.created` and `response.done` (GA shapes): the mock echoes what the client
#: sends, so sending these has them come back from upstream, where the filter meters them (the
#: model from the session, the usage from each response). Realtime's `input_tokens` includes
#: the cached ones, as Chat Completions' `prompt_tokens` does.
SESSION_CREATED = {"type": "session.created", "event_id": "event_0", "session": {
    "type": "realtime", "object": "realtime.session", "id": "sess_1", "model": "gpt-realtime"}}
RESPONSE_DONE = {"type": "response.done", "event_id": "event_1", "response": {
    "object": "realtime.response", "id": "resp_1", "status": "completed", "output": [],
    "usage": {"total_tokens": 31, "input_tokens": 20, "output_tokens": 11,
              "input_token_details": {"cached_tokens": 6, "text_tokens": 12, "audio_tokens": 8,
                                      "image_tokens": 0},
              "output_token_details": {"text_tokens": 4, "audio_tokens": 7}}}}


def test_realtime_session_round_trip(stack, tokens):
    token = tokens.good("openai")
    client = openai.OpenAI(base_url=stack.url + "/v1", api_key=token, max_retries=0)
    with client.realtime.connect(model="gpt-realtime") as conn:
        conn.session.update(session={"type": "realtime", "instructions": "say hi"})
        echoed = json.loads(conn.recv_bytes())
        conn.send({"type": "response.create"})
        event = conn.recv()
        conn.send(SESSION_CREATED)
        assert conn.recv().type == "session.created"
        conn.send(RESPONSE_DONE)
        done = conn.recv()
    assert echoed["type"] == "session.update" and echoed["session"]["instructions"] == "say hi"
    assert event.type == "response.create"
    assert done.type == "response.done"
    (rec,) = recorded(stack, "websocket")
    assert_forwarded(rec, token, BEARER_OPENAI, path="/v1/realtime?model=gpt-realtime")
    assert_metered(stack, token, "gpt-realtime", from_openai_realtime(done.response.usage), 1)
