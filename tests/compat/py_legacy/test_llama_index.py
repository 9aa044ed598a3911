"""LlamaIndex LLM packages: `llama-index-llms-openai` (openai 2.x: Bearer), `-anthropic`
(anthropic 1.x: `x-api-key` + anthropic-version) and `-google-genai` (google-genai 2.x:
`x-goog-api-key`, `/v1beta`): complete, chat and stream_complete. The usage in each response's
`raw` (the provider SDK's own object) equals what the token-service recorded; llama-index's
own `additional_kwargs` counts follow OpenAI's names but not always its definitions (Gemini's
`completion_tokens` leaves out thoughts), so they are not what is compared.

llama-index-llms-anthropic 0.12.3 breaks on anthropic 2.x by itself (it instantiates
`MessageParam`, a Union there: "Cannot instantiate typing.Union"), and on anthropic 1.x it may
only be used with a model in its no-temperature list (1.x dropped `temperature`), hence
anthropic 1.17.0 and claude-opus-5 here."""

from __future__ import annotations

from llama_index.core.llms import ChatMessage
from llama_index.llms.anthropic import Anthropic
from llama_index.llms.google_genai import GoogleGenAI
from llama_index.llms.openai import OpenAI

from tests.compat.checks import (BEARER_OPENAI, GOOG_GEMINI, X_API_KEY_ANTHROPIC, Usage,
                                 assert_forwarded, assert_metered, from_anthropic, from_gemini,
                                 from_openai_chat, recorded)

GEMINI = "gemini-2.5-flash"


def exercise(llm) -> tuple:
    """complete, chat and stream_complete; their `raw`s (the stream's last)."""
    complete = llm.complete("say hi")
    assert complete.text == "hi"
    chat = llm.chat([ChatMessage(role="user", content="say hi")])
    assert chat.message.content == "hi"
    streamed = list(llm.stream_complete("say hi"))
    assert "".join(r.delta or "" for r in streamed) == "hi"
    return complete.raw, chat.raw, streamed[-1].raw


def test_openai(stack, tokens):
    token = tokens.good()
    complete, chat, last = exercise(OpenAI(model="gpt-4o-mini", api_base=stack.url + "/v1",
                                           api_key=token, max_retries=0))
    reqs = recorded(stack)
    assert len(reqs) == 3
    for rec in reqs:
        assert_forwarded(rec, token, BEARER_OPENAI, path="/v1/chat/completions")
    # The stream did not ask for usage (the proxy did, and hid it): the mock's reply is the same.
    assert last.usage is None
    plain = from_openai_chat(complete.usage)
    assert_metered(stack, token, "gpt-4o-mini", plain + from_openai_chat(chat.usage) + plain, 3)


def test_anthropic(stack, tokens):
    token = tokens.good()
    raws = exercise(Anthropic(model="claude-opus-5", base_url=stack.url, api_key=token,
                              max_retries=0, max_tokens=16))
    reqs = recorded(stack)
    assert len(reqs) == 3
    for rec in reqs:
        assert_forwarded(rec, token, X_API_KEY_ANTHROPIC, path="/v1/messages")
    # The stream's last raw is its message_delta, whose usage is cumulative.
    expected = sum((from_anthropic(raw["usage"]) for raw in raws), start=Usage())
    assert_metered(stack, token, "claude-opus-5", expected, 3)


def test_google_genai(stack, tokens):
    token = tokens.good()
    raws = exercise(GoogleGenAI(model=GEMINI, api_key=token, http_options={"base_url": stack.url},
                                max_retries=0))
    reqs = recorded(stack)
    paths = [r["path"] for r in reqs]
    assert paths.count(f"/v1beta/models/{GEMINI}:generateContent") == 2, paths
    assert paths.count(f"/v1beta/models/{GEMINI}:streamGenerateContent?alt=sse") == 1, paths
    for rec in reqs:
        assert_forwarded(rec, token, GOOG_GEMINI, path_prefix="/v1beta/models/")
    expected = sum((from_gemini(raw["usage_metadata"]) for raw in raws), start=Usage())
    assert_metered(stack, token, GEMINI, expected, 3)
