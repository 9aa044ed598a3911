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
from .istiod_chain import apply_http_filter_patches, gateway_envoy_filters, gateway_http_filters
from .kube_schema import (CRD_DIR, K8S_CEL_FUNCTIONS, Invalid, program, load_documents,
                          validate)

DEPLOY = ROOT / "deploy/istio"
#: Both sides refuse a check secret shorter than this (wire/src/lib.rs MIN_CHECK_SECRET_LEN,
#: which a wire test pins this copy to), so the committed placeholders fail closed.
MIN_SECRET_LEN = 16


def manifests() -> list[tuple[Path, dict]]:
    return [(path, doc) for path in sorted(DEPLOY.rglob("*.yaml")) for doc in load_documents(path)]


def objects() -> dict[str, dict]:
    return {f"{doc['kind']}/{doc['metadata'].get('namespace', '')}/{doc['metadata']['name']}": doc
            for _, doc in manifests()}


WASMPLUGIN = "WasmPlugin/ptk-gateway/ptk"
TRAFFIC_EXTENSION = "TrafficExtension/ptk-gateway/ptk"
GATEWAY_DEPLOYMENT = "Deployment/ptk-gateway/ptk-gateway"
BODY_HOLD_FILTER = "EnvoyFilter/ptk-gateway/ptk-body-hold"
BODY_HOLD_EXTENSION = "TrafficExtension/ptk-gateway/ptk-body-hold"


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
         # ptk's own gateway (25-gateway-deployment.yaml)
         "Namespace", "ServiceAccount", "Deployment", "Service", "Role", "RoleBinding",
         "PodDisruptionBudget",
         "VirtualService", "WasmPlugin", "TrafficExtension",
         # the request-body hold, in each install path's form
         "EnvoyFilter", "TrafficExtension"]
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
    (TRAFFIC_EXTENSION, _rename(["spec", "wasm"], "wassm"), "wassm"),
    ("Deployment/ptk/token-service", _rename(["spec", "replicas"], "replica"), "replica"),
    ("Deployment/ptk/token-service",
     _rename(["spec", "template", "spec", "containers", 0, "envFrom"], "envFromm"), "envFromm"),
    ("PodDisruptionBudget/ptk/token-service", _rename(["spec", "minAvailable"], "minAvailible"),
     "minAvailible"),
    ("Service/ptk/token-service", _set(["spec", "ports", 0, "port"], "ten-thousand"),
     "ten-thousand"),
    (WASMPLUGIN, _rename(["metadata", "namespace"], "namespce"), "namespce"),
    (BODY_HOLD_FILTER, _rename(["spec", "workloadSelector"], "workloadSelecter"),
     "workloadSelecter"),
    (BODY_HOLD_FILTER, _set(["spec", "configPatches", 0, "patch", "operation"], "INSERT_AFTERR"),
     "INSERT_AFTERR"),
    (BODY_HOLD_EXTENSION, _rename(["spec", "lua", "inlineCode"], "inline_code"), "inlineCode"),
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
    consts = re.findall(r"\.route\(\s*ptk_wire::(\w+),\s*post\(", routes)
    assert len(consts) >= 3, f"the route scan found {consts}: update it to the router's layout"
    wire = "".join(p.read_text() for p in (ROOT / "wire/src").glob("*.rs"))
    return {re.search(rf'pub const {c}: &str = "([^"]+)"', wire).group(1) for c in consts}


def test_only_the_gateway_reaches_the_check_api_and_only_over_mtls():
    objs = objects()
    policy = objs["AuthorizationPolicy/ptk/token-service-check-api"]["spec"]
    assert policy["action"] == "ALLOW" and len(policy["rules"]) == 1
    rule = policy["rules"][0]
    gateway = objs[GATEWAY_DEPLOYMENT]
    assert rule["from"] == [{"source": {"principals": [
        f"cluster.local/ns/{gateway['metadata']['namespace']}/sa/"
        f"{gateway['spec']['template']['spec']['serviceAccountName']}"]}}]
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
    traffic_extension = objs[TRAFFIC_EXTENSION]["spec"]
    assert traffic_extension["wasm"]["pluginConfig"] == plugin["pluginConfig"]
    assert traffic_extension["wasm"]["vmConfig"] == plugin["vmConfig"]


def test_committed_secrets_are_placeholders_that_fail_closed():
    for key in ("Secret/ptk/token-service", "Secret/ptk-gateway/ptk-check-secret"):
        secret = objects()[key]["stringData"]["PTK_CHECK_SECRET"]
        assert len(secret) < MIN_SECRET_LEN, key


def test_the_filter_runs_on_ptks_own_gateway_only():
    # F0/F4: on a shared gateway the filter runs in every server's chain; after the key swap
    # and :authority rewrite another server's `*` route would hand the real key to its
    # backend. So: one dedicated gateway, selected by the WasmPlugin, the TrafficExtension and
    # ptk's Gateway alike, and by nothing else.
    objs = objects()
    deployment = objs[GATEWAY_DEPLOYMENT]
    namespace = deployment["metadata"]["namespace"]
    pod = deployment["spec"]["template"]
    labels = pod["metadata"]["labels"]
    # Installed as Istio documents gateway injection.
    assert pod["metadata"]["annotations"]["inject.istio.io/templates"] == "gateway"
    assert labels["sidecar.istio.io/inject"] == "true"
    [proxy] = pod["spec"]["containers"]
    assert proxy["name"] == "istio-proxy" and proxy["image"] == "auto"
    selector = objs[WASMPLUGIN]["spec"]["selector"]["matchLabels"]
    assert selector == {"istio": "ptk-gateway"} != {"istio": "ingressgateway"}
    assert objs[TRAFFIC_EXTENSION]["spec"]["selector"]["matchLabels"] == selector
    assert deployment["spec"]["selector"]["matchLabels"] == selector
    assert selector.items() <= labels.items()
    assert objs[f"Service/{namespace}/ptk-gateway"]["spec"]["selector"] == selector
    # The plugins live in the gateway's namespace, so they apply to its workloads only.
    assert objs[WASMPLUGIN]["metadata"]["namespace"] == namespace
    assert objs[TRAFFIC_EXTENSION]["metadata"]["namespace"] == namespace
    # So does the request-body hold, in both forms.
    assert objs[BODY_HOLD_FILTER]["spec"]["workloadSelector"]["labels"] == selector
    assert objs[BODY_HOLD_EXTENSION]["spec"]["selector"]["matchLabels"] == selector
    assert objs[BODY_HOLD_FILTER]["metadata"]["namespace"] == namespace
    assert objs[BODY_HOLD_EXTENSION]["metadata"]["namespace"] == namespace
    gateways = [doc for _, doc in manifests() if doc["kind"] == "Gateway"]
    assert [g["spec"]["selector"] for g in gateways] == [selector]
    [gateway] = gateways
    assert gateway["metadata"]["namespace"] == namespace
    # Only ptk's VirtualServices may bind to its server, and they name this Gateway.
    for server in gateway["spec"]["servers"]:
        assert all(h.startswith("ptk/") for h in server["hosts"]), server["hosts"]
    for key, doc in objs.items():
        if doc["kind"] == "VirtualService":
            assert doc["metadata"]["namespace"] == "ptk", key
            assert doc["spec"]["gateways"] == [f"{namespace}/{gateway['metadata']['name']}"]
    # The proxy's environment carries the check secret (vmConfig.env valueFrom: HOST), from
    # the Secret in its own namespace; and the gateway's certificate is readable there.
    [env] = [e for e in proxy["env"] if e["name"] == "PTK_CHECK_SECRET"]
    ref = env["valueFrom"]["secretKeyRef"]
    assert f"Secret/{namespace}/{ref['name']}" in objs and ref["key"] == "PTK_CHECK_SECRET"
    account = pod["spec"]["serviceAccountName"]
    assert f"ServiceAccount/{namespace}/{account}" in objs
    binding = objs[f"RoleBinding/{namespace}/ptk-gateway-sds"]
    assert binding["subjects"] == [
        {"kind": "ServiceAccount", "name": account, "namespace": namespace}]


def test_the_filter_runs_last_before_the_router():
    # F9: in AUTHN/AUTHZ it would precede Istio's authorization filters (an ext_authz would
    # receive the real key). Istio puts an unspecified phase just before the router.
    assert objects()[WASMPLUGIN]["spec"]["phase"] == "UNSPECIFIED_PHASE"
    assert objects()[TRAFFIC_EXTENSION]["spec"]["phase"] == "UNSPECIFIED"


def envoy_provider_header_removals() -> dict[str, set[str]]:
    """What the plain Envoy drop-in strips on each provider's virtual host."""
    out = {}
    for doc in load_documents(ROOT / "deploy/envoy/ptk-dropin.yaml"):
        for vhost in (doc or {}).get("virtual_hosts", []) if isinstance(doc, dict) else []:
            if vhost.get("request_headers_to_remove"):
                for domain in vhost["domains"]:
                    out[domain] = set(vhost["request_headers_to_remove"])
    return out


def test_providers_never_see_the_client_address():
    # F6: the gateway's provider routes drop what the plain Envoy config drops (the client's
    # address in x-forwarded-for / x-envoy-external-address), plus x-envoy-original-host.
    plain = envoy_provider_header_removals()
    assert {"x-forwarded-for", "x-envoy-external-address"} <= plain["api.openai.com"]
    objs = objects()
    hosts = {c["authority"]
             for c in objs[WASMPLUGIN]["spec"]["pluginConfig"]["providers"].values()}
    routed = set()
    for key, doc in objs.items():
        if doc["kind"] != "VirtualService":
            continue
        for route in doc["spec"]["http"]:
            host = route["route"][0]["destination"]["host"]
            removed = set(route.get("headers", {}).get("request", {}).get("remove", []))
            assert plain[host] | {"x-envoy-original-host"} <= removed, (key, host, removed)
            routed.add(host)
    assert routed == hosts


def test_every_provider_service_entry_has_its_tls_origination_in_the_same_file():
    # F7: a ServiceEntry port is plain HTTP to the provider's 443; only its DestinationRule
    # makes that TLS. Both live in one file, so one is never applied without the other.
    entries = 0
    for path in sorted(DEPLOY.rglob("*.yaml")):
        docs = load_documents(path)
        for entry in (d for d in docs if d["kind"] == "ServiceEntry"):
            entries += 1
            [host] = entry["spec"]["hosts"]
            rules = [d for d in docs if d["kind"] == "DestinationRule"
                     and d["spec"]["host"] == host
                     and d["metadata"]["namespace"] == entry["metadata"]["namespace"]]
            assert len(rules) == 1, (path, host)
            settings = {s["port"]["number"]: s["tls"]
                        for s in rules[0]["spec"]["trafficPolicy"]["portLevelSettings"]}
            for port in entry["spec"]["ports"]:
                tls = settings[port["number"]]
                assert tls["mode"] == "SIMPLE" and tls["sni"] == host, (path, host)
                assert tls["subjectAltNames"] == [host] and tls["caCertificates"], (path, host)
                assert tls.get("insecureSkipVerify", False) is False, (path, host)
            assert rules[0]["spec"]["exportTo"] == entry["spec"]["exportTo"], (path, host)
    assert entries == 3


# --- the pluginConfig through the real Envoy ---------------------------------------------------

def gateway_pod() -> tuple[dict, str]:
    """The labels and namespace of ptk's gateway pods (25-gateway-deployment.yaml)."""
    deployment = objects()[GATEWAY_DEPLOYMENT]
    return deployment["spec"]["template"]["metadata"]["labels"], \
        deployment["metadata"]["namespace"]


def file_objects(name: str) -> list[dict]:
    """The objects of one manifest file under deploy/istio/ (one install path's plugin file)."""
    return load_documents(DEPLOY / name)


def istiod_http_filters(mesh: list[dict], listener_port: int) -> list[dict]:
    """The http_filters istiod would push to ptk's gateway for these objects
    (tests/deploy/istiod_chain.py), the Wasm module the built `.wasm`."""
    labels, namespace = gateway_pod()

    def wasm_config(extension: dict) -> dict:
        return wasm_filter_config({"metadata": extension["metadata"],
                                   "spec": extension["spec"]["wasm"]}, str(WASM))

    chain = gateway_http_filters(mesh, labels, namespace, wasm_config)
    return apply_http_filter_patches(
        chain, gateway_envoy_filters(mesh, labels, namespace), listener_port)


def wasm_filters(chain: list[dict]) -> list[dict]:
    return [f for f in chain if f["typed_config"]["@type"].endswith(".wasm.v3.Wasm")]


@dataclass
class IstioStack(Stack):
    """The e2e stack with the HTTP filter chain istiod would push to ptk's gateway for the
    given objects (tests/deploy/istiod_chain.py): the filter configured exactly as istiod would
    from the WasmPlugin or TrafficExtension (name, root id, configuration bytes, VM
    environment, fail_open), placed by phase and priority, and the EnvoyFilter patches
    applied. A WasmPlugin has no per-route switch, so the plain config's per-route `disabled`
    entries are dropped; the check cluster carries Istio's `outbound|PORT||HOST` name."""

    #: The objects of one install path: the WasmPlugin (or Wasm TrafficExtension) and what
    #: else istiod would see for the gateway (the EnvoyFilter or Lua TrafficExtension).
    mesh: list[dict] = field(default_factory=list)
    #: The provider VirtualService: each provider route's `headers.request.remove` replaces
    #: the plain config's removals on that provider's routes (Istio: the route's
    #: request_headers_to_remove).
    virtual_service: dict = field(default_factory=dict)

    def render(self, out: Path, **overrides: str) -> None:
        super().render(out, **overrides)
        config = yaml.safe_load(out.read_text())
        for listener in config["static_resources"]["listeners"]:
            hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
            port = listener["address"]["socket_address"]["port_value"]
            hcm["http_filters"] = istiod_http_filters(self.mesh, port)
            assert len(wasm_filters(hcm["http_filters"])) == 1, hcm["http_filters"]
            if self.virtual_service:
                apply_header_removals(hcm["route_config"], self.virtual_service)
        drop_per_route_filter_config(config)
        out.write_text(yaml.safe_dump(config, sort_keys=False))


def apply_header_removals(route_config: dict, virtual_service: dict) -> None:
    removals = {r["match"][0]["authority"]["exact"]:
                r.get("headers", {}).get("request", {}).get("remove", [])
                for r in virtual_service["spec"]["http"]}
    for vhost in route_config["virtual_hosts"]:
        [remove] = {tuple(removals[d]) for d in vhost["domains"] if d in removals} or {None}
        if remove is None:
            continue
        vhost.pop("request_headers_to_remove", None)
        for route in vhost["routes"]:
            route["request_headers_to_remove"] = list(remove)
            if not remove:
                del route["request_headers_to_remove"]


def drop_per_route_filter_config(node: object) -> None:
    """Removes every `typed_per_filter_config` entry for the filter (virtual host and route
    level): under Istio it runs on every request of the gateway."""
    if isinstance(node, dict):
        per_filter = node.get("typed_per_filter_config")
        if isinstance(per_filter, dict):
            per_filter.pop("ptk", None)
            if not per_filter:
                del node["typed_per_filter_config"]
        for value in node.values():
            drop_per_route_filter_config(value)
    elif isinstance(node, list):
        for value in node:
            drop_per_route_filter_config(value)


def per_route_filter_configs(node: object) -> int:
    if isinstance(node, dict):
        return ("ptk" in (node.get("typed_per_filter_config") or {})) + sum(
            per_route_filter_configs(v) for v in node.values())
    if isinstance(node, list):
        return sum(per_route_filter_configs(v) for v in node)
    return 0




@pytest.fixture
def istio_stack():
    made: list[Stack] = []

    def make(mesh: list[dict], virtual_service: dict | None = None, **kw) -> Stack:
        """An IstioStack for these objects (one install path's), not started yet."""
        [plugin] = [o["spec"].get("wasm", o["spec"]) for o in mesh
                    if o["kind"] in ("WasmPlugin", "TrafficExtension") and "lua" not in o["spec"]]
        cluster = plugin["pluginConfig"]["token_service"]["cluster"]
        kw.setdefault("cache_ttl_ms", 0)
        stack = IstioStack(mesh=mesh, virtual_service=virtual_service or {},
                           token_service_cluster=cluster, **kw)
        made.append(stack)
        return stack

    try:
        yield make
    finally:
        for stack in made:
            stack.stop()
            stack.cleanup()


def envoy_proxy_hcm(stack: Stack) -> dict:
    dump = requests.get(f"http://127.0.0.1:{stack.admin_port}/config_dump?resource="
                        "static_listeners", timeout=5).json()
    for listener in dump["configs"]:
        if listener["listener"]["name"] == "proxy":
            return listener["listener"]["filter_chains"][0]["filters"][0]["typed_config"]
    raise AssertionError("no proxy listener in the config dump")


def envoy_wasm_config(stack: Stack) -> dict:
    [ptk] = wasm_filters(envoy_proxy_hcm(stack)["http_filters"])
    assert not ptk.get("disabled")
    return ptk["typed_config"]["config"]


def test_the_manifest_plugin_config_runs_the_filter_in_envoy(istio_stack):
    plugin = objects()[WASMPLUGIN]
    stack = istio_stack(file_objects("50-wasmplugin.yaml"),
                        objects()["VirtualService/ptk/ptk-providers"]).start()
    loaded = envoy_wasm_config(stack)
    # Envoy holds the very bytes istiod sends, and the secret's name only (no value).
    assert loaded["configuration"]["value"] == plugin_config_json(plugin["spec"]["pluginConfig"])
    assert loaded["configuration"]["value"].startswith('{"limits":{"body_hold":true},"providers":')
    assert loaded["vm_config"]["environment_variables"]["host_env_keys"] == ["PTK_CHECK_SECRET"]
    assert stack.secret not in str(loaded)
    # On every route, as under istiod.
    assert per_route_filter_configs(envoy_proxy_hcm(stack)) == 0
    token = stack.mint()["token"]
    r = requests.post(f"{stack.url}/v1/chat/completions", json={"model": "m", "messages": []},
                      headers={"authorization": f"Bearer {token}",
                               "x-forwarded-for": "198.51.100.7"}, timeout=10)
    assert r.status_code == 200, r.text
    [forwarded] = stack.upstream_requests()
    headers = [(k.lower(), v) for k, v in forwarded["headers"]]
    assert ("authorization", "Bearer sk-REAL-openai-4f1d9c") in headers
    # The provider route's removals (the VirtualService's): no client address upstream.
    assert not {"x-forwarded-for", "x-envoy-external-address"} & {k for k, _ in headers}, \
        headers
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
    stack = istio_stack([plugin])
    with pytest.raises(RuntimeError, match="envoy exited"):
        stack.start()
    logs = stack.logs()
    assert "PTK_CHECK_SECRET: not set in the VM environment" in logs, logs[-3000:]
    assert stack.secret not in logs
