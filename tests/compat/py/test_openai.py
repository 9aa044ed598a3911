"""openai (Python): Chat Completions and Responses, plain and streamed, on OpenAI and on Gemini's
OpenAI-compatible route; 401/403/429 surface as the SDK's own error classes."""

from __future__ import annotations

import openai
import pytest

from tests.compat.checks import BEARER_GEMINI, BEARER_OPENAI, assert_forwarded, recorded

PROVIDER = "openai"
MSG = [{"role": "user", "content": "say hi"}]


def client(stack, token: str, base: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + base, api_key=token, max_retries=0)


def test_chat_and_stream(stack, tokens):
    token = tokens.good()
    c = client(stack, token)
    r = c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert r.choices[0].message.content == "hi"
    chunks = c.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True)
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "hi"
    reqs = recorded(stack)
    assert len(reqs) == 2
    for rec in reqs:
        assert_forwarded(rec, token, BEARER_OPENAI, path="/v1/chat/completions")


def test_responses_and_stream(stack, tokens):
    token = tokens.good()
    c = client(stack, token)
    assert c.responses.create(model="gpt-4o-mini", input="say hi").output_text == "hi"
    with c.responses.stream(model="gpt-4o-mini", input="say hi") as s:
        final = s.get_final_response()
    assert final.output_text == "hi"
    for rec in recorded(stack):
        assert_forwarded(rec, token, BEARER_OPENAI, path="/v1/responses")


def test_gemini_openai_compatible_route(stack, tokens):
    token = tokens.good("gemini")
    c = client(stack, token, "/v1beta/openai")
    r = c.chat.completions.create(model="gemini-2.5-flash", messages=MSG)
    assert r.choices[0].message.content == "hi"
    text = "".join(ch.choices[0].delta.content or "" for ch in
                   c.chat.completions.create(model="gemini-2.5-flash", messages=MSG, stream=True)
                   if ch.choices)
    assert text == "hi"
    for rec in recorded(stack):
        assert_forwarded(rec, token, BEARER_GEMINI, path="/v1beta/openai/chat/completions")


@pytest.mark.parametrize("kind, error, message", [
    ("revoked", openai.AuthenticationError, "invalid or revoked token"),
    ("out_of_scope", openai.PermissionDeniedError, "token not allowed for provider"),
    ("rate_limited", openai.RateLimitError, "rate limit exceeded"),
])
def test_refusals_are_sdk_errors(stack, tokens, kind, error, message):
    token = getattr(tokens, kind)()
    c = client(stack, token)
    if kind == "rate_limited":
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
        stack.reset_upstream()
    with pytest.raises(error) as exc:
        c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert message in str(exc.value)
    assert exc.value.message and message in exc.value.message
    assert recorded(stack) == []
