"""OpenAI's geo-block, for the filter's egress fallback (``providers.openai.geo_fallback``).

``x-mock-geo: block`` (or ``?mock_geo=block``) answers what OpenAI answers a request from an
unsupported region: ``403`` with ``unsupported_country_region_territory`` in the body (for
any provider's path, so a test can show that only OpenAI's is replayed). A mock whose
``State.region_supported`` is set plays the egress in a supported region and ignores it.
``x-mock-geo: other`` answers a 403 without the marker (``invalid_api_key``), everywhere.
"""

from __future__ import annotations

from typing import Any

#: OpenAI's answer to a request from an unsupported region (as observed from Hong Kong).
BODY = {
    "error": {
        "code": "unsupported_country_region_territory",
        "message": "Country, region, or territory not supported",
        "param": None,
        "type": "request_forbidden",
    }
}


#: A 403 that is no geo-block (the key refused), which must never be replayed.
OTHER = {
    "error": {
        "code": "invalid_api_key",
        "message": "The API key is not allowed to access this resource.",
        "param": None,
        "type": "invalid_request_error",
    }
}


def response(request: Any, region_supported: bool) -> dict[str, Any] | None:
    """The ``403`` body this request gets, or ``None``."""
    raw = (request.headers.get("x-mock-geo") or request.query.get("mock_geo") or "").strip()
    if raw == "block" and not region_supported:
        return BODY
    return OTHER if raw == "other" else None
