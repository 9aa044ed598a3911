"""langchain-anthropic `ChatAnthropic` (on anthropic 2.x: Bearer + anthropic-version): invoke and
stream."""

from __future__ import annotations

from langchain_anthropic import ChatAnthropic

from tests.compat.checks import BEARER_ANTHROPIC, assert_forwarded, recorded


def test_invoke_and_stream(stack, tokens):
    token = tokens.good()
    llm = ChatAnthropic(model="claude-sonnet-4-6", base_url=stack.url, api_key=token, max_retries=0,
                        max_tokens=16)
    assert llm.invoke("say hi").content == "hi"
    assert "".join(c.text for c in llm.stream("say hi")) == "hi"
    reqs = recorded(stack)
    assert len(reqs) == 2
    for rec in reqs:
        assert_forwarded(rec, token, BEARER_ANTHROPIC, path="/v1/messages")
