"""``x-mock-body``: answer exactly these bytes (base64), with the status of ``x-mock-status``
(200 without one) and the content type of ``x-mock-content-type`` (``application/json`` by
default). For tests that a response passes the proxy byte for byte."""

from __future__ import annotations

import base64
import binascii
from typing import Any

from aiohttp import web


def response(request: Any, status: int | None) -> web.Response | None:
    raw = request.headers.get("x-mock-body")
    if raw is None:
        return None
    try:
        body = base64.b64decode(raw, validate=True)
    except (binascii.Error, ValueError):
        return web.json_response({"error": "x-mock-body is not base64"}, status=400)
    content_type = request.headers.get("x-mock-content-type", "application/json")
    return web.Response(body=body, status=status or 200, headers={"content-type": content_type})
