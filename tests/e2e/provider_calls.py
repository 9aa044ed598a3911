"""One typical call per route (OpenAI, Anthropic, Gemini native, Gemini's OpenAI-compatible
endpoint) and the error shape each one's SDK expects, for tests of what Envoy itself answers
on a provider's behalf (upstream failures and timeouts)."""

from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor

import requests

#: route -> the error shape its clients' SDKs parse.
SHAPES = {"openai": "openai", "anthropic": "anthropic", "gemini": "gemini",
          "gemini_openai": "openai"}


def call(url: str, token: str, route: str, extra: dict[str, str] | None = None,
         timeout: float = 30, method: str = "POST") -> requests.Response:
    """A non-streaming completion on `route`, authenticated the way its SDK does it; with
    `method="GET"`, a request without a body on the same route (a model listing)."""
    headers = dict(extra or {})
    if route == "openai":
        path, body = "/v1/chat/completions", {"model": "gpt-4o-mini", "messages": []}
        headers["authorization"] = f"Bearer {token}"
    elif route == "anthropic":
        path, body = "/v1/messages", {"model": "claude", "max_tokens": 8, "messages": []}
        headers.update({"x-api-key": token, "anthropic-version": "2023-06-01"})
    elif route == "gemini":
        path, body = "/v1beta/models/gemini-2.5-flash:generateContent", {"contents": []}
        headers["x-goog-api-key"] = token
    else:
        path, body = "/v1beta/openai/chat/completions", {"model": "gemini-2.5-flash", "messages": []}
        headers["authorization"] = f"Bearer {token}"
    if method == "GET":
        listing = {"openai": "/v1/models", "anthropic": "/v1/models", "gemini": "/v1beta/models",
                   "gemini_openai": "/v1beta/openai/models"}
        return requests.get(f"{url}{listing[route]}", headers=headers, timeout=timeout)
    return requests.post(f"{url}{path}", json=body, headers=headers, timeout=timeout)


def call_all(url: str, token: str, extra: dict[str, str] | None = None,
             timeout: float = 30, method: str = "POST") -> dict[str, requests.Response]:
    """Every route at once (so waiting on a timeout costs one wait, not four)."""
    with ThreadPoolExecutor(len(SHAPES)) as pool:
        futures = {r: pool.submit(call, url, token, r, extra, timeout, method) for r in SHAPES}
        return {r: f.result() for r, f in futures.items()}


def assert_error_shape(resp: requests.Response, route: str, status: int, message: str) -> None:
    """`resp` is `status` with `message`, in exactly the shape the route's SDK parses."""
    assert resp.status_code == status, (route, resp.status_code, resp.text)
    assert resp.headers["content-type"].startswith("application/json"), (route, resp.headers)
    body = resp.json()
    shape = SHAPES[route]
    if shape == "openai":
        assert set(body) == {"error"}, (route, body)
        assert set(body["error"]) == {"message", "type", "param", "code"}, (route, body)
        assert body["error"]["message"] == message and body["error"]["type"] == "server_error"
    elif shape == "anthropic":
        assert set(body) == {"type", "error"} and body["type"] == "error", (route, body)
        assert set(body["error"]) == {"type", "message"}, (route, body)
        kind = "timeout_error" if status == 504 else "api_error"
        assert body["error"] == {"type": kind, "message": message}, (route, body)
    else:
        kind = "DEADLINE_EXCEEDED" if status == 504 else "UNAVAILABLE"
        assert body == {"error": {"code": status, "message": message, "status": kind}}, (route, body)
