"""ptk dropped into an Envoy config that was not written for it.

tests/deploy/data/foreign-envoy.yaml is an operator's own config (its listener `edge`, its
`/status` route answered by Envoy, its catch-all). tools/merge_dropin.py adds
deploy/envoy/ptk-dropin.yaml's pieces; the result passes `envoy --mode validate`, then runs
with the real .wasm, the real token-service and the mock upstream behind a TLS front whose
certificate (for the providers' names) the merged clusters verify against a test CA. The
operator's routes keep working untouched by the filter; clients on the entry domain get the
whole ptk flow. The operator's second listener, `internal`, shares `edge`'s route_config
through a YAML anchor and is not named to the tool: it must come out unchanged (no provider
host, no /admin without the filter). The snippet is generated from envoy.yaml and must match
it.
"""

from __future__ import annotations

import copy
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


def anchored_internal(foreign: dict, port: int) -> dict:
    """Adds the operator's listener `internal`: its own connection manager and router, the
    very route_config object of `edge` (yaml.safe_dump writes it as an anchor and an alias).
    Returns a copy of it as written, for comparison with the merged config."""
    edge = foreign["static_resources"]["listeners"][0]
    hcm = edge["filter_chains"][0]["filters"][0]["typed_config"]
    internal = copy.deepcopy(edge)
    internal["name"] = "internal"
    internal["address"]["socket_address"]["port_value"] = port
    ihcm = internal["filter_chains"][0]["filters"][0]["typed_config"]
    ihcm["stat_prefix"] = "internal_http"
    ihcm["route_config"] = hcm["route_config"]
    foreign["static_resources"]["listeners"].append(internal)
    return copy.deepcopy(internal)


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
        self.internal_port = free_port()
        self.internal_listener = anchored_internal(foreign, self.internal_port)
        theirs, self.config = self.dir / "foreign.yaml", self.dir / "merged.yaml"
        theirs.write_text(yaml.safe_dump(foreign, sort_keys=False))
        assert "&id" in theirs.read_text(), "the shared route_config was not written as an anchor"
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
        wait_http(f"http://127.0.0.1:{self.admin_port}/ready", proc, "envoy", timeout=60,
                  log=self.dir / "envoy.log")
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        self.internal = f"http://127.0.0.1:{self.internal_port}"
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
    assert [f["name"] for f in hcm["http_filters"]] == [
        "ptk", "ptk_body_hold", "envoy.filters.http.router"]
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


def test_a_listener_sharing_the_route_config_is_left_as_it_was(dropin):
    # `internal` shares edge's route_config through a YAML anchor; the tool was told `edge`.
    merged = yaml.safe_load(dropin.config.read_text())
    internal = find_listener(merged, "internal")
    assert internal == dropin.internal_listener, "the merge edited a listener it was not given"
    token = dropin.mint()["token"]
    dropin.reset_upstream()
    # A provider host and a valid proxy token: the operator's catch-all, nothing upstream.
    r = requests.post(f"{dropin.internal}/v1/chat/completions", json={}, timeout=10,
                      headers={"host": "api.openai.com", "authorization": f"Bearer {token}"})
    assert (r.status_code, r.text) == (404, "not here\n")
    r = requests.get(f"{dropin.internal}/v1/models", timeout=10,
                     headers={"host": "api.anthropic.com", "x-api-key": "sk-ant-own"})
    assert (r.status_code, r.text) == (404, "not here\n")
    assert dropin.upstream_requests() == [], "the internal listener relayed to a provider"
    r = requests.get(f"{dropin.internal}/admin", headers={"host": DOMAIN}, timeout=10)
    assert (r.status_code, r.text) == (404, "not here\n")
    assert requests.get(f"{dropin.internal}/status", timeout=10).text == "edge up\n"


def find_listener(config: dict, name: str) -> dict:
    return next(item for item in config["static_resources"]["listeners"] if item["name"] == name)


def hcm_of(listener: dict) -> dict:
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def merge_cli(tmp_path, config: dict, *extra: str) -> subprocess.CompletedProcess:
    (tmp_path / "in.yaml").write_text(yaml.safe_dump(config))
    return subprocess.run(
        [sys.executable, str(ROOT / "tools/merge_dropin.py"), "--config", str(tmp_path / "in.yaml"),
         "--out", str(tmp_path / "out.yaml"), "--listener", "edge", "--domain", DOMAIN, *extra],
        capture_output=True, text=True)


def validate(path) -> None:
    done = subprocess.run([ENVOY, "--mode", "validate", "-c", str(path)], capture_output=True,
                          text=True, timeout=120,
                          env={"PTK_CHECK_SECRET": "s" * 32, "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stdout + done.stderr


def test_two_chains_sharing_one_connection_manager_each_get_ptk_once(tmp_path):
    foreign = yaml.safe_load(FOREIGN.read_text())
    edge = foreign["static_resources"]["listeners"][0]
    second = {"filter_chain_match": {"destination_port": 8443},
              "filters": edge["filter_chains"][0]["filters"]}
    edge["filter_chains"].append(second)
    done = merge_cli(tmp_path, foreign)
    assert done.returncode == 0, done.stderr
    merged = find_listener(yaml.safe_load((tmp_path / "out.yaml").read_text()), "edge")
    for chain in merged["filter_chains"]:
        hcm = chain["filters"][0]["typed_config"]
        assert [f["name"] for f in hcm["http_filters"]] == [
        "ptk", "ptk_body_hold", "envoy.filters.http.router"]
        assert [v["name"] for v in hcm["route_config"]["virtual_hosts"]] == [
            "openai", "anthropic", "gemini", "ptk_entry", "company"]


def test_use_remote_address_false_needs_the_trusted_hops(tmp_path):
    # use_remote_address: false takes the client address (the guess throttle's key) from an
    # x-forwarded-for the client writes: a new address per guess would mean no throttle.
    foreign = yaml.safe_load(FOREIGN.read_text())
    hcm_of(foreign["static_resources"]["listeners"][0])["use_remote_address"] = False
    refused = merge_cli(tmp_path, foreign)
    assert refused.returncode == 2, refused.stderr
    assert "use_remote_address: false" in refused.stderr and "--xff-num-trusted-hops" in refused.stderr
    assert not (tmp_path / "out.yaml").exists()
    done = merge_cli(tmp_path, foreign, "--xff-num-trusted-hops", "1")
    assert done.returncode == 0, done.stderr
    hcm = hcm_of(find_listener(yaml.safe_load((tmp_path / "out.yaml").read_text()), "edge"))
    assert hcm["use_remote_address"] is True and hcm["xff_num_trusted_hops"] == 1
    # The admin login throttle is told the client Envoy derived, not the proxy next to it.
    entry = next(v for v in hcm["route_config"]["virtual_hosts"] if v["name"] == "ptk_entry")
    forwarded = {h["header"]["value"] for r in entry["routes"]
                 for h in r.get("request_headers_to_add", []) if h["header"]["key"] == "x-forwarded-for"}
    assert forwarded == {"%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%"}
    validate(tmp_path / "out.yaml")
    # A hop count of the operator's own that disagrees is refused, not overwritten.
    hcm_of(foreign["static_resources"]["listeners"][0])["xff_num_trusted_hops"] = 2
    clash = merge_cli(tmp_path, foreign, "--xff-num-trusted-hops", "1")
    assert clash.returncode == 2 and "xff_num_trusted_hops: 2" in clash.stderr


def test_connect_to_cannot_move_a_plaintext_token_service_off_loopback(tmp_path):
    foreign = yaml.safe_load(FOREIGN.read_text())
    for pin in ("127.0.0.1:10080:10.9.9.9:10080", "127.0.0.1:10081:10.9.9.9:10081"):
        done = merge_cli(tmp_path, foreign, "--connect-to", pin)
        assert done.returncode == 2 and "not loopback" in done.stderr, done.stderr
        assert "plaintext" in done.stderr
    # Said explicitly (a mesh's mTLS), or to another loopback address: allowed.
    assert merge_cli(tmp_path, foreign, "--connect-to", "127.0.0.1:10080:10.9.9.9:10080",
                     "--token-service-plaintext").returncode == 0
    assert merge_cli(tmp_path, foreign, "--connect-to",
                     "127.0.0.1:10080:127.0.0.2:10080").returncode == 0


def test_no_admin_leaves_the_dashboard_off_the_client_domain(tmp_path):
    foreign = yaml.safe_load(FOREIGN.read_text())
    done = merge_cli(tmp_path, foreign, "--no-admin")
    assert done.returncode == 0, done.stderr
    merged = yaml.safe_load((tmp_path / "out.yaml").read_text())
    hcm = hcm_of(find_listener(merged, "edge"))
    entry = next(v for v in hcm["route_config"]["virtual_hosts"] if v["name"] == "ptk_entry")
    assert not [r for r in entry["routes"] if "admin" in str(r["match"])]
    assert "token_service_admin" not in str(merged)
    # What is left still answers health checks and sends everything else to the filter.
    assert [r["match"] for r in entry["routes"]][0] == {"path": "/ptk/healthz"}
    validate(tmp_path / "out.yaml")


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
