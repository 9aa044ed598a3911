"""instructor (on openai 2.x: Bearer; on anthropic 1.x: `x-api-key` + anthropic-version): a
structured response model through the forced tool call, plain and (OpenAI) as a partial stream.
The provider SDK's usage on the completion instructor keeps (`_raw_response`) equals what the
token-service recorded."""

from __future__ import annotations

import anthropic
import instructor
import openai
from pydantic import BaseModel

from tests.compat.checks import (BEARER_OPENAI, X_API_KEY_ANTHROPIC, assert_forwarded,
                                 assert_metered, from_anthropic, from_openai_chat, recorded)

MSG = [{"role": "user", "content": "a city"}]


class City(BaseModel):
    name: str
    population: int


def test_openai_tools_mode(stack, tokens):
    token = tokens.good()
    client = instructor.from_openai(openai.OpenAI(base_url=stack.url + "/v1", api_key=token, max_retries=0))
    city = client.chat.completions.create(model="gpt-4o-mini", response_model=City, messages=MSG,
                                          max_retries=0)
    assert city.model_dump() == {"name": "hi", "population": 1}
    parts = list(client.chat.completions.create_partial(model="gpt-4o-mini", response_model=City,
                                                        messages=MSG, max_retries=0))
    assert parts[-1].name == "hi"
    reqs = recorded(stack)
    assert len(reqs) == 2 and '"stream":true' in reqs[1]["body"].replace(" ", "")
    for rec in reqs:
        assert_forwarded(rec, token, BEARER_OPENAI, path="/v1/chat/completions")
    # The partial stream did not ask for usage and shows none; its reply is the plain one's.
    assert_metered(stack, token, "gpt-4o-mini", from_openai_chat(city._raw_response.usage) * 2, 2)


def test_anthropic_tools_mode(stack, tokens):
    token = tokens.good()
    client = instructor.from_anthropic(anthropic.Anthropic(base_url=stack.url, api_key=token, max_retries=0))
    city = client.messages.create(model="claude-opus-5", max_tokens=64, response_model=City,
                                  messages=MSG, max_retries=0)
    assert city.model_dump() == {"name": "hi", "population": 1}
    (rec,) = recorded(stack)
    assert_forwarded(rec, token, X_API_KEY_ANTHROPIC, path="/v1/messages")
    assert_metered(stack, token, "claude-opus-5", from_anthropic(city._raw_response.usage), 1)
