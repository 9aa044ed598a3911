"""anthropic (Python 2.x, which sends its key as `Authorization: Bearer` + `anthropic-version`):
Messages plain and streamed; 401/403/429 surface as the SDK's own error classes. The SDK's own
`usage` (cache reads and writes outside `input_tokens`) equals what the token-service recorded."""

from __future__ import annotations

import anthropic
import pytest

from tests.compat.checks import (BEARER_ANTHROPIC, assert_forwarded, assert_metered,
                                 from_anthropic, headers_of, recorded)

PROVIDER = "anthropic"
MODEL = "claude-sonnet-4-6"
MSG = [{"role": "user", "content": "say hi"}]


def client(stack, token: str) -> anthropic.Anthropic:
    return anthropic.Anthropic(base_url=stack.url, api_key=token, max_retries=0)


def test_messages_and_stream(stack, tokens):
    token = tokens.good()
    c = client(stack, token)
    r = c.messages.create(model=MODEL, max_tokens=16, messages=MSG)
    assert r.content[0].text == "hi"
    with c.messages.stream(model=MODEL, max_tokens=16, messages=MSG) as s:
        text = "".join(s.text_stream)
        final = s.get_final_message()
    assert text == "hi" and final.content[0].text == "hi"
    reqs = recorded(stack)
    assert len(reqs) == 2
    for rec in reqs:
        assert_forwarded(rec, token, BEARER_ANTHROPIC, path="/v1/messages")
        assert headers_of(rec)["anthropic-version"]
    assert_metered(stack, token, MODEL, from_anthropic(r.usage) + from_anthropic(final.usage), 2)


@pytest.mark.parametrize("kind, error, message", [
    ("revoked", anthropic.AuthenticationError, "invalid or revoked token"),
    ("out_of_scope", anthropic.PermissionDeniedError, "token not allowed for provider"),
    ("rate_limited", anthropic.RateLimitError, "rate limit exceeded"),
])
def test_refusals_are_sdk_errors(stack, tokens, kind, error, message):
    token = getattr(tokens, kind)()
    c = client(stack, token)
    if kind == "rate_limited":
        c.messages.create(model=MODEL, max_tokens=16, messages=MSG)
        stack.reset_upstream()
    with pytest.raises(error) as exc:
        c.messages.create(model=MODEL, max_tokens=16, messages=MSG)
    assert message in exc.value.message
    assert recorded(stack) == []
