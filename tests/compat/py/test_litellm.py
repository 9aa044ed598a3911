"""LiteLLM (Python SDK, `litellm.completion`) on all three providers, plain and streamed.
LiteLLM's OpenAI route uses the openai SDK (Bearer); its Anthropic and Gemini routes are its own
httpx code (`x-api-key` + `anthropic-version`, and `x-goog-api-key`). LiteLLM's `Usage` (every
provider mapped to OpenAI's definitions) equals what the token-service recorded."""

from __future__ import annotations

import litellm
import pytest

from tests.compat.checks import (BEARER_OPENAI, GOOG_GEMINI, X_API_KEY_ANTHROPIC, assert_forwarded,
                                 assert_metered, from_litellm, recorded)

MSG = [{"role": "user", "content": "say hi"}]

CASES = {
    # provider: (model, api_base suffix, credential upstream, upstream path)
    "openai": ("openai/gpt-4o-mini", "/v1", BEARER_OPENAI, "/v1/chat/completions", None),
    "anthropic": ("anthropic/claude-sonnet-4-6", "", X_API_KEY_ANTHROPIC, "/v1/messages", None),
    "gemini": ("gemini/gemini-2.5-flash", "/v1beta", GOOG_GEMINI,
               "/v1beta/models/gemini-2.5-flash:generateContent",
               "/v1beta/models/gemini-2.5-flash:streamGenerateContent?alt=sse"),
}


@pytest.mark.parametrize("provider", CASES)
def test_completion_and_stream(stack, tokens, provider):
    model, suffix, creds, path, stream_path = CASES[provider]
    token = tokens.good()
    kw = dict(model=model, messages=MSG, api_base=stack.url + suffix, api_key=token, num_retries=0,
              max_tokens=16)
    r = litellm.completion(**kw)
    assert r.choices[0].message.content == "hi"
    chunks = list(litellm.completion(stream=True, stream_options={"include_usage": True}, **kw))
    assert "".join(ch.choices[0].delta.content or "" for ch in chunks if ch.choices) == "hi"
    plain, streamed = recorded(stack)
    assert "say hi" in plain["body"]
    assert_forwarded(plain, token, creds, path=path)
    assert_forwarded(streamed, token, creds, path=stream_path or path)
    expected = from_litellm(r.usage) + from_litellm(chunks[-1].usage)
    assert_metered(stack, token, model.split("/", 1)[1], expected, 2)
