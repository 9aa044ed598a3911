"""langchain-google-genai `ChatGoogleGenerativeAI` (on google-genai 3.x: `x-goog-api-key`, `/v1`):
invoke and stream."""

from __future__ import annotations

from langchain_google_genai import ChatGoogleGenerativeAI

from tests.compat.checks import GOOG_GEMINI, assert_forwarded, recorded

MODEL = "gemini-2.5-flash"


def test_invoke_and_stream(stack, tokens):
    token = tokens.good()
    llm = ChatGoogleGenerativeAI(model=MODEL, base_url=stack.url, google_api_key=token, max_retries=0)
    assert llm.invoke("say hi").content == "hi"
    assert "".join(c.text for c in llm.stream("say hi")) == "hi"
    plain, streamed = recorded(stack)
    assert_forwarded(plain, token, GOOG_GEMINI, path=f"/v1/models/{MODEL}:generateContent")
    assert_forwarded(streamed, token, GOOG_GEMINI, path=f"/v1/models/{MODEL}:streamGenerateContent?alt=sse")
