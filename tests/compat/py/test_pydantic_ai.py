"""pydantic-ai (`pydantic-ai-slim[openai,anthropic]`): an Agent on OpenAIChatModel (openai 3.x,
Bearer) and on AnthropicModel (anthropic 2.x, Bearer + anthropic-version): a run, a streamed run,
and structured output through the output tool. Its Google model needs google-genai<3, so it is
tested in `py_legacy/test_pydantic_ai_google.py`. pydantic-ai's own `RunUsage`, summed over the
three runs, equals what the token-service recorded."""

from __future__ import annotations

import asyncio

import pytest
from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.anthropic import AnthropicModel
from pydantic_ai.models.openai import OpenAIChatModel
from pydantic_ai.providers.anthropic import AnthropicProvider
from pydantic_ai.providers.openai import OpenAIProvider

from tests.compat.checks import (BEARER_ANTHROPIC, BEARER_OPENAI, Usage, assert_forwarded,
                                 assert_metered, from_pydantic_ai, recorded)


class City(BaseModel):
    name: str
    population: int


MODELS = {"openai": "gpt-4o-mini", "anthropic": "claude-sonnet-4-6"}


def model(provider: str, stack, token: str):
    if provider == "openai":
        return OpenAIChatModel(MODELS["openai"], provider=OpenAIProvider(base_url=stack.url + "/v1", api_key=token))
    return AnthropicModel(MODELS["anthropic"], provider=AnthropicProvider(base_url=stack.url, api_key=token))


EXPECT = {
    "openai": (BEARER_OPENAI, "/v1/chat/completions"),
    "anthropic": (BEARER_ANTHROPIC, "/v1/messages"),
}


@pytest.mark.parametrize("provider", EXPECT)
def test_run_stream_and_structured_output(stack, tokens, provider):
    token = tokens.good()
    agent = Agent(model(provider, stack, token))
    plain = agent.run_sync("say hi")
    assert plain.output == "hi"

    async def streamed():
        async with agent.run_stream("say hi") as run:
            text = "".join([t async for t in run.stream_text(delta=True)])
        return text, run.usage()

    text, streamed_usage = asyncio.run(streamed())
    assert text == "hi"
    structured = Agent(model(provider, stack, token), output_type=City).run_sync("a city")
    city = structured.output
    assert isinstance(city, City) and city.name == "hi"
    creds, path = EXPECT[provider]
    reqs = recorded(stack)
    assert len(reqs) == 3
    for rec in reqs:
        assert_forwarded(rec, token, creds, path=path)
    expected = sum((from_pydantic_ai(u) for u in (plain.usage(), streamed_usage, structured.usage())),
                   start=Usage())
    assert_metered(stack, token, MODELS[provider], expected, 3)
