"""Response headers the real providers send, and ``x-mock-headers`` for any other.

Every HTTP response carries each provider's rate-limit headers (OpenAI ``x-ratelimit-*``,
Anthropic ``anthropic-ratelimit-*``) and request id; Anthropic's also carry
``access-control-expose-headers: *`` as Anthropic's do. ``x-mock-headers`` (a JSON object, or
a JSON list of ``[name, value]`` pairs for repeated headers) adds headers to the response,
errors and refused WebSocket upgrades included.
"""

from __future__ import annotations

import json
from typing import Any

from aiohttp.web import ContentCoding

OPENAI = {
    "x-ratelimit-limit-requests": "5000",
    "x-ratelimit-limit-tokens": "800000",
    "x-ratelimit-remaining-requests": "4999",
    "x-ratelimit-remaining-tokens": "799985",
    "x-ratelimit-reset-requests": "12ms",
    "x-ratelimit-reset-tokens": "1ms",
    "openai-processing-ms": "42",
}

ANTHROPIC = {
    "anthropic-ratelimit-requests-limit": "4000",
    "anthropic-ratelimit-requests-remaining": "3999",
    "anthropic-ratelimit-requests-reset": "2026-11-29T12:00:01Z",
    "anthropic-ratelimit-tokens-limit": "400000",
    "anthropic-ratelimit-tokens-remaining": "399990",
    "anthropic-ratelimit-tokens-reset": "2026-11-29T12:00:01Z",
    "anthropic-organization-id": "org-mock-0001",
    "access-control-expose-headers": "*",
}


def defaults(provider: str) -> dict[str, str]:
    return {"openai": OPENAI, "anthropic": ANTHROPIC}.get(provider, {})


def extra(request: Any) -> list[tuple[str, str]]:
    """The pairs ``x-mock-headers`` asks for (none if absent or not JSON)."""
    raw = request.headers.get("x-mock-headers")
    if not raw:
        return []
    try:
        parsed = json.loads(raw)
    except ValueError:
        return []
    if isinstance(parsed, dict):
        return [(str(k), str(v)) for k, v in parsed.items()]
    if isinstance(parsed, list):
        return [(str(i[0]), str(i[1])) for i in parsed if isinstance(i, list) and len(i) == 2]
    return []


def maybe_gzip(request: Any, response: Any) -> None:
    """With ``x-mock-gzip: 1``, gzips the body when the request accepts gzip, as Google's
    front end does even for small JSON errors (call before the response is prepared)."""
    if request.headers.get("x-mock-gzip") == "1" and "gzip" in request.headers.get("accept-encoding", ""):
        response.enable_compression(ContentCoding.gzip)


def apply(request: Any, response: Any, provider: str) -> None:
    """Adds the provider's headers (unless the response set them) and the asked-for ones."""
    for name, value in defaults(provider).items():
        if name not in response.headers:
            response.headers[name] = value
    for name, value in extra(request):
        response.headers.add(name, value)
