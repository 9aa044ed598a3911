"""The clients' environment: no real provider key, nothing that redirects a client, nothing that
downloads at run time. Imported (and applied) by the compat conftest before any client loads."""

from __future__ import annotations

import os

#: Variables a client could read instead of the base URL / key the test hands it.
STRIPPED = (
    "OPENAI_API_KEY", "OPENAI_BASE_URL", "OPENAI_ORG_ID", "OPENAI_PROJECT_ID", "OPENAI_ADMIN_KEY",
    "ANTHROPIC_API_KEY", "ANTHROPIC_AUTH_TOKEN", "ANTHROPIC_BASE_URL",
    "GEMINI_API_KEY", "GOOGLE_API_KEY", "GOOGLE_GENERATIVE_AI_API_KEY", "GOOGLE_GEMINI_BASE_URL",
    "GOOGLE_GENAI_USE_VERTEXAI", "GOOGLE_CLOUD_PROJECT", "GOOGLE_CLOUD_LOCATION",
    "GOOGLE_APPLICATION_CREDENTIALS", "GENKIT_ENV", "HTTP_PROXY", "HTTPS_PROXY", "ALL_PROXY",
    "http_proxy", "https_proxy", "all_proxy",
)

#: Keep every library offline: no model cost map, tokenizer or telemetry fetches.
OFFLINE = {
    "LITELLM_LOCAL_MODEL_COST_MAP": "True",
    "LITELLM_TELEMETRY": "False",
    "HF_HUB_OFFLINE": "1",
    "TRANSFORMERS_OFFLINE": "1",
    "TOKENIZERS_PARALLELISM": "false",
    "LANGCHAIN_TRACING_V2": "false",
    "LANGSMITH_TRACING": "false",
    "LOGFIRE_IGNORE_NO_CONFIG": "1",
    "OTEL_SDK_DISABLED": "true",
    "NO_PROXY": "127.0.0.1,localhost",
    "no_proxy": "127.0.0.1,localhost",
}


def client_env(base: dict[str, str] | None = None) -> dict[str, str]:
    """A copy of ``base`` (default: this process's environment) that is safe for a client."""
    env = {k: v for k, v in (base if base is not None else os.environ).items() if k not in STRIPPED}
    env.update(OFFLINE)
    return env


def apply() -> None:
    """Make this process's own environment safe for in-process clients."""
    for name in STRIPPED:
        os.environ.pop(name, None)
    os.environ.update(OFFLINE)
