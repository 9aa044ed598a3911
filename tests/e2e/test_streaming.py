"""Responses stream through unbuffered: the client reads the first SSE event while the mock
upstream is still holding the last one."""

from __future__ import annotations

import requests

CHAT_STREAM = {"model": "gpt-4o-mini", "stream": True,
               "messages": [{"role": "user", "content": "hello"}]}


def read_event(lines) -> str:
    for line in lines:
        if line.startswith("data:"):
            return line
    raise AssertionError("stream ended before an event")


def test_first_sse_event_arrives_before_the_upstream_sends_the_last(stack):
    token = stack.mint()["token"]
    with requests.post(f"{stack.url}/v1/chat/completions", json=CHAT_STREAM, stream=True,
                       timeout=15, headers={"authorization": f"Bearer {token}", "x-mock-hold": "1"}) as r:
        assert r.status_code == 200
        assert r.headers["content-type"].startswith("text/event-stream")
        lines = r.iter_lines(decode_unicode=True)
        first = read_event(lines)
        assert "chat.completion.chunk" in first
        # The mock is still holding the rest; only now let it finish.
        stack.release_upstream()
        rest = [line for line in lines if line.startswith("data:")]
    assert rest[-1] == "data: [DONE]"


def test_anthropic_and_gemini_streams_pass(stack):
    token = stack.mint()["token"]
    r = requests.post(f"{stack.url}/v1/messages", stream=True, timeout=15,
                      json={"model": "claude", "max_tokens": 5, "stream": True, "messages": []},
                      headers={"x-api-key": token, "anthropic-version": "2023-06-01"})
    text = r.text
    assert "event: message_start" in text and "event: message_stop" in text
    r = requests.post(f"{stack.url}/v1beta/models/m:streamGenerateContent?alt=sse", json={},
                      headers={"x-goog-api-key": token}, timeout=15)
    assert r.text.count("data:") >= 2
