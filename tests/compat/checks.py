"""What every compat test asserts about the request the mock upstream received."""

from __future__ import annotations

import base64
import hashlib
import json
import time
from dataclasses import astuple, dataclass
from typing import Any

from tests.e2e.harness import REAL_KEYS

OPENAI_KEY = REAL_KEYS["OPENAI_API_KEY"]
ANTHROPIC_KEY = REAL_KEYS["ANTHROPIC_API_KEY"]
GEMINI_KEY = REAL_KEYS["GEMINI_API_KEY"]
CREDENTIAL_HEADERS = ("authorization", "x-api-key", "x-goog-api-key")

#: The one credential each route must carry upstream: {header: [value]}.
BEARER_OPENAI = {"authorization": [f"Bearer {OPENAI_KEY}"]}
BEARER_GEMINI = {"authorization": [f"Bearer {GEMINI_KEY}"]}  # Gemini's OpenAI-compatible route
BEARER_ANTHROPIC = {"authorization": [f"Bearer {ANTHROPIC_KEY}"]}  # Anthropic SDKs >= 2.x / 1.x
X_API_KEY_ANTHROPIC = {"x-api-key": [ANTHROPIC_KEY]}  # older SDKs, @ai-sdk/anthropic, litellm
GOOG_GEMINI = {"x-goog-api-key": [GEMINI_KEY]}


def headers_of(record: dict) -> dict[str, list[str]]:
    out: dict[str, list[str]] = {}
    for name, value in record["headers"]:
        out.setdefault(name.lower(), []).append(value)
    return out


def credentials(record: dict) -> dict[str, list[str]]:
    h = headers_of(record)
    return {name: h[name] for name in CREDENTIAL_HEADERS if name in h}


def body_text(record: dict) -> str:
    if record.get("body_base64"):
        return base64.b64decode(record["body"]).decode("utf-8", "replace")
    return record["body"] or ""


def assert_forwarded(record: dict, token: str, creds: dict[str, list[str]], *,
                     path: str | None = None, path_prefix: str | None = None) -> None:
    """The real key sits in exactly the expected slot, the proxy token is nowhere (headers, path,
    query, body), no real key rides in the URL, and the upstream path is the expected one."""
    assert credentials(record) == creds, f"credential slots upstream: {credentials(record)}"
    everything = json.dumps(record["headers"]) + record["path"] + body_text(record)
    assert token not in everything, "proxy token reached the upstream"
    for key in REAL_KEYS.values():
        assert key not in record["path"], "a real key rode in the upstream URL"
    if path is not None:
        assert record["path"] == path, record["path"]
    if path_prefix is not None:
        assert record["path"].startswith(path_prefix), record["path"]


def recorded(stack, kind: str = "http") -> list[dict]:
    return [r for r in stack.upstream_requests() if r["kind"] == kind]


# --- usage: the SDK's own numbers against what the token-service recorded ------------------

@dataclass(frozen=True)
class Usage:
    """Token counts in the token-service's normalised shape (README "Token usage (metering)"):
    `input` includes cache reads and writes, `output` includes reasoning."""

    input: int = 0
    cached: int = 0
    cache_write: int = 0
    output: int = 0
    reasoning: int = 0

    def __add__(self, other: Usage) -> Usage:
        return Usage(*(a + b for a, b in zip(astuple(self), astuple(other))))

    def __mul__(self, n: int) -> Usage:
        return Usage(*(a * n for a in astuple(self)))


def _n(obj: Any, *path: str) -> int:
    """The count at `path` in an SDK's usage object, attribute or key alike; 0 when absent or
    null (every SDK leaves out, or sets to None, the details a response did not carry)."""
    for name in path:
        if obj is None:
            return 0
        obj = obj.get(name) if isinstance(obj, dict) else getattr(obj, name, None)
    return int(obj or 0)


def from_openai_chat(u: Any) -> Usage:
    """Chat Completions' `usage` (and LiteLLM's `Usage`): the prompt includes cached tokens,
    the completion includes reasoning."""
    return Usage(input=_n(u, "prompt_tokens"),
                 cached=_n(u, "prompt_tokens_details", "cached_tokens"),
                 output=_n(u, "completion_tokens"),
                 reasoning=_n(u, "completion_tokens_details", "reasoning_tokens"))


def from_openai_responses(u: Any) -> Usage:
    """Responses' `usage`: the same definitions as Chat Completions."""
    return Usage(input=_n(u, "input_tokens"),
                 cached=_n(u, "input_tokens_details", "cached_tokens"),
                 output=_n(u, "output_tokens"),
                 reasoning=_n(u, "output_tokens_details", "reasoning_tokens"))


def from_openai_realtime(u: Any) -> Usage:
    """Realtime's `response.done` usage: Responses' definitions, but its details are spelt
    `input_token_details` / `output_token_details` (Responses: `input_tokens_details`), and
    it has no reasoning count."""
    return Usage(input=_n(u, "input_tokens"),
                 cached=_n(u, "input_token_details", "cached_tokens"),
                 output=_n(u, "output_tokens"))


def from_anthropic(u: Any) -> Usage:
    """Anthropic's `usage`: `input_tokens` excludes cache reads and writes, which ours adds."""
    read, write = _n(u, "cache_read_input_tokens"), _n(u, "cache_creation_input_tokens")
    return Usage(input=_n(u, "input_tokens") + read + write, cached=read, cache_write=write,
                 output=_n(u, "output_tokens"))


def from_gemini(m: Any) -> Usage:
    """google-genai's `usage_metadata` (Live's too): the prompt includes cached content, the
    candidates (Live: the response) exclude thoughts, which ours adds to the output."""
    thoughts = _n(m, "thoughts_token_count")
    answer = _n(m, "candidates_token_count") or _n(m, "response_token_count")  # Live: response_
    return Usage(input=_n(m, "prompt_token_count"), cached=_n(m, "cached_content_token_count"),
                 output=answer + thoughts, reasoning=thoughts)


def from_litellm(u: Any) -> Usage:
    """LiteLLM's `Usage`, OpenAI's shape with every provider mapped to OpenAI's definitions:
    `prompt_tokens` includes Anthropic's cache reads and writes, `completion_tokens` Gemini's
    thoughts; cache writes apart in `cache_creation_input_tokens`."""
    return from_openai_chat(u) + Usage(cache_write=_n(u, "cache_creation_input_tokens"))


def from_pydantic_ai(u: Any) -> Usage:
    """pydantic-ai's `RunUsage` (summed over a run's requests): input includes cache reads and
    writes for every provider, output includes reasoning (`output_reasoning_tokens`)."""
    return Usage(input=_n(u, "input_tokens"), cached=_n(u, "cache_read_tokens"),
                 cache_write=_n(u, "cache_write_tokens"), output=_n(u, "output_tokens"),
                 reasoning=_n(u, "output_reasoning_tokens"))


def from_langchain(m: Any) -> Usage:
    """LangChain's `UsageMetadata`: already our definitions (input includes cache reads and
    creation, output includes reasoning) in every provider package."""
    return Usage(input=_n(m, "input_tokens"),
                 cached=_n(m, "input_token_details", "cache_read"),
                 cache_write=_n(m, "input_token_details", "cache_creation"),
                 output=_n(m, "output_tokens"),
                 reasoning=_n(m, "output_token_details", "reasoning"))


def token_hash(token: str) -> str:
    """The token-service's id of a token: its SHA-256 in lowercase hex."""
    return hashlib.sha256(token.encode()).hexdigest()


def recorded_usage(stack, token: str, model: str, requests: int, timeout_s: float = 10) -> dict:
    """`tokens usage --json` for one token and model, polled until `requests` responses have
    arrived (the filter reports in batches, on its next activity flush) or `timeout_s` passed."""
    deadline = time.monotonic() + timeout_s
    while True:
        out = stack.cli("tokens", "usage", token_hash(token), "--json")
        found = {m["model"]: m for m in json.loads(out.stdout)["models"]}.get(model)
        if (found and found["requests"] >= requests) or time.monotonic() > deadline:
            return found or {}
        time.sleep(0.2)


def assert_metered(stack, token: str, model: str, expected: Usage, requests: int) -> None:
    """What the token-service recorded for `token` on `model` is `requests` complete responses
    whose counts sum to `expected` (the SDK's own usage, mapped to our shape)."""
    got = recorded_usage(stack, token, model, requests)
    if not got:
        out = stack.cli("tokens", "usage", token_hash(token), "--json").stdout
        raise AssertionError(f"nothing recorded for {model}: {out}")
    ours = Usage(input=got["input_tokens"], cached=got["cached_input_tokens"],
                 cache_write=got["cache_write_tokens"], output=got["output_tokens"],
                 reasoning=got["reasoning_tokens"])
    assert (got["requests"], got["incomplete"]) == (requests, 0), got
    assert ours == expected, f"recorded {ours}, the SDK said {expected}"
