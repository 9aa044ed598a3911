"""google-genai (Python 3.x, `x-goog-api-key`, default API version `v1`): generate_content plain
and streamed; 401/403/429 surface as `google.genai.errors.ClientError` with the code. The SDK's
own `usage_metadata` (thoughts outside the candidates) equals what the token-service recorded."""

from __future__ import annotations

import pytest
from google import genai
from google.genai import errors, types

from tests.compat.checks import GOOG_GEMINI, assert_forwarded, assert_metered, from_gemini, recorded

PROVIDER = "gemini"
MODEL = "gemini-2.5-flash"


def client(stack, token: str) -> genai.Client:
    return genai.Client(api_key=token, http_options=types.HttpOptions(
        base_url=stack.url, retry_options=types.HttpRetryOptions(attempts=1)))


def test_generate_and_stream(stack, tokens):
    token = tokens.good()
    c = client(stack, token)
    plain = c.models.generate_content(model=MODEL, contents="say hi")
    assert plain.text == "hi"
    chunks = list(c.models.generate_content_stream(model=MODEL, contents="say hi"))
    assert "".join(ch.text or "" for ch in chunks) == "hi"
    # Each chunk's usage_metadata is cumulative: the last one is the stream's.
    expected = from_gemini(plain.usage_metadata) + from_gemini(chunks[-1].usage_metadata)
    assert_metered(stack, token, MODEL, expected, 2)
    plain, streamed = recorded(stack)
    assert_forwarded(plain, token, GOOG_GEMINI, path=f"/v1/models/{MODEL}:generateContent")
    assert_forwarded(streamed, token, GOOG_GEMINI, path=f"/v1/models/{MODEL}:streamGenerateContent?alt=sse")


@pytest.mark.parametrize("kind, code, message", [
    ("revoked", 401, "invalid or revoked token"),
    ("out_of_scope", 403, "token not allowed for provider"),
    ("rate_limited", 429, "rate limit exceeded"),
])
def test_refusals_are_sdk_errors(stack, tokens, kind, code, message):
    token = getattr(tokens, kind)()
    c = client(stack, token)
    if kind == "rate_limited":
        c.models.generate_content(model=MODEL, contents="say hi")
        stack.reset_upstream()
    with pytest.raises(errors.ClientError) as exc:
        c.models.generate_content(model=MODEL, contents="say hi")
    assert exc.value.code == code
    assert exc.value.message == message
    assert recorded(stack) == []
