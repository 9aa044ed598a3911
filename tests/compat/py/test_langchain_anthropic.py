"""langchain-anthropic `ChatAnthropic` (on anthropic 2.x: Bearer + anthropic-version): invoke and
stream; LangChain's `usage_metadata` equals what the token-service recorded."""

from __future__ import annotations

from langchain_anthropic import ChatAnthropic

from tests.compat.checks import BEARER_ANTHROPIC, assert_forwarded, assert_metered, from_langchain, recorded


def test_invoke_and_stream(stack, tokens):
    token = tokens.good()
    llm = ChatAnthropic(model="claude-sonnet-4-6", base_url=stack.url, api_key=token, max_retries=0,
                        max_tokens=16)
    plain = llm.invoke("say hi")
    assert plain.content == "hi"
    streamed = None
    for chunk in llm.stream("say hi"):  # chunks add up (usage_metadata too)
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and streamed.text == "hi"
    reqs = recorded(stack)
    assert len(reqs) == 2
    for rec in reqs:
        assert_forwarded(rec, token, BEARER_ANTHROPIC, path="/v1/messages")
    expected = from_langchain(plain.usage_metadata) + from_langchain(streamed.usage_metadata)
    assert_metered(stack, token, "claude-sonnet-4-6", expected, 2)
