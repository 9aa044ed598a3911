"""The versions through the real Envoy and the built .wasm: the filter logs its release, config
schema and wire version at start, and sends `x-ptk-wire-version` on its check call. Here the
check cluster points at the recording mock (which answers no verdict), so the call is seen as
Envoy sent it and the client gets the fail-closed 503."""

from __future__ import annotations

import tomllib

import requests

from tests.e2e.harness import ROOT, wire_version

VERSION = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]


def test_filter_sends_its_wire_version_and_logs_its_versions(make_stack):
    stack = make_stack(render_extra=lambda s: [
        "--token-service", s.mock_url.removeprefix("http://")])
    r = requests.post(f"{stack.url}/v1/chat/completions", timeout=10,
                      headers={"authorization": "Bearer ptk_wire_version_probe_token_0001"},
                      json={"model": "gpt-4o-mini", "messages": []})
    assert r.status_code == 503
    assert r.json()["error"]["message"] == "token store unavailable"
    (check,) = [c for c in stack.upstream_requests() if c["path"] == "/v1/check"]
    wire = wire_version()
    assert [v for k, v in check["headers"] if k == "x-ptk-wire-version"] == [wire]
    logs = stack.logs()
    assert (f"ptk filter {VERSION} started (plugin configuration schema 1, wire protocol {wire})"
            in logs), logs[-3000:]
    assert "ptk filter: token-service check failed" in logs


def test_token_service_version_is_the_workspace_version():
    import subprocess

    from tests.e2e.harness import SERVICE, require_built
    require_built()
    workspace = tomllib.loads((ROOT / "Cargo.toml").read_text())["workspace"]["package"]["version"]
    out = subprocess.run([str(SERVICE), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == f"token-service {workspace}"
    changelog = (ROOT / "CHANGELOG.md").read_text()
    assert f"## [{workspace}] - " in changelog, "the release has no CHANGELOG entry"
