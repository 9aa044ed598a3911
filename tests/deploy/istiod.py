"""What istiod makes of a WasmPlugin: the Envoy `envoy.extensions.filters.http.wasm.v3.Wasm`
config it pushes to the proxy, mirrored from istio/istio `pilot/pkg/model/extensions.go`
(`convertToWasmPluginWrapper`, `buildVMConfig`), with the module as a local file (what the
istio-agent hands Envoy after pulling the `oci://` image).
"""

from __future__ import annotations

import json

#: Keys istiod always adds to the VM environment (`WasmResourceVersionEnv`, `WasmPolicyEnv`).
RESOURCE_VERSION_ENV = "ISTIO_META_WASM_PLUGIN_RESOURCE_VERSION"
PULL_POLICY_ENV = "ISTIO_META_WASM_IMAGE_PULL_POLICY"


def plugin_config_json(plugin_config: dict) -> str:
    """`protomarshal.ToJSON(pluginConfig)`: compact JSON, keys sorted (a protobuf Struct is a
    map, which Go's JSON encoders write in key order)."""
    return json.dumps(plugin_config, sort_keys=True, separators=(",", ":"), ensure_ascii=False)


def vm_environment(spec: dict, resource_version: str = "1") -> dict:
    """`buildVMConfig`: INLINE entries become key_values, HOST entries host_env_keys (values the
    proxy process's own environment supplies)."""
    key_values = {RESOURCE_VERSION_ENV: resource_version}
    if spec.get("imagePullPolicy", "UNSPECIFIED_POLICY") != "UNSPECIFIED_POLICY":
        key_values[PULL_POLICY_ENV] = spec["imagePullPolicy"]
    env: dict = {"key_values": key_values}
    entries = (spec.get("vmConfig") or {}).get("env") or []
    if entries:
        env["host_env_keys"] = [e["name"] for e in entries if e.get("valueFrom") == "HOST"]
        for e in entries:
            if e.get("valueFrom", "INLINE") == "INLINE":
                key_values[e["name"]] = e.get("value", "")
    return env


def wasm_filter_config(plugin: dict, module_path: str) -> dict:
    """The filter's `typed_config.config` istiod would send for this WasmPlugin object."""
    spec, meta = plugin["spec"], plugin["metadata"]
    config = {
        "name": f"{meta['namespace']}.{meta['name']}",
        "root_id": spec.get("pluginName", ""),
        "fail_open": spec.get("failStrategy") == "FAIL_OPEN",
        "vm_config": {
            "runtime": "envoy.wasm.runtime.v8",
            "code": {"local": {"filename": module_path}},
            "environment_variables": vm_environment(spec),
        },
    }
    if spec.get("pluginConfig"):
        config["configuration"] = {
            "@type": "type.googleapis.com/google.protobuf.StringValue",
            "value": plugin_config_json(spec["pluginConfig"]),
        }
    return config
