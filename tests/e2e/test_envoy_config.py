"""Static checks of the committed envoy.yaml and of what tools/render_envoy.py makes of it
(as `make run` calls it, and with each option that touches upstreams): every upstream TLS
context verifies chain and name, no provider call is cut before 600 s, the renderer refuses
settings that would send real keys or the check secret across a network in plaintext, and every
listener takes the client's address from the TCP peer (or trusted proxies, when told).
The runtime side is in test_provider_tls.py and test_provider_errors.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from .harness import ENVOY, ROOT, require_built

PROVIDER_CLUSTERS = ("openai", "anthropic", "gemini")
SDK_TIMEOUT_S = 600
TOKEN_SERVICE_TLS = ("--token-service", "ts.ptk.internal:10080",
                     "--token-service-admin", "ts.ptk.internal:10081",
                     "--token-service-tls-ca", "/etc/ssl/certs/ca-certificates.crt")


def render(tmp_path: Path, *args: str, env: dict[str, str] | None = None
           ) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if not k.endswith("_UPSTREAM")}
    tmp_path.mkdir(parents=True, exist_ok=True)
    return subprocess.run(
        [sys.executable, str(ROOT / "tools/render_envoy.py"), "--out",
         str(tmp_path / "envoy.yaml"), *args],
        env={**base, **(env or {})}, capture_output=True, text=True, timeout=60)


def rendered(tmp_path: Path, *args: str, env: dict[str, str] | None = None) -> dict:
    done = render(tmp_path, *args, env=env)
    assert done.returncode == 0, done.stderr
    return yaml.safe_load((tmp_path / "envoy.yaml").read_text())


def committed() -> dict:
    return yaml.safe_load((ROOT / "envoy.yaml").read_text())


def hcm_of(config: dict) -> dict:
    listener = next(l for l in config["static_resources"]["listeners"] if l["name"] == "proxy")
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def seconds(duration: str) -> float:
    assert duration.endswith("s"), duration
    return float(duration[:-1])


def never_before(duration: str | None, limit: float = SDK_TIMEOUT_S) -> bool:
    """A timeout that is off (0s) or at least `limit`; None means the field is unset."""
    return duration is None or seconds(duration) == 0 or seconds(duration) >= limit


# --- TLS -----------------------------------------------------------------------------------


def configs_with_tls(tmp_path: Path) -> dict[str, dict]:
    https = {"OPENAI_UPSTREAM": "https://llm-gateway.internal:8443",
             "ANTHROPIC_UPSTREAM": "https://10.1.2.3", "GEMINI_UPSTREAM": "https://g.example"}
    return {
        "committed": committed(),
        "make run": rendered(tmp_path / "a"),
        "https overrides": rendered(tmp_path / "b", env=https),
        "token-service tls": rendered(tmp_path / "c", *TOKEN_SERVICE_TLS),
        "token-service tls by ip": rendered(
            tmp_path / "d", "--token-service", "10.0.0.7:10080", "--token-service-admin",
            "10.0.0.7:10081", "--token-service-tls-ca", "/etc/ssl/certs/ca-certificates.crt"),
        "connect-to": rendered(tmp_path / "e", "--connect-to", "api.openai.com:443:127.0.0.1:9"),
        "trusted hops": rendered(tmp_path / "f", "--xff-num-trusted-hops", "1"),
        "geo fallback": rendered(
            tmp_path / "h", "--geo-fallback-egress", "https://egress.example:8443"),
        "token-service tls, replicas": rendered(
            tmp_path / "g", "--token-service", "ts-a.ptk.internal:10080,ts-b.ptk.internal:10080",
            "--token-service-admin", "ts-a.ptk.internal:10081",
            "--token-service-tls-ca", "/etc/ssl/certs/ca-certificates.crt",
            "--token-service-tls-name", "ts.ptk.internal"),
    }


def test_every_upstream_tls_context_verifies_chain_and_name(tmp_path):
    for label, config in configs_with_tls(tmp_path).items():
        tls_clusters = [c for c in config["static_resources"]["clusters"]
                        if "transport_socket" in c]
        names = {c["name"] for c in tls_clusters}
        expected = set(PROVIDER_CLUSTERS)
        if label.startswith("token-service tls"):
            expected |= {"token_service", "token_service_admin"}
        if label == "geo fallback":
            expected |= {"openai_egress"}
        assert names == expected, (label, names)
        for cluster in tls_clusters:
            tls = cluster["transport_socket"]["typed_config"]
            where = (label, cluster["name"])
            assert tls["@type"].endswith("UpstreamTlsContext"), where
            validation = tls["common_tls_context"]["validation_context"]
            ca = validation["trusted_ca"]["filename"]
            assert Path(ca).is_file(), where
            assert "trust_chain_verification" not in validation, where
            assert not validation.get("allow_expired_certificate"), where
            sans = validation["match_typed_subject_alt_names"]
            assert len(sans) == 1 and set(sans[0]["matcher"]) == {"exact"}, where
            if "sni" in tls:
                assert sans[0] == {"san_type": "DNS", "matcher": {"exact": tls["sni"]}}, where
            else:
                assert sans[0]["san_type"] == "IP_ADDRESS", where


def test_every_variant_passes_envoy_validate(tmp_path):
    require_built()
    env = dict(os.environ, PTK_CHECK_SECRET="validate-only-secret-0123456789")
    for label, config in configs_with_tls(tmp_path).items():
        if label == "committed":
            path = ROOT / "envoy.yaml"  # its .wasm path is relative to the repo root
        else:
            path = tmp_path / f"{label.replace(' ', '-')}.yaml"
            path.write_text(yaml.safe_dump(config))
        done = subprocess.run([ENVOY, "--mode", "validate", "-c", str(path)], cwd=ROOT, env=env,
                              capture_output=True, text=True, timeout=120)
        assert done.returncode == 0, (label, done.stdout[-2000:], done.stderr[-2000:])


def test_the_geo_fallback_puts_the_hold_filter_in_front_of_ptk(tmp_path):
    """--geo-fallback-egress: the Lua hold filter right before ptk (a wasm filter that pauses
    a 403's headers is shown no body), the route marked handshakes take, and the plugin
    setting naming the cluster; off, none of them (the committed config has no fallback)."""
    import json

    def plugin(config: dict) -> dict:
        ptk = next(f for f in hcm_of(config)["http_filters"] if f["name"] == "ptk")
        return json.loads(ptk["typed_config"]["config"]["configuration"]["value"])

    on = rendered(tmp_path / "on", "--geo-fallback-egress", "http://127.0.0.1:9")
    assert [f["name"] for f in hcm_of(on)["http_filters"]] == [
        "ptk_geo_hold", "ptk", "ptk_body_hold", "envoy.filters.http.router"]
    assert plugin(on)["providers"]["openai"]["geo_fallback"] == {"cluster": "openai_egress"}
    openai = next(v for v in hcm_of(on)["route_config"]["virtual_hosts"] if v["name"] == "openai")
    marked, direct = openai["routes"][:2]
    assert marked["route"]["cluster"] == "openai_egress" and direct["route"]["cluster"] == "openai"
    assert marked["match"]["headers"] == [
        {"name": "x-ptk-egress", "string_match": {"exact": "geo-fallback"}}]
    assert marked["request_headers_to_remove"] == ["x-ptk-egress"]
    for config in (committed(), rendered(tmp_path / "off")):
        assert [f["name"] for f in hcm_of(config)["http_filters"]] == [
            "ptk", "ptk_body_hold", "envoy.filters.http.router"]
        assert "geo_fallback" not in json.dumps(plugin(config))


def test_the_documented_connect_proxy_egress_passes_envoy_validate(tmp_path):
    """README's example of an egress cluster tunnelled through an HTTP CONNECT proxy."""
    readme = (ROOT / "README.md").read_text()
    start = readme.index("   - name: openai_egress")
    block = readme[start:readme.index("```", start)]
    cluster = yaml.safe_load("\n".join(line[3:] for line in block.splitlines()))
    path = tmp_path / "egress.yaml"
    path.write_text(yaml.safe_dump({"static_resources": {"clusters": cluster}}))
    done = subprocess.run([ENVOY, "--mode", "validate", "-c", str(path)], cwd=ROOT,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, (done.stdout[-2000:], done.stderr[-2000:])


def test_the_committed_provider_clusters_verify_the_real_hosts():
    clusters = {c["name"]: c for c in committed()["static_resources"]["clusters"]}
    for name, host in (("openai", "api.openai.com"), ("anthropic", "api.anthropic.com"),
                       ("gemini", "generativelanguage.googleapis.com")):
        tls = clusters[name]["transport_socket"]["typed_config"]
        assert tls["sni"] == host
        san = tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"]
        assert san == [{"san_type": "DNS", "matcher": {"exact": host}}]


def test_the_operators_ca_bundle_replaces_the_system_store(tmp_path):
    bundle = tmp_path / "corp-ca.pem"
    bundle.write_text("not parsed by the renderer\n")
    https = {"OPENAI_UPSTREAM": "https://llm-gateway.internal:8443"}
    config = rendered(tmp_path, "--provider-ca-file", str(bundle), env=https)
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] in PROVIDER_CLUSTERS:
            validation = cluster["transport_socket"]["typed_config"]["common_tls_context"][
                "validation_context"]
            assert validation["trusted_ca"]["filename"] == str(bundle)


REFUSED = {
    "plaintext check API off loopback": (
        ("--token-service", "10.0.0.7:10080"), "--token-service 10.0.0.7:10080: not loopback"),
    "plaintext admin off loopback": (
        ("--token-service-admin", "ts.ptk.svc:10081"), "--token-service-admin ts.ptk.svc:10081"),
    "tls name without tls": (
        ("--token-service-tls-name", "ts"), "--token-service-tls-name needs --token-service-tls-ca"),
    "missing token-service CA": (
        ("--token-service-tls-ca", "/no/such/ca.pem"), "--token-service-tls-ca: no such file"),
    "missing provider CA": (
        ("--provider-ca-file", "/no/such/ca.pem"), "--provider-ca-file: no such file"),
    "connect-to matching nothing": (
        ("--connect-to", "api.openai.com:80:127.0.0.1:9"), "no cluster connects to api.openai.com:80"),
    "replicas over tls without a name": (
        ("--token-service", "10.0.0.7:10080,10.0.0.8:10080",
         "--token-service-tls-ca", "/etc/ssl/certs/ca-certificates.crt"),
        "name their certificate with --token-service-tls-name"),
    "replicas by address and by name": (
        ("--token-service", "127.0.0.1:10080,localhost:10080"), "not both"),
    "connect-to moving the check API off loopback": (
        ("--connect-to", "127.0.0.1:10080:10.9.9.9:10080"),
        "cluster token_service would connect to 10.9.9.9:10080, not loopback"),
    "connect-to moving the admin cluster off loopback": (
        ("--connect-to", "127.0.0.1:10081:10.9.9.9:10081"),
        "cluster token_service_admin would connect to 10.9.9.9:10081, not loopback"),
    "connect-to moving a renamed check cluster off loopback": (
        ("--token-service-cluster", "outbound|10080||ts", "--connect-to",
         "127.0.0.1:10080:10.9.9.9:10080"),
        "cluster outbound|10080||ts would connect to 10.9.9.9:10080"),
    "connect-to malformed": (
        ("--connect-to", "api.openai.com:443"), "expected HOST:PORT:ADDRESS:PORT"),
}


@pytest.mark.parametrize("args, message", REFUSED.values(), ids=REFUSED.keys())
def test_render_refuses_unsafe_or_mistyped_upstream_settings(tmp_path, args, message):
    done = render(tmp_path, *args)
    assert done.returncode == 2 and message in done.stderr, done.stderr


def test_plaintext_off_loopback_only_when_asked_for(tmp_path):
    config = rendered(tmp_path, "--token-service", "10.0.0.7:10080", "--token-service-plaintext")
    check = next(c for c in config["static_resources"]["clusters"] if c["name"] == "token_service")
    assert "transport_socket" not in check
    assert render(tmp_path, "--token-service", "localhost:10080").returncode == 0
    # The rule holds for where a cluster finally connects: a --connect-to pin elsewhere on
    # loopback is fine, one across the network needs the same explicit flag (or TLS).
    assert render(tmp_path, "--connect-to", "127.0.0.1:10080:127.0.0.2:10080").returncode == 0
    pinned = rendered(tmp_path, "--connect-to", "127.0.0.1:10080:10.9.9.9:10080",
                      "--token-service-plaintext")
    check = next(c for c in pinned["static_resources"]["clusters"] if c["name"] == "token_service")
    assert check["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"][
        "socket_address"]["address"] == "10.9.9.9"
    tls = rendered(tmp_path, *TOKEN_SERVICE_TLS, "--connect-to",
                   "ts.ptk.internal:10080:10.9.9.9:10080")
    check = next(c for c in tls["static_resources"]["clusters"] if c["name"] == "token_service")
    assert check["transport_socket"]["typed_config"]["sni"] == "ts.ptk.internal"


def test_several_replicas_share_the_check_cluster_and_its_failover(tmp_path):
    config = rendered(tmp_path, "--token-service", "127.0.0.1:10080,127.0.0.2:10090")
    check = next(c for c in config["static_resources"]["clusters"] if c["name"] == "token_service")
    endpoints = [e["endpoint"]["address"]["socket_address"]
                 for e in check["load_assignment"]["endpoints"][0]["lb_endpoints"]]
    assert endpoints == [{"address": "127.0.0.1", "port_value": 10080},
                         {"address": "127.0.0.2", "port_value": 10090}]
    assert check["type"] == "STATIC"
    # The values agreed with the Istio DestinationRule, and the health check on /healthz.
    assert check["outlier_detection"] == {
        "consecutive_5xx": 2, "consecutive_gateway_failure": 1,
        "enforcing_consecutive_gateway_failure": 100, "interval": "1s",
        "base_ejection_time": "10s", "max_ejection_percent": 50}
    (health,) = check["health_checks"]
    assert health["http_health_check"] == {"path": "/healthz"}


# --- timeouts ------------------------------------------------------------------------------


def provider_routes(config: dict) -> list[dict]:
    return [route for vhost in hcm_of(config)["route_config"]["virtual_hosts"]
            for route in vhost["routes"]
            if route.get("route", {}).get("cluster") in PROVIDER_CLUSTERS]


def test_the_default_config_never_cuts_a_provider_call_before_600s(tmp_path):
    """Envoy's defaults count: a route without `timeout` has 15 s, a route without
    `idle_timeout` inherits the HCM's stream_idle_timeout, which is 300 s when unset; and a
    provider call without a body only ever gets the HCM's (it is routed before the filter names
    the provider: tests/e2e/test_provider_errors.py)."""
    mock = {v: "http://127.0.0.1:9" for v in
            ("OPENAI_UPSTREAM", "ANTHROPIC_UPSTREAM", "GEMINI_UPSTREAM")}
    for label, config in (("committed", committed()), ("make run", rendered(tmp_path / "a")),
                          ("overrides", rendered(tmp_path / "b", env=mock))):
        hcm = hcm_of(config)
        assert never_before(hcm.get("request_timeout")), label
        assert never_before(hcm.get("stream_idle_timeout", "300s")), label
        assert never_before(hcm.get("common_http_protocol_options", {})
                            .get("max_stream_duration")), label
        routes = provider_routes(config)
        assert {r["name"] for r in routes} == {"openai", "anthropic", "gemini", "gemini_openai"}
        for route in routes:
            action, where = route["route"], (label, route["name"])
            assert never_before(action.get("timeout", "15s")), where
            assert never_before(action.get("idle_timeout",
                                           hcm.get("stream_idle_timeout", "300s"))), where
            assert never_before(action.get("max_stream_duration", {})
                                .get("max_stream_duration")), where
        for cluster in config["static_resources"]["clusters"]:
            if cluster["name"] in PROVIDER_CLUSTERS:
                options = cluster.get("common_http_protocol_options", {})
                assert never_before(options.get("max_stream_duration")), (label, cluster["name"])


def test_the_provider_idle_timeout_is_configurable(tmp_path):
    config = rendered(tmp_path, "--provider-idle-timeout", "1800")
    assert {r["route"]["idle_timeout"] for r in provider_routes(config)} == {"1800s"}
    assert hcm_of(config)["stream_idle_timeout"] == "1800s"
    assert render(tmp_path, "--provider-idle-timeout", "-5").returncode == 2


# --- the client's address, and what the admin listener is told -----------------------------


def listeners_hcms(config: dict) -> dict[str, dict]:
    return {l["name"]: l["filter_chains"][0]["filters"][0]["typed_config"]
            for l in config["static_resources"]["listeners"]}


def with_tls_listener(tmp_path: Path, *args: str) -> dict:
    subprocess.run([str(ROOT / "tools/dev_cert.sh"), str(tmp_path / "tls")], check=True,
                   capture_output=True, timeout=60)
    return rendered(tmp_path, "--tls-port", "10443", "--tls-cert",
                    str(tmp_path / "tls/server.crt"), "--tls-key",
                    str(tmp_path / "tls/server.key"), *args)


def admin_headers(hcm: dict) -> list[dict[str, str]]:
    routes = [r for vhost in hcm["route_config"]["virtual_hosts"] for r in vhost["routes"]
              if r.get("route", {}).get("cluster") == "token_service_admin"]
    assert len(routes) == 2
    return [{h["header"]["key"]: h["header"]["value"] for h in r["request_headers_to_add"]}
            for r in routes]


def test_every_listener_takes_the_client_address_from_the_tcp_peer(tmp_path):
    """use_remote_address on every connection manager (a client-sent x-forwarded-for must not
    pick the guess throttle's key); providers get none of what Envoy adds about the client;
    the admin routes carry Envoy's own forwarding headers."""
    variants = {"committed": committed(),
                "make run": with_tls_listener(tmp_path / "a")}
    for label, config in variants.items():
        hcms = listeners_hcms(config)
        assert set(hcms) == ({"proxy"} if label == "committed" else {"proxy", "proxy_tls"})
        for name, hcm in hcms.items():
            where = (label, name)
            assert hcm["use_remote_address"] is True, where
            assert hcm.get("xff_num_trusted_hops", 0) == 0, where
            assert not hcm.get("skip_xff_append"), where
            for vhost in hcm["route_config"]["virtual_hosts"]:
                removed = set(vhost.get("request_headers_to_remove", []))
                if vhost["name"] in PROVIDER_CLUSTERS:
                    assert {"x-forwarded-for", "x-envoy-external-address",
                            "x-envoy-internal"} <= removed, (where, vhost["name"])
            for added in admin_headers(hcm):
                assert added["x-forwarded-for"] == \
                    "%DOWNSTREAM_DIRECT_REMOTE_ADDRESS_WITHOUT_PORT%", where
                assert added["x-forwarded-host"] == "%REQ(:AUTHORITY)%", where
                assert added["x-forwarded-proto"] == "%REQ(X-FORWARDED-PROTO)%", where


def test_trusted_hops_are_set_on_every_listener_and_reach_the_admin_routes(tmp_path):
    config = with_tls_listener(tmp_path / "a", "--xff-num-trusted-hops", "2")
    for name, hcm in listeners_hcms(config).items():
        assert hcm["use_remote_address"] is True and hcm["xff_num_trusted_hops"] == 2, name
        for added in admin_headers(hcm):
            assert added["x-forwarded-for"] == "%DOWNSTREAM_REMOTE_ADDRESS_WITHOUT_PORT%", name
    require_built()
    path = tmp_path / "hops.yaml"
    path.write_text(yaml.safe_dump(config))
    env = dict(os.environ, PTK_CHECK_SECRET="validate-only-secret-0123456789")
    done = subprocess.run([ENVOY, "--mode", "validate", "-c", str(path)], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr[-2000:]
    assert render(tmp_path / "b", "--xff-num-trusted-hops", "-1").returncode == 2


# --- Containers (deploy/compose) -------------------------------------------------------------


def test_listen_address_and_a_ca_path_inside_an_image(tmp_path):
    """--listen-address moves every proxy listener (the TLS copy too) and leaves the admin
    interface on loopback; --provider-ca-path names a bundle that only exists inside Envoy's
    image, so it is written as given, never looked for here."""
    default = rendered(tmp_path / "a")
    assert default["static_resources"]["listeners"][0]["address"]["socket_address"][
        "address"] == "127.0.0.1"
    (tmp_path / "tls").mkdir()
    subprocess.run([str(ROOT / "tools/dev_cert.sh"), str(tmp_path / "tls")], check=True,
                   capture_output=True)
    config = rendered(tmp_path / "b", "--listen-address", "0.0.0.0", "--tls-port", "10443",
                      "--tls-cert", str(tmp_path / "tls/server.crt"),
                      "--tls-key", str(tmp_path / "tls/server.key"),
                      "--provider-ca-path", "/only/in/the/image/ca.pem")
    listeners = config["static_resources"]["listeners"]
    assert [l["address"]["socket_address"]["address"] for l in listeners] == ["0.0.0.0"] * 2
    assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
    for cluster in config["static_resources"]["clusters"]:
        if cluster["name"] in PROVIDER_CLUSTERS:
            context = cluster["transport_socket"]["typed_config"]["common_tls_context"]
            assert context["validation_context"]["trusted_ca"] == {
                "filename": "/only/in/the/image/ca.pem"}
