"""langchain-openai `ChatOpenAI` (on the openai SDK: Bearer): invoke and stream, on OpenAI and on
Gemini's OpenAI-compatible route."""

from __future__ import annotations

from langchain_openai import ChatOpenAI

from tests.compat.checks import BEARER_GEMINI, BEARER_OPENAI, assert_forwarded, recorded


def test_invoke_and_stream(stack, tokens):
    token = tokens.good()
    llm = ChatOpenAI(model="gpt-4o-mini", base_url=stack.url + "/v1", api_key=token, max_retries=0)
    assert llm.invoke("say hi").content == "hi"
    assert "".join(c.content for c in llm.stream("say hi")) == "hi"
    reqs = recorded(stack)
    assert len(reqs) == 2
    for rec in reqs:
        assert_forwarded(rec, token, BEARER_OPENAI, path="/v1/chat/completions")


def test_gemini_openai_compatible_route(stack, tokens):
    token = tokens.good("gemini")
    llm = ChatOpenAI(model="gemini-2.5-flash", base_url=stack.url + "/v1beta/openai", api_key=token,
                     max_retries=0)
    assert llm.invoke("say hi").content == "hi"
    (rec,) = recorded(stack)
    assert_forwarded(rec, token, BEARER_GEMINI, path="/v1beta/openai/chat/completions")
