"""The HTTP filter chain istiod 1.30 pushes to a gateway's HTTP connection manager, mirrored
from istio/istio 1.30.0 so the tests can run what the manifests make of the ptk gateway:

- `pilot/pkg/config/kube/extensions/translate.go` (`translateWasmPlugin`): every WasmPlugin
  becomes a TrafficExtension named `NAME~istio-translated-wasmplugin`, phase and priority kept;
- `pilot/pkg/model/push_context.go` (`TrafficExtensionsByListenerInfo`, `sortByPriority`): the
  extensions of the proxy's namespace, then of the root namespace, each in creation order,
  whose selector the proxy's labels satisfy, then per phase stably sorted by priority, highest
  first (none counts as the lowest, MinInt32);
- `pilot/pkg/networking/core/listener_builder.go` (`buildHTTPConnectionManager`): AUTHN
  extensions, AUTHZ, STATS, UNSPECIFIED (`PopAppendHTTPTrafficExtension`), then gRPC stats,
  fault, CORS and the router last; an extension's filter is named
  `extensions.istio.io/trafficextension/NAMESPACE.NAME`; a Lua one is inlined
  (`extension/lua.go`: `default_source_code.inline_string`), a Wasm one is fetched by ECDS
  (here inlined, the module a local file, which is what the istio-agent hands Envoy);
- `pilot/pkg/model/push_context.go` (`EnvoyFilters`) and
  `pilot/pkg/networking/core/envoyfilter/listener_patch.go` (`patchHTTPFilters`): the
  EnvoyFilters of the root namespace and the proxy's whose `workloadSelector` its labels
  satisfy, sorted by priority, root namespace first, creation order, name; each HTTP_FILTER
  patch of context GATEWAY (or ANY) applied in turn to the chain built above.

Left out: the filters only Istio's own proxy build has (metadata exchange, `istio_authn`,
`istio.alpn`, `istio.stats`) and the RBAC/ext_authz filters of AuthorizationPolicies (none
selects the ptk gateway). None of them is a patch anchor here, and the stock Envoy the tests
run has no such filters. Match fields the mirror does not implement fail loudly rather than
matching differently from istiod.
"""

from __future__ import annotations

import copy
from typing import Callable

#: The root namespace of a default Istio install (meshConfig.rootNamespace).
ROOT_NAMESPACE = "istio-system"
EXTENSION_PREFIX = "extensions.istio.io/trafficextension/"
WASMPLUGIN_MARKER = "~istio-translated-wasmplugin"
HCM = "envoy.filters.network.http_connection_manager"
ROUTER = "envoy.filters.http.router"
LUA_TYPE = "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua"
#: TrafficExtension phases in the order the listener builder appends them.
PHASES = ("AUTHN", "AUTHZ", "STATS", "UNSPECIFIED")
MIN_INT32 = -(2**31)

#: Istio's own HTTP filters after the extensions (`xdsfilters.GrpcStats`, `Fault`, `Cors`,
#: `BuildRouterFilter`), in stock Envoy's terms.
TAIL = [
    {"name": "envoy.filters.http.grpc_stats", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.grpc_stats.v3.FilterConfig",
        "emit_filter_state": True, "stats_for_all_methods": False}},
    {"name": "envoy.filters.http.fault", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault"}},
    {"name": "envoy.filters.http.cors", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.cors.v3.Cors"}},
    {"name": ROUTER, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}},
]


def as_traffic_extension(obj: dict) -> dict:
    """`translateWasmPlugin` for a WasmPlugin; a TrafficExtension as it is."""
    if obj["kind"] == "TrafficExtension":
        return obj
    spec = obj["spec"]
    phase = spec.get("phase", "UNSPECIFIED_PHASE")
    wasm = {k: v for k, v in spec.items()
            if k not in ("selector", "targetRefs", "phase", "priority", "match")}
    te_spec = {"phase": "UNSPECIFIED" if phase == "UNSPECIFIED_PHASE" else phase, "wasm": wasm}
    for key in ("selector", "priority", "match"):
        if key in spec:
            te_spec[key] = spec[key]
    meta = dict(obj["metadata"], name=obj["metadata"]["name"] + WASMPLUGIN_MARKER)
    return {"apiVersion": "extensions.istio.io/v1alpha1", "kind": "TrafficExtension",
            "metadata": meta, "spec": te_spec}


def selected(spec_selector: dict | None, namespace: str, proxy_labels: dict,
             proxy_namespace: str) -> bool:
    """Root-namespace or same-namespace objects whose label selector the proxy satisfies (an
    absent selector selects every workload of the namespace)."""
    if namespace not in (proxy_namespace, ROOT_NAMESPACE):
        return False
    labels = spec_selector or {}
    return labels.items() <= proxy_labels.items()


def extension_filter(te: dict, wasm_config: Callable[[dict], dict]) -> dict:
    """`toEnvoyHTTPTrafficExtension`: Lua inlined, Wasm through `wasm_config` (ECDS in istiod)."""
    name = f"{EXTENSION_PREFIX}{te['metadata']['namespace']}.{te['metadata']['name']}"
    spec = te["spec"]
    if "lua" in spec:
        return {"name": name, "typed_config": {
            "@type": LUA_TYPE, "default_source_code": {"inline_string": spec["lua"]["inlineCode"]}}}
    return {"name": name, "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": wasm_config(te)}}


def gateway_extensions(objects: list[dict], proxy_labels: dict,
                       proxy_namespace: str) -> dict[str, list[dict]]:
    """Phase -> the TrafficExtensions (WasmPlugins translated) the proxy gets, in order."""
    extensions = [as_traffic_extension(o) for o in objects
                  if o["kind"] in ("WasmPlugin", "TrafficExtension")]
    by_phase: dict[str, list[dict]] = {}
    for namespace in dict.fromkeys([proxy_namespace, ROOT_NAMESPACE]):
        for te in extensions:
            spec = te["spec"]
            if te["metadata"]["namespace"] == namespace and selected(
                    (spec.get("selector") or {}).get("matchLabels"), namespace, proxy_labels,
                    proxy_namespace):
                by_phase.setdefault(spec.get("phase", "UNSPECIFIED"), []).append(te)
    for phase, tes in by_phase.items():
        tes.sort(key=lambda te: -te["spec"].get("priority", MIN_INT32))  # stable
    return by_phase


def gateway_http_filters(objects: list[dict], proxy_labels: dict, proxy_namespace: str,
                         wasm_config: Callable[[dict], dict]) -> list[dict]:
    """The gateway HCM's http_filters, before EnvoyFilter patches."""
    by_phase = gateway_extensions(objects, proxy_labels, proxy_namespace)
    chain = [extension_filter(te, wasm_config) for phase in PHASES
             for te in by_phase.get(phase, [])]
    return chain + copy.deepcopy(TAIL)


# --- EnvoyFilter ---------------------------------------------------------------------------

def gateway_envoy_filters(objects: list[dict], proxy_labels: dict,
                          proxy_namespace: str) -> list[dict]:
    """`PushContext.EnvoyFilters`: the EnvoyFilters that apply to the proxy, in patch order
    (priority, root namespace first, then creation order, which here is the list's)."""
    matched = [(i, o) for i, o in enumerate(objects) if o["kind"] == "EnvoyFilter"
               and selected((o["spec"].get("workloadSelector") or {}).get("labels"),
                            o["metadata"]["namespace"], proxy_labels, proxy_namespace)]
    matched.sort(key=lambda p: (p[1]["spec"].get("priority", 0),
                                p[1]["metadata"]["namespace"] != ROOT_NAMESPACE, p[0]))
    return [o for _, o in matched]


def _sub_filter(match: dict) -> str | None:
    """The patch's `subFilter.name`, after checking it names the HCM and nothing the mirror
    does not implement."""
    listener = match.get("listener") or {}
    unknown = set(listener) - {"filterChain", "portNumber"}
    chain = listener.get("filterChain") or {}
    unknown |= set(chain) - {"filter"}
    flt = chain.get("filter")
    if flt is None:
        if unknown:
            raise NotImplementedError(f"EnvoyFilter listener match {sorted(unknown)}")
        return None
    unknown |= set(flt) - {"name", "subFilter"}
    if unknown:
        raise NotImplementedError(f"EnvoyFilter listener match {sorted(unknown)}")
    if flt.get("name") != HCM:
        return "\0no-match"  # networkFilterMatch: a patch for another network filter
    return (flt.get("subFilter") or {}).get("name")


def apply_http_filter_patches(chain: list[dict], envoy_filters: list[dict],
                              listener_port: int, context: str = "GATEWAY") -> list[dict]:
    """`patchHTTPFilters` for every HTTP_FILTER patch of the applicable EnvoyFilters."""
    chain = list(chain)
    for ef in envoy_filters:
        for patch in ef["spec"].get("configPatches", []):
            if patch["applyTo"] != "HTTP_FILTER":
                continue
            match = patch.get("match") or {}
            if match.get("context", "ANY") not in (context, "ANY") or match.get("proxy"):
                continue
            port = (match.get("listener") or {}).get("portNumber")
            if port and port != listener_port:
                continue
            sub = _sub_filter(match)
            if sub == "\0no-match":
                continue
            chain = _patch(chain, patch["patch"]["operation"], sub, patch["patch"].get("value"))
    return chain


def _patch(chain: list[dict], op: str, sub: str | None, value: dict | None) -> list[dict]:
    hit = [i for i, f in enumerate(chain) if sub is None or f["name"] == sub]
    new = copy.deepcopy(value)
    if op == "ADD" or (op == "INSERT_AFTER" and sub is None):
        return chain + [new]
    if op == "INSERT_FIRST" or (op == "INSERT_BEFORE" and sub is None):
        return [new] + chain
    if op in ("INSERT_AFTER", "INSERT_BEFORE"):
        if not hit:
            return chain  # no anchor: istiod skips the patch
        at = hit[0] + (op == "INSERT_AFTER")
        return chain[:at] + [new] + chain[at:]
    if op == "REMOVE" and sub is not None:
        return [f for f in chain if f["name"] != sub]
    if op == "REPLACE" and sub is not None:
        return chain if not hit else chain[:hit[0]] + [new] + chain[hit[0] + 1:]
    raise NotImplementedError(f"EnvoyFilter HTTP_FILTER operation {op}")
