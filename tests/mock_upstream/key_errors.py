"""Provider errors about the API key the mock received, shaped like the real providers' (the
filter must never let the real key, or a fragment of it, reach a client).

``x-mock-error: invalid_key`` (or ``?mock_error=invalid_key``) answers each provider's real
invalid-key error: OpenAI 401 quoting the key masked the way OpenAI does
(``sk-proj-****…INEL``), Anthropic 401 ``invalid x-api-key``, Gemini 400 ``INVALID_ARGUMENT``
with reason ``API_KEY_INVALID``. ``x-mock-error: quote_key`` (status from ``x-mock-status``,
429 by default) answers an error whose message quotes the key masked; ``quote_key_full``
quotes it whole. Works on HTTP and on WebSocket handshakes (the upgrade is refused).
``invalid_key_event`` on a WebSocket does what OpenAI's Realtime API does with a refused key:
accepts the upgrade, sends an ``error`` event quoting the key masked, closes with 3000
``invalid_request_error.invalid_api_key``.
"""

from __future__ import annotations

import json
from typing import Any

from . import fixtures as fx

MODES = ("invalid_key", "quote_key", "quote_key_full")


def mode(request: Any) -> str | None:
    raw = (request.headers.get("x-mock-error") or request.query.get("mock_error") or "").strip()
    return raw if raw in MODES else None


def ws_event(request: Any) -> str | None:
    """The Realtime ``error`` event for ``x-mock-error: invalid_key_event``, or ``None``."""
    raw = (request.headers.get("x-mock-error") or request.query.get("mock_error") or "").strip()
    if raw != "invalid_key_event":
        return None
    key = received_key(request)
    return json.dumps({"type": "error", "event_id": fx._uid("event_"), "error": {
        "type": "invalid_request_error", "code": "invalid_api_key", "param": None,
        "message": f"Incorrect API key provided: {openai_mask(key)}. You can find your API key "
                   "at https://platform.openai.com/account/api-keys.", "event_id": None}})


#: Close code and reason OpenAI's Realtime API ends a refused key's session with.
WS_CLOSE = (3000, "invalid_request_error.invalid_api_key")


def received_key(request: Any) -> str:
    """The credential the request carries, in whichever slot (empty if none)."""
    auth = request.headers.get("authorization", "")
    if auth.lower().startswith("bearer "):
        return auth[7:].strip()
    for name in ("x-api-key", "x-goog-api-key"):
        if request.headers.get(name):
            return request.headers[name].strip()
    for offer in request.headers.getall("sec-websocket-protocol", []):
        for entry in offer.split(","):
            entry = entry.strip()
            if entry.startswith("openai-insecure-api-key."):
                return entry[len("openai-insecure-api-key."):]
    return request.query.get("key", "")


def openai_mask(key: str) -> str:
    """How OpenAI prints a refused key: its first 8 characters, stars, its last 4."""
    if len(key) <= 12:
        return "*" * max(len(key) - 4, 0) + key[-4:]
    return key[:8] + "*" * (len(key) - 12) + key[-4:]


def provider_of(path: str, default: str) -> str:
    if "/ws/google.ai.generativelanguage." in path:
        return "gemini"
    return default


def error(request: Any, provider: str, status: int | None) -> tuple[int, dict[str, Any]] | None:
    """``(status, body)`` for the request's ``x-mock-error``, or ``None``."""
    chosen = mode(request)
    if chosen is None:
        return None
    provider = provider_of(request.path, provider)
    key = received_key(request)
    if chosen == "invalid_key":
        return invalid_key(provider, key)
    shown = key if chosen == "quote_key_full" else openai_mask(key)
    status = status or 429
    body = fx.error_body(provider, status)
    body["error"]["message"] = f"Quota exceeded for API key {shown}. Retry later."
    return status, body


def invalid_key(provider: str, key: str) -> tuple[int, dict[str, Any]]:
    if provider == "anthropic":
        return 401, {
            "type": "error",
            "error": {"type": "authentication_error", "message": "invalid x-api-key"},
            "request_id": fx._uid("req_"),
        }
    if provider == "gemini":
        message = "API key not valid. Please pass a valid API key."
        return 400, {"error": {
            "code": 400, "message": message, "status": "INVALID_ARGUMENT",
            "details": [
                {"@type": "type.googleapis.com/google.rpc.ErrorInfo", "reason": "API_KEY_INVALID",
                 "domain": "googleapis.com",
                 "metadata": {"service": "generativelanguage.googleapis.com"}},
                {"@type": "type.googleapis.com/google.rpc.LocalizedMessage", "locale": "en-US",
                 "message": message},
            ],
        }}
    return 401, {"error": {
        "message": f"Incorrect API key provided: {openai_mask(key)}. You can find your API key "
                   "at https://platform.openai.com/account/api-keys.",
        "type": "invalid_request_error", "param": None, "code": "invalid_api_key",
    }}
