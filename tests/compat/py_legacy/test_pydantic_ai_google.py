"""pydantic-ai's Google model (`pydantic-ai-slim[google]`, which needs google-genai<3, so it lives
here rather than beside the OpenAI and Anthropic models in `py/test_pydantic_ai.py`):
GoogleModel + GoogleProvider on google-genai 2.x (`x-goog-api-key`, `/v1beta`): a run, a streamed
run, and structured output."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.google import GoogleModel
from pydantic_ai.providers.google import GoogleProvider

from tests.compat.checks import GOOG_GEMINI, assert_forwarded, recorded

MODEL = "gemini-2.5-flash"


class City(BaseModel):
    name: str
    population: int


def test_run_stream_and_structured_output(stack, tokens):
    token = tokens.good()
    model = GoogleModel(MODEL, provider=GoogleProvider(api_key=token, base_url=stack.url))
    agent = Agent(model)
    assert agent.run_sync("say hi").output == "hi"

    async def streamed() -> str:
        async with agent.run_stream("say hi") as run:
            return "".join([t async for t in run.stream_text(delta=True)])

    assert asyncio.run(streamed()) == "hi"
    city = Agent(model, output_type=City).run_sync("a city").output
    assert isinstance(city, City) and city.name == "hi"
    reqs = recorded(stack)
    paths = [r["path"] for r in reqs]
    assert paths == [f"/v1beta/models/{MODEL}:generateContent",
                     f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                     f"/v1beta/models/{MODEL}:generateContent"], paths
    for rec in reqs:
        assert_forwarded(rec, token, GOOG_GEMINI)
