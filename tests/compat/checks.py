"""What every compat test asserts about the request the mock upstream received."""

from __future__ import annotations

import base64
import json

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
