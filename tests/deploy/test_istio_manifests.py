"""deploy/istio/: every manifest validates offline (Istio CRDs of istio/api 1.30.0 with their CEL
rules, core objects against the Kubernetes JSON schemas), a typo'd field fails, the objects
agree with each other and with the code, and the WasmPlugin's pluginConfig, serialised as
istiod does, runs the built filter in the real Envoy and passes a request."""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path

import pytest
import requests
import yaml

from tests.e2e.harness import ROOT, WASM, Stack

from .istiod import plugin_config_json, wasm_filter_config
from .kube_schema import (CRD_DIR, K8S_CEL_FUNCTIONS, Invalid, program, load_documents,
                          validate)

DEPLOY = ROOT / "deploy/istio"
#: Both sides refuse a check secret shorter than this (filter-core config.rs MIN_SECRET_LEN,
#: token-service settings.rs), so the committed placeholders fail closed.
MIN_SECRET_LEN = 16


def manifests() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in sorted(DEPLOY.rglob("*.yaml")) for doc in load_documents(path)]


def objects() -> dict[str, dict]:
    return {f"{doc['kind']}/{doc['metadata'].get('namespace', '')}/{doc['metadata']['name']}": doc
            for _, doc in manifests()}


WASMPLUGIN = "WasmPlugin/istio-system/ptk"


# --- validation --------------------------------------------------------------------------------

def test_every_manifest_validates_against_its_schema():
    checked = {}
    for path, doc in manifests():
        checked[f"{path.relative_to(DEPLOY)}: {doc['kind']}/{doc['metadata']['name']}"] = \
            validate(doc)
    kinds = sorted(key.split(": ")[1].split("/")[0] for key in checked)
    assert kinds == sorted(
        ["Namespace", "ServiceAccount", "Secret", "Secret", "Deployment", "Service",
         "PodDisruptionBudget", "PeerAuthentication", "AuthorizationPolicy", "Gateway",
         "VirtualService", "WasmPlugin", "TrafficExtension"]
        + ["DestinationRule"] * 4 + ["ServiceEntry"] * 3), checked
    # The CEL rules did run (WasmPlugin: selector/targetRef exclusivity, url scheme, env, ...).
    assert re.search(r"\((\d+) CEL rules\)", checked["50-wasmplugin.yaml: WasmPlugin/ptk"])
    assert "(0 CEL rules)" not in checked["50-wasmplugin.yaml: WasmPlugin/ptk"]


#: Standard CEL functions and macros the CRDs' rules use (cel-python implements them).
STANDARD_CEL = {"duration", "has", "size", "all", "exists", "exists_one", "contains",
                "startsWith", "endsWith", "matches", "int"}


def test_every_cel_rule_of_the_crds_compiles_and_calls_only_known_functions():
    # So no rule of a manifest we add later meets a function nothing here implements.
    rules: list[str] = []

    def walk(node: object) -> None:
        if isinstance(node, dict):
            rules.extend(r["rule"] for r in node.get("x-kubernetes-validations", []))
            for value in node.values():
                walk(value)
        elif isinstance(node, list):
            for value in node:
                walk(value)

    for path in CRD_DIR.glob("*-crd.yaml"):
        walk(load_documents(path))
    assert len(rules) > 80
    for rule in rules:
        program(rule)
        called = set(re.findall(r"([A-Za-z_]\w*)\(", rule))
        assert called <= STANDARD_CEL | set(K8S_CEL_FUNCTIONS), rule


def _set(path: list, value):
    def mutate(doc: dict) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[path[-1]] = value
    return mutate


def _rename(path: list, new: str):
    def mutate(doc: dict) -> None:
        node = doc
        for key in path[:-1]:
            node = node[key]
        node[new] = node.pop(path[-1])
    return mutate


TYPOS = [
    # (object, mutation, what the error must name)
    (WASMPLUGIN, _rename(["spec", "failStrategy"], "failStratgy"), "failStratgy"),
    (WASMPLUGIN, _rename(["spec", "vmConfig", "env"], "envs"), "envs"),
    (WASMPLUGIN, _set(["spec", "failStrategy"], "FAIL_CLOSED"), "FAIL_CLOSED"),
    (WASMPLUGIN, _set(["spec", "sha256"], "sha256:" + "0" * 64), "sha256"),
    (WASMPLUGIN, _set(["spec", "url"], "ftp://registry.example.com/ptk/filter"), "url must have"),
    (WASMPLUGIN, _set(["spec", "vmConfig", "env", 0, "value"], "x"), "valueFrom is INLINE"),
    ("DestinationRule/ptk/token-service",
     _rename(["spec", "trafficPolicy", "outlierDetection", "consecutive5xxErrors"],
             "consecutive5xxError"), "consecutive5xxError"),
    ("DestinationRule/ptk/token-service",
     _set(["spec", "trafficPolicy", "outlierDetection", "interval"], "0s"), "valid duration"),
    ("DestinationRule/ptk/openai",
     _rename(["spec", "trafficPolicy", "portLevelSettings", 0, "tls", "subjectAltNames"],
             "subjectAltName"), "subjectAltName"),
    ("ServiceEntry/ptk/openai", _set(["spec", "ports", 0, "targetPort"], 70000), "65535"),
    ("AuthorizationPolicy/ptk/token-service-check-api",
     _rename(["spec", "rules", 0, "to", 0, "operation", "paths"], "path"), "path"),
    ("TrafficExtension/istio-system/ptk", _rename(["spec", "wasm"], "wassm"), "wassm"),
    ("Deployment/ptk/token-service", _rename(["spec", "replicas"], "replica"), "replica"),
    ("Deployment/ptk/token-service",
     _rename(["spec", "template", "spec", "containers", 0, "envFrom"], "envFromm"), "envFromm"),
    ("PodDisruptionBudget/ptk/token-service", _rename(["spec", "minAvailable"], "minAvailible"),
     "minAvailible"),
    ("Service/ptk/token-service", _set(["spec", "ports", 0, "port"], "ten-thousand"),
     "ten-thousand"),
    (WASMPLUGIN, _rename(["metadata", "namespace"], "namespce"), "namespce"),
]


@pytest.mark.parametrize("key,mutate,named", TYPOS, ids=[t[2] for t in TYPOS])
def test_a_typo_fails_validation(key, mutate, named):
    doc = copy.deepcopy(objects()[key])
    validate(doc)  # valid as committed
    mutate(doc)
    with pytest.raises(Invalid) as err:
        validate(doc)
    assert named in str(err.value)


# --- the objects agree with each other and with the code ---------------------------------------

def check_side_paths() -> set[str]:
    """The POST paths the token-service's check listener serves (token-service/src/http)."""
    routes = (ROOT / "token-service/src/http/mod.rs").read_text()
    consts = re.findall(r"\.route\(ptk_wire::(\w+), post\(", routes)
    wire = "".join(p.read_text() for p in (ROOT / "wire/src").glob("*.rs"))
    return {re.search(rf'pub const {c}: &str = "([^"]+)"', wire).group(1) for c in consts}


def test_only_the_gateway_reaches_the_check_api_and_only_over_mtls():
    objs = objects()
    policy = objs["AuthorizationPolicy/ptk/token-service-check-api"]["spec"]
    assert policy["action"] == "ALLOW" and len(policy["rules"]) == 1
    rule = policy["rules"][0]
    assert rule["from"] == [{"source": {"principals": [
        "cluster.local/ns/istio-system/sa/istio-ingressgateway-service-account"]}}]
    assert set(rule["to"][0]["operation"]["paths"]) == check_side_paths() == {
        "/v1/check", "/v1/revalidate", "/v1/usage"}
    assert objs["PeerAuthentication/ptk/token-service"]["spec"]["mtls"] == {"mode": "STRICT"}
    dr = objs["DestinationRule/ptk/token-service"]["spec"]
    assert dr["trafficPolicy"]["tls"] == {"mode": "ISTIO_MUTUAL"}
    assert dr["trafficPolicy"]["outlierDetection"] == {
        "consecutive5xxErrors": 2, "consecutiveGatewayErrors": 1, "interval": "1s",
        "baseEjectionTime": "10s", "maxEjectionPercent": 50}
    # The admin listener stays on the pod's loopback: out of the mesh's reach.
    env = {e["name"]: e.get("value")
           for e in objs["Deployment/ptk/token-service"]["spec"]["template"]["spec"]
           ["containers"][0]["env"]}
    assert env["PTK_ADMIN_LISTEN"].startswith("127.0.0.1:")


def test_the_plugin_config_names_the_mesh_objects():
    objs = objects()
    plugin = objs[WASMPLUGIN]["spec"]
    assert plugin["failStrategy"] == "FAIL_CLOSE"
    ts = plugin["pluginConfig"]["token_service"]
    service = objs["Service/ptk/token-service"]
    host = f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local"
    port = service["spec"]["ports"][0]["port"]
    assert ts["cluster"] == f"outbound|{port}||{host}"
    assert objs["DestinationRule/ptk/token-service"]["spec"]["host"] == host
    # The secret comes from the proxy's environment, under the name the filter reads.
    assert {"name": ts["secret_env"], "valueFrom": "HOST"} in plugin["vmConfig"]["env"]
    # Every provider authority is a ServiceEntry host with verified TLS origination, and a
    # gateway route.
    http = objs["VirtualService/ptk/ptk-providers"]["spec"]["http"]
    routes = {r["match"][0]["authority"]["exact"]: r["route"][0]["destination"] for r in http}
    assert all(r["retries"] == {"attempts": 0} and "timeout" not in r for r in http)
    for provider, conf in plugin["pluginConfig"]["providers"].items():
        host = conf["authority"]
        entry = objs[f"ServiceEntry/ptk/{provider}"]["spec"]
        assert entry["hosts"] == [host] and entry["ports"][0]["targetPort"] == 443
        rule = objs[f"DestinationRule/ptk/{provider}"]["spec"]
        # Visible where the filter runs (the gateway's namespace), and no wider.
        assert entry["exportTo"] == rule["exportTo"] == [objs[WASMPLUGIN]["metadata"]["namespace"]]
        tls = rule["trafficPolicy"]["portLevelSettings"][0]
        port = entry["ports"][0]["number"]
        assert tls["port"]["number"] == port == routes[host]["port"]["number"]
        assert tls["tls"] == {"mode": "SIMPLE", "sni": host, "subjectAltNames": [host],
                              "insecureSkipVerify": False,
                              "caCertificates": "/etc/ssl/certs/ca-certificates.crt"}
        assert routes[host]["host"] == host
    traffic_extension = objs["TrafficExtension/istio-system/ptk"]["spec"]
    assert traffic_extension["wasm"]["pluginConfig"] == plugin["pluginConfig"]
    assert traffic_extension["wasm"]["vmConfig"] == plugin["vmConfig"]


def test_committed_secrets_are_placeholders_that_fail_closed():
    for key in ("Secret/ptk/token-service", "Secret/istio-system/ptk-check-secret"):
        secret = objects()[key]["stringData"]["PTK_CHECK_SECRET"]
        assert len(secret) < MIN_SECRET_LEN, key


# --- the pluginConfig through the real Envoy ---------------------------------------------------

@dataclass
class IstioStack(Stack):
    """The e2e stack with the filter configured exactly as istiod would from the WasmPlugin
    (name, root id, configuration bytes, VM environment, fail_open); the check cluster
    carries Istio's `outbound|PORT||HOST` name."""

    #: The WasmPlugin object.
    plugin: dict = field(default_factory=dict)

    def render(self, out: Path, **overrides: str) -> None:
        super().render(out, **overrides)
        config = yaml.safe_load(out.read_text())
        for listener in config["static_resources"]["listeners"]:
            hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
            ptk = next(f for f in hcm["http_filters"] if f["name"] == "ptk")
            ptk["typed_config"]["config"] = wasm_filter_config(self.plugin, str(WASM))
        out.write_text(yaml.safe_dump(config, sort_keys=False))




@pytest.fixture
def istio_stack():
    made: list[Stack] = []

    def make(plugin: dict) -> Stack:
        """An IstioStack for this WasmPlugin object, not started yet."""
        cluster = plugin["spec"]["pluginConfig"]["token_service"]["cluster"]
        stack = IstioStack(plugin=plugin, token_service_cluster=cluster, cache_ttl_ms=0)
        made.append(stack)
        return stack

    try:
        yield make
    finally:
        for stack in made:
            stack.stop()
            stack.cleanup()


def envoy_wasm_config(stack: Stack) -> dict:
    dump = requests.get(f"http://127.0.0.1:{stack.admin_port}/config_dump?resource="
                        "static_listeners", timeout=5).json()
    for listener in dump["configs"]:
        if listener["listener"]["name"] == "proxy":
            hcm = listener["listener"]["filter_chains"][0]["filters"][0]["typed_config"]
            ptk = next(f for f in hcm["http_filters"] if f["name"] == "ptk")
            return ptk["typed_config"]["config"]
    raise AssertionError("no proxy listener in the config dump")


def test_the_manifest_plugin_config_runs_the_filter_in_envoy(istio_stack):
    plugin = objects()[WASMPLUGIN]
    stack = istio_stack(plugin).start()
    loaded = envoy_wasm_config(stack)
    # Envoy holds the very bytes istiod sends, and the secret's name only (no value).
    assert loaded["configuration"]["value"] == plugin_config_json(plugin["spec"]["pluginConfig"])
    assert loaded["configuration"]["value"].startswith('{"providers":{"anthropic":')
    assert loaded["vm_config"]["environment_variables"]["host_env_keys"] == ["PTK_CHECK_SECRET"]
    assert stack.secret not in str(loaded)
    token = stack.mint()["token"]
    r = requests.post(f"{stack.url}/v1/chat/completions", json={"model": "m", "messages": []},
                      headers={"authorization": f"Bearer {token}"}, timeout=10)
    assert r.status_code == 200, r.text
    [forwarded] = stack.upstream_requests()
    assert ("authorization", "Bearer sk-REAL-openai-4f1d9c") in \
        [(k.lower(), v) for k, v in forwarded["headers"]]
    refused = requests.post(f"{stack.url}/v1/chat/completions", json={},
                            headers={"authorization": "Bearer ptk_not_a_real_token_000"},
                            timeout=10)
    assert refused.status_code == 401


def test_without_the_host_env_the_filter_has_no_secret_and_envoy_refuses_it(istio_stack):
    # The check secret reaches the filter only through vmConfig.env valueFrom: HOST (Envoy's
    # host_env_keys). Without it the filter refuses its configuration, naming the variable, and
    # with FAIL_CLOSE (fail_open: false) Envoy refuses the whole filter chain: nothing is served
    # unchecked. (Under istiod the same rejection comes back as a NACK.)
    plugin = copy.deepcopy(objects()[WASMPLUGIN])
    del plugin["spec"]["vmConfig"]
    stack = istio_stack(plugin)
    with pytest.raises(RuntimeError, match="envoy exited"):
        stack.start()
    logs = stack.logs()
    assert "PTK_CHECK_SECRET: not set in the VM environment" in logs, logs[-3000:]
    assert stack.secret not in logs
