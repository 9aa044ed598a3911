"""pydantic-ai's Google model (`pydantic-ai-slim[google]`, which needs google-genai<3, so it lives
here rather than beside the OpenAI and Anthropic models in `py/test_pydantic_ai.py`):
GoogleModel + GoogleProvider on google-genai 2.x (`x-goog-api-key`, `/v1beta`): a run, a streamed
run, and structured output. pydantic-ai's `RunUsage` (thoughts in the output, as ours) summed
over the three runs equals what the token-service recorded."""

from __future__ import annotations

import asyncio

from pydantic import BaseModel
from pydantic_ai import Agent
from pydantic_ai.models.google import GoogleModel
from pydantic_ai.providers.google import GoogleProvider

from tests.compat.checks import (GOOG_GEMINI, Usage, assert_forwarded, assert_metered,
                                 from_pydantic_ai, recorded)

MODEL = "gemini-2.5-flash"


class City(BaseModel):
    name: str
    population: int


def test_run_stream_and_structured_output(stack, tokens):
    token = tokens.good()
    model = GoogleModel(MODEL, provider=GoogleProvider(api_key=token, base_url=stack.url))
    agent = Agent(model)
    plain = agent.run_sync("say hi")
    assert plain.output == "hi"

    async def streamed():
        async with agent.run_stream("say hi") as run:
            text = "".join([t async for t in run.stream_text(delta=True)])
        return text, run.usage()

    text, streamed_usage = asyncio.run(streamed())
    assert text == "hi"
    structured = Agent(model, output_type=City).run_sync("a city")
    city = structured.output
    assert isinstance(city, City) and city.name == "hi"
    reqs = recorded(stack)
    paths = [r["path"] for r in reqs]
    assert paths == [f"/v1beta/models/{MODEL}:generateContent",
                     f"/v1beta/models/{MODEL}:streamGenerateContent?alt=sse",
                     f"/v1beta/models/{MODEL}:generateContent"], paths
    for rec in reqs:
        assert_forwarded(rec, token, GOOG_GEMINI)
    expected = sum((from_pydantic_ai(u) for u in (plain.usage(), streamed_usage, structured.usage())),
                   start=Usage())
    assert_metered(stack, token, MODEL, expected, 3)
