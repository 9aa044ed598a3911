"""langchain-openai `ChatOpenAI` (on the openai SDK: Bearer): invoke and stream, on OpenAI and on
Gemini's OpenAI-compatible route. LangChain's `usage_metadata` equals what the token-service
recorded (a stream shows none unless `stream_usage`: the proxy asks for it upstream all the same)."""

from __future__ import annotations

from langchain_openai import ChatOpenAI

from tests.compat.checks import (BEARER_GEMINI, BEARER_OPENAI, assert_forwarded, assert_metered,
                                 from_langchain, recorded)


def test_invoke_and_stream(stack, tokens):
    token = tokens.good()
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=stack.url + "/v1", api_key=token, max_retries=0)
    plain = llm.invoke("say hi")
    assert plain.content == "hi"
    chunks = list(llm.stream("say hi"))
    assert "".join(c.content for c in chunks) == "hi"
    assert all(c.usage_metadata is None for c in chunks)
    reqs = recorded(stack)
    assert len(reqs) == 2
    for rec in reqs:
        assert_forwarded(rec, token, BEARER_OPENAI, path="/v1/chat/completions")
    assert_metered(stack, token, "gpt-4o-mini", from_langchain(plain.usage_metadata) * 2, 2)


def test_gemini_openai_compatible_route(stack, tokens):
    token = tokens.good("gemini")
    llm = ChatOpenAI(model="gemini-2.5-flash", base_url=stack.url + "/v1beta/openai", api_key=token,
                     max_retries=0)
    plain = llm.invoke("say hi")
    assert plain.content == "hi"
    (rec,) = recorded(stack)
    assert_forwarded(rec, token, BEARER_GEMINI, path="/v1beta/openai/chat/completions")
    assert_metered(stack, token, "gemini-2.5-flash", from_langchain(plain.usage_metadata), 1)
