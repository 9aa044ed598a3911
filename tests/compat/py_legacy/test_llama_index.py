"""LlamaIndex LLM packages: `llama-index-llms-openai` (openai 2.x: Bearer), `-anthropic`
(anthropic 1.x: `x-api-key` + anthropic-version) and `-google-genai` (google-genai 2.x:
`x-goog-api-key`, `/v1beta`): complete, chat and stream_complete.

llama-index-llms-anthropic 0.12.3 breaks on anthropic 2.x by itself (it instantiates
`MessageParam`, a Union there: "Cannot instantiate typing.Union"), and on anthropic 1.x it may
only be used with a model in its no-temperature list (1.x dropped `temperature`), hence
anthropic 1.17.0 and claude-opus-5 here."""

from __future__ import annotations

from llama_index.core.llms import ChatMessage
from llama_index.llms.anthropic import Anthropic
from llama_index.llms.google_genai import GoogleGenAI
from llama_index.llms.openai import OpenAI

from tests.compat.checks import BEARER_OPENAI, GOOG_GEMINI, X_API_KEY_ANTHROPIC, assert_forwarded, recorded

GEMINI = "gemini-2.5-flash"


def exercise(llm) -> None:
    assert llm.complete("say hi").text == "hi"
    assert llm.chat([ChatMessage(role="user", content="say hi")]).message.content == "hi"
    assert "".join(r.delta or "" for r in llm.stream_complete("say hi")) == "hi"


def test_openai(stack, tokens):
    token = tokens.good()
    exercise(OpenAI(model="gpt-4o-mini", api_base=stack.url + "/v1", api_key=token, max_retries=0))
    reqs = recorded(stack)
    assert len(reqs) == 3
    for rec in reqs:
        assert_forwarded(rec, token, BEARER_OPENAI, path="/v1/chat/completions")


def test_anthropic(stack, tokens):
    token = tokens.good()
    exercise(Anthropic(model="claude-opus-5", base_url=stack.url, api_key=token, max_retries=0,
                       max_tokens=16))
    reqs = recorded(stack)
    assert len(reqs) == 3
    for rec in reqs:
        assert_forwarded(rec, token, X_API_KEY_ANTHROPIC, path="/v1/messages")


def test_google_genai(stack, tokens):
    token = tokens.good()
    exercise(GoogleGenAI(model=GEMINI, api_key=token, http_options={"base_url": stack.url}, max_retries=0))
    reqs = recorded(stack)
    paths = [r["path"] for r in reqs]
    assert paths.count(f"/v1beta/models/{GEMINI}:generateContent") == 2, paths
    assert paths.count(f"/v1beta/models/{GEMINI}:streamGenerateContent?alt=sse") == 1, paths
    for rec in reqs:
        assert_forwarded(rec, token, GOOG_GEMINI, path_prefix="/v1beta/models/")
