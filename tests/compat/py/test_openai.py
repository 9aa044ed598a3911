"""openai (Python): Chat Completions and Responses, plain and streamed, on OpenAI and on Gemini's
OpenAI-compatible route, and embeddings; 401/403/429 surface as the SDK's own error classes. The
SDK's own `usage` equals what the token-service recorded for the token."""

from __future__ import annotations

import openai
import pytest

from tests.compat.checks import (BEARER_GEMINI, BEARER_OPENAI, Usage, assert_forwarded,
                                 assert_metered, from_openai_chat, from_openai_responses, recorded)

PROVIDER = "openai"
MSG = [{"role": "user", "content": "say hi"}]


def client(stack, token: str, base: str = "/v1") -> openai.OpenAI:
    return openai.OpenAI(base_url=stack.url + base, api_key=token, max_retries=0)


def test_chat_and_stream(stack, tokens):
    token = tokens.good()
    c = client(stack, token)
    r = c.chat.completions.create(model="gpt-4o-mini", messages=MSG)
    assert r.choices[0].message.content == "hi"
    chunks = list(c.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True))
    text = "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices)
    assert text == "hi"
    assert all(ch.usage is None for ch in chunks)  # not asked: the proxy's request stays hidden
    asked = list(c.chat.completions.create(model="gpt-4o-mini", messages=MSG, stream=True,
                                           stream_options={"include_usage": True}))
    streamed_usage = asked[-1].usage
    reqs = recorded(stack)
    assert len(reqs) == 3
    for rec in reqs:
        assert_forwarded(rec, token, BEARER_OPENAI, path="/v1/chat/completions")
    # The stream that did not ask shows no usage: the mock's reply is the plain call's.
    plain = from_openai_chat(r.usage)
    assert_metered(stack, token, "gpt-4o-mini", plain * 2 + from_openai_chat(streamed_usage), 3)


def test_responses_and_stream(stack, tokens):
    token = tokens.good()
    c = client(stack, token)
    plain = c.responses.create(model="gpt-4o-mini", input="say hi")
    assert plain.output_text == "hi"
    with c.responses.stream(model="gpt-4o-mini", input="say hi") as s:
        final = s.get_final_response()
    assert final.output_text == "hi"
    for rec in recorded(stack):
        assert_forwarded(rec, token, BEARER_OPENAI, path="/v1/responses")
    expected = from_openai_responses(plain.usage) + from_openai_responses(final.usage)
    assert_metered(stack, token, "gpt-4o-mini", expected, 2)


def test_embeddings(stack, tokens):
    token = tokens.good("openai")
    r = client(stack, token).embeddings.create(model="text-embedding-3-small", input=["a", "b"])
    assert len(r.data) == 2
    (rec,) = recorded(stack)
    assert_forwarded(rec, token, BEARER_OPENAI, path="/v1/embeddings")
    assert_metered(stack, token, "text-embedding-3-small", Usage(input=r.usage.prompt_tokens), 1)


def test_gemini_openai_compatible_route(stack, tokens):
    token = tokens.good("gemini")
    c = client(stack, token, "/v1beta/openai")
    r = c.chat.completions.create(model="gemini-2.5-flash", messages=MSG)
    assert r.choices[0].message.content == "hi"
    chunks = list(c.chat.completions.create(model="gemini-2.5-flash", messages=MSG, stream=True,
                                            stream_options={"include_usage": True}))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "hi"
    for rec in recorded(stack):
        assert_forwarded(rec, token, BEARER_GEMINI, path="/v1beta/openai/chat/completions")
    expected = from_openai_chat(r.usage) + from_openai_chat(chunks[-1].usage)
    assert_metered(stack, token, "gemini-2.5-flash", expected, 2)


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
