"""Answers chosen per API key, for provider key pools: the filter picks the key, so a test
cannot ask with a request header; it tells the mock what each key gets instead.

``POST /__mock/keys`` with ``{"<key>": {"status": 429, "headers": {"retry-after": "2"}}}``
answers every request carrying that key (in any slot) with that status, an error body in the
provider's shape and those headers; ``{"<key>": {"error": "invalid_key"}}`` answers the
provider's real invalid-key error (``key_errors.py``); a ``"body"`` replaces the error body
(a provider's other errors of that status). Each POST replaces the whole table;
``{}`` clears it. ``GET /__mock/keys`` returns it.
"""

from __future__ import annotations

import threading
from typing import Any

from . import fixtures as fx
from . import key_errors


class KeyBehaviour:
    """The per-key table; thread-safe (the in-process API resets it from other threads)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._table: dict[str, dict[str, Any]] = {}

    def set(self, table: Any) -> bool:
        """Replaces the table; ``False`` (unchanged) if it is not an object of objects."""
        if not isinstance(table, dict) or not all(isinstance(v, dict) for v in table.values()):
            return False
        with self._lock:
            self._table = {str(k): dict(v) for k, v in table.items()}
        return True

    def table(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return dict(self._table)

    def response(self, request: Any, provider: str) -> tuple[int, dict[str, Any], dict[str, str]] | None:
        """``(status, body, headers)`` for the request's key, or ``None`` to answer as usual."""
        key = key_errors.received_key(request)
        with self._lock:
            rule = self._table.get(key)
        if rule is None:
            return None
        headers = {str(k): str(v) for k, v in (rule.get("headers") or {}).items()}
        if rule.get("error") == "invalid_key":
            status, body = key_errors.invalid_key(key_errors.provider_of(request.path, provider), key)
            return status, body, headers
        status = int(rule.get("status", 429))
        return status, rule.get("body") or fx.error_body(provider, status), headers
