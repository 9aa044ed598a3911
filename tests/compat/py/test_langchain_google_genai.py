"""langchain-google-genai `ChatGoogleGenerativeAI` (on google-genai 3.x: `x-goog-api-key`, `/v1`):
invoke and stream; LangChain's
`usage_metadata` equals what the token-service recorded."""

from __future__ import annotations

from langchain_google_genai import ChatGoogleGenerativeAI

from tests.compat.checks import GOOG_GEMINI, assert_forwarded, assert_metered, from_langchain, recorded

MODEL = "gemini-2.5-flash"


def test_invoke_and_stream(stack, tokens):
    token = tokens.good()
    llm = ChatGoogleGenerativeAI(model=MODEL, base_url=stack.url, google_api_key=token, max_retries=0)
    plain = llm.invoke("say hi")
    assert plain.content == "hi"
    streamed = None
    for chunk in llm.stream("say hi"):  # chunks add up (usage_metadata too)
        streamed = chunk if streamed is None else streamed + chunk
    assert streamed is not None and streamed.text == "hi"
    plain_rec, streamed_rec = recorded(stack)
    assert_forwarded(plain_rec, token, GOOG_GEMINI, path=f"/v1/models/{MODEL}:generateContent")
    assert_forwarded(streamed_rec, token, GOOG_GEMINI,
                     path=f"/v1/models/{MODEL}:streamGenerateContent?alt=sse")
    expected = from_langchain(plain.usage_metadata) + from_langchain(streamed.usage_metadata)
    assert_metered(stack, token, MODEL, expected, 2)
