"""A small client for the token-service admin API, as an operator's script would use it:
JSON login (cookie + CSRF token), then the token API. Used through Envoy (`stack.url`) or on
the admin listener directly (`stack.service_admin_url`)."""

from __future__ import annotations

import requests


class AdminClient:
    def __init__(self, base_url: str, password: str):
        self.base = base_url.rstrip("/")
        self.http = requests.Session()
        r = self.http.post(f"{self.base}/admin/login", json={"password": password}, timeout=10)
        r.raise_for_status()
        self.csrf = r.json()["csrf_token"]

    def _call(self, method: str, path: str, body: dict | None = None) -> requests.Response:
        return self.http.request(method, f"{self.base}{path}", json=body, timeout=10,
                                 headers={"x-csrf-token": self.csrf})

    def create(self, **body) -> dict:
        r = self._call("POST", "/admin/api/tokens", body)
        assert r.status_code == 201, r.text
        return r.json()

    def patch(self, token_hash: str, **body) -> dict:
        r = self._call("PATCH", f"/admin/api/tokens/{token_hash}", body)
        assert r.status_code == 200, r.text
        return r.json()

    def delete(self, token_hash: str) -> None:
        r = self._call("DELETE", f"/admin/api/tokens/{token_hash}")
        assert r.status_code == 204, r.text

    def get(self, token_hash: str) -> requests.Response:
        return self._call("GET", f"/admin/api/tokens/{token_hash}")

    def tokens(self) -> list[dict]:
        r = self._call("GET", "/admin/api/tokens")
        r.raise_for_status()
        return r.json()["tokens"]
