"""LiteLLM `custom_auth` hook for `make bench`: per-user proxy tokens without LiteLLM's
database (its virtual keys need a Prisma engine download that cannot run offline).

Same check as the ext_authz peer and the token-service: SHA-256 of the presented token looked
up in a set of hashes (file named by BENCH_LITELLM_HASHES, one hex hash per line), so LiteLLM
is measured doing the same work, not less.
"""

from __future__ import annotations

import hashlib
import os

from fastapi import Request
from litellm.proxy._types import UserAPIKeyAuth

with open(os.environ["BENCH_LITELLM_HASHES"], encoding="utf-8") as fh:
    _HASHES = frozenset(line.strip() for line in fh if line.strip())


async def user_api_key_auth(request: Request, api_key: str) -> UserAPIKeyAuth:
    token = api_key.removeprefix("Bearer ").strip()
    digest = hashlib.sha256(token.encode()).hexdigest()
    if digest not in _HASHES:
        raise Exception("invalid or revoked token")  # LiteLLM turns this into a 401
    return UserAPIKeyAuth(api_key=digest, user_id=digest[:12])
