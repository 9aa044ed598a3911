"""ptk dropped into an Envoy config that was not written for it.

tests/deploy/data/foreign-envoy.yaml is an operator's own config (its listener `edge`, its
`/status` route answered by Envoy, its catch-all). tools/merge_dropin.py adds
deploy/envoy/ptk-dropin.yaml's pieces; the result passes `envoy --mode validate`, then runs
with the real .wasm, the real token-service and the mock upstream behind a TLS front whose
certificate (for the providers' names) the merged clusters verify against a test CA. The
operator's routes keep working untouched by the filter; clients on the entry domain get the
whole ptk flow. The snippet is generated from envoy.yaml and must match it.
"""

from __future__ import annotations

import subprocess
import sys

import pytest
import requests
import yaml

from tests.e2e.harness import ENVOY, REAL_KEYS, ROOT, WASM, Stack, free_port, wait_http
from tests.e2e.provider_calls import assert_error_shape, call
from tests.e2e.tls_peer import PROVIDER_HOSTS, TestPki, TlsPeer

FOREIGN = ROOT / "tests/deploy/data/foreign-envoy.yaml"
DOMAIN = "llm.dropin.test"


class DropinStack(Stack):
    """The harness's token-service and mock upstream; Envoy runs the merged foreign config."""

    def _start_envoy(self) -> None:
        self.proxy_port, self.admin_port = free_port(), free_port()
        pki = TestPki(self.dir / "pki")
        names = ("api.openai.com", "api.anthropic.com", "*.googleapis.com")
        self.front = TlsPeer(pki.issue("providers", names))
        host, port = self.mock_url.removeprefix("http://").rsplit(":", 1)
        self.mock_target = (host, int(port))
        self.front.target = self.mock_target
        foreign = yaml.safe_load(FOREIGN.read_text())
        foreign["admin"]["address"]["socket_address"]["port_value"] = self.admin_port
        listener = foreign["static_resources"]["listeners"][0]
        listener["address"]["socket_address"]["port_value"] = self.proxy_port
        theirs, self.config = self.dir / "foreign.yaml", self.dir / "merged.yaml"
        theirs.write_text(yaml.safe_dump(foreign, sort_keys=False))
        pins = [a for h in PROVIDER_HOSTS for a in ("--connect-to", f"{h}:443:{self.front.address}")]
        self.merge = subprocess.run(
            [sys.executable, str(ROOT / "tools/merge_dropin.py"), "--config", str(theirs),
             "--out", str(self.config), "--listener", "edge", "--domain", DOMAIN,
             "--wasm", str(WASM), "--token-service", f"127.0.0.1:{self.service_port}",
             "--token-service-admin", f"127.0.0.1:{self.service_admin_port}",
             "--provider-ca-file", str(pki.ca), *pins],
            capture_output=True, text=True, check=True)
        env = {"PTK_CHECK_SECRET": self.secret, "PATH": "/usr/bin:/bin"}
        self.validate = subprocess.run([ENVOY, "--mode", "validate", "-c", str(self.config)],
                                       env=env, capture_output=True, text=True, timeout=120)
        assert self.validate.returncode == 0, self.validate.stdout + self.validate.stderr
        proc = self._spawn("envoy", [ENVOY, "-c", str(self.config), "--concurrency", "2",
                                     "--disable-hot-restart"], env)
        wait_http(f"http://127.0.0.1:{self.admin_port}/ready", proc, "envoy", timeout=60)
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        self.entry = {"host": f"{DOMAIN}:{self.proxy_port}"}

    def stop(self) -> None:
        super().stop()
        self.front.close()


@pytest.fixture(scope="module")
def dropin():
    s = DropinStack().start()
    try:
        yield s
    finally:
        s.stop()
        s.cleanup()


def test_the_merged_config_validates_and_keeps_the_operators_pieces(dropin):
    assert "OK" in dropin.validate.stdout + dropin.validate.stderr
    merged = yaml.safe_load(dropin.config.read_text())
    hcm = merged["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]
    assert [f["name"] for f in hcm["http_filters"]] == ["ptk", "envoy.filters.http.router"]
    hosts = [v["name"] for v in hcm["route_config"]["virtual_hosts"]]
    assert hosts == ["openai", "anthropic", "gemini", "ptk_entry", "company"]
    clusters = [c["name"] for c in merged["static_resources"]["clusters"]]
    assert clusters[0] == "legacy_app" and {"token_service", "openai"} <= set(clusters)


def test_the_operators_own_routes_never_meet_the_filter(dropin):
    r = requests.get(f"{dropin.url}/status", timeout=10)
    assert (r.status_code, r.text) == (200, "edge up\n")
    # Even carrying something token-shaped: the filter is off on the operator's hosts.
    r = requests.get(f"{dropin.url}/status", headers={"authorization": "Bearer ptk_nope"},
                     timeout=10)
    assert (r.status_code, r.text) == (200, "edge up\n")
    r = requests.get(f"{dropin.url}/elsewhere", timeout=10)
    assert (r.status_code, r.text) == (404, "not here\n")
    assert dropin.front.connections == 0, "a request of the operator's went to a provider"


def test_envoy_s_own_upstream_errors_come_in_the_provider_s_shape(dropin):
    # The local-reply mappers: the provider hop fails (the TLS front hangs up after the
    # handshake, on this first connection to it), Envoy answers 502 in Anthropic's shape.
    dropin.front.target = None
    try:
        r = call(dropin.url, dropin.mint()["token"], "anthropic", extra=dropin.entry)
    finally:
        dropin.front.target = dropin.mock_target
    assert_error_shape(r, "anthropic", 502, "upstream request failed")


@pytest.mark.parametrize("route", ["openai", "anthropic", "gemini", "gemini_openai"])
def test_a_client_on_the_entry_domain_gets_the_whole_flow(dropin, route):
    token = dropin.mint()["token"]
    dropin.reset_upstream()
    r = call(dropin.url, token, route, extra=dropin.entry)
    assert r.status_code == 200, r.text
    (seen,) = dropin.upstream_requests()
    sent = str(seen)
    assert token not in sent, "the proxy token went upstream"
    key = {"openai": "OPENAI", "anthropic": "ANTHROPIC"}.get(route, "GEMINI")
    assert REAL_KEYS[f"{key}_API_KEY"] in sent
    host = dict(seen["headers"])["host"]
    assert host == ("api.openai.com" if route == "openai" else "api.anthropic.com"
                    if route == "anthropic" else "generativelanguage.googleapis.com")
    assert dropin.front.handshakes >= 1, "the provider hop was not TLS"


def test_refusals_and_the_admin_routes_on_the_entry_domain(dropin):
    r = call(dropin.url, "ptk_" + "x" * 32, "openai", extra=dropin.entry)
    assert r.status_code == 401 and set(r.json()) == {"error"}, r.text
    r = requests.post(f"{dropin.url}/v1/messages", headers=dropin.entry, json={}, timeout=10)
    assert r.status_code == 401
    # A client naming a provider host directly still meets the filter (no open relay).
    r = requests.post(f"{dropin.url}/v1/chat/completions", json={}, timeout=10,
                      headers={"host": "api.openai.com", "authorization": "Bearer sk-own"})
    assert r.status_code == 401, r.text
    # The dashboard, filter off, through the entry domain.
    r = requests.get(f"{dropin.url}/admin", headers=dropin.entry, timeout=10)
    assert r.status_code == 200 and 'action="/admin/login"' in r.text


def merge_cli(tmp_path, config: dict) -> subprocess.CompletedProcess:
    (tmp_path / "in.yaml").write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, str(ROOT / "tools/merge_dropin.py"), "--config", str(tmp_path / "in.yaml"),
         "--out", str(tmp_path / "out.yaml"), "--listener", "edge", "--domain", DOMAIN],
        capture_output=True, text=True)


def test_the_merge_refuses_what_it_cannot_do_safely(tmp_path):
    foreign = yaml.safe_load(FOREIGN.read_text())
    assert merge_cli(tmp_path, foreign).returncode == 0
    merged = yaml.safe_load((tmp_path / "out.yaml").read_text())
    # Twice: a second ptk filter, the same hosts and clusters again.
    again = merge_cli(tmp_path, merged)
    assert again.returncode == 2 and "already has an http filter named 'ptk'" in again.stderr
    hcm = foreign["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0][
        "typed_config"]
    # A host of the operator's already claims a provider's name.
    hcm["route_config"]["virtual_hosts"][0]["domains"] = ["api.openai.com"]
    taken = merge_cli(tmp_path, foreign)
    assert taken.returncode == 2 and "api.openai.com" in taken.stderr
    # A token-service across the network in plaintext.
    hcm["route_config"]["virtual_hosts"][0]["domains"] = ["*"]
    (tmp_path / "in.yaml").write_text(yaml.safe_dump(foreign))
    plain = subprocess.run(
        [sys.executable, str(ROOT / "tools/merge_dropin.py"), "--config", str(tmp_path / "in.yaml"),
         "--out", str(tmp_path / "out.yaml"), "--listener", "edge", "--domain", DOMAIN,
         "--token-service", "10.1.2.3:10080"], capture_output=True, text=True)
    assert plain.returncode == 2 and "plaintext" in plain.stderr
    # Routes from RDS: the tool cannot edit them.
    hcm.pop("route_config")
    hcm["rds"] = {"route_config_name": "edge", "config_source": {"ads": {}}}
    rds = merge_cli(tmp_path, foreign)
    assert rds.returncode == 2 and "RDS" in rds.stderr


def test_the_snippet_is_envoy_yaml_s_own_pieces():
    # deploy/envoy/ptk-dropin.yaml is generated from envoy.yaml: a change to either without
    # regenerating fails here.
    check = subprocess.run([sys.executable, str(ROOT / "tools/dropin_snippet.py"), "--check"],
                           capture_output=True, text=True)
    assert check.returncode == 0, check.stderr
