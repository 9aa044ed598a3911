"""The three Envoy configurations, all derived from the committed envoy.yaml through
tools/render_envoy.py, so they share the listener, route table, access log, timeouts and
upstream cluster and differ only in the auth step:

- `filter`: the config as committed (the ptk wasm filter);
- `plain`: the ptk filter removed (requests carry `Host: api.openai.com` to pick the route);
- `ext_authz`: the ptk filter replaced by Envoy's HTTP ext_authz calling bench-authz;
- `wasm_empty`: the ptk filter replaced by a wasm filter that implements nothing: the cost of
  the VM entries alone;
- `wasm_floor`: the ptk filter replaced by a trivial wasm header swap (bench/wasm-floor), the
  cost of running any proxy-wasm filter before the ptk filter does any work.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import yaml  # PyYAML is in .venv already: tools/render_envoy.py needs it

ROOT = Path(__file__).resolve().parents[2]
UPSTREAM_HOST = "api.openai.com"


def render(out_dir: Path, name: str, *, mock: str, proxy_port: int, admin_port: int,
           token_service: str, wasm: Path, deny_ttl_ms: int, cache: bool = True,
           plugin: dict | None = None) -> dict:
    """The committed config with bench ports, the mock as every provider's upstream, and the
    access log written to /dev/null (formatted as in production, but not stored); `plugin`
    is merged into the filter's plugin configuration (e.g. metering off)."""
    out = out_dir / f"envoy-{name}.rendered.yaml"
    env = dict(os.environ, OPENAI_UPSTREAM=mock, ANTHROPIC_UPSTREAM=mock, GEMINI_UPSTREAM=mock)
    subprocess.run(
        [sys.executable, str(ROOT / "tools/render_envoy.py"), "--out", str(out),
         "--proxy-port", str(proxy_port), "--admin-port", str(admin_port),
         "--token-service", token_service,
         # No admin listener runs in the bench; the /admin routes are never hit.
         "--token-service-admin", token_service,
         "--wasm", str(wasm), "--deny-ttl-ms", str(deny_ttl_ms), "--access-log", "/dev/null",
         *([] if cache else ["--no-cache"]),
         *(["--plugin-config", json.dumps(plugin)] if plugin else [])],
        env=env, check=True,
    )
    return yaml.safe_load(out.read_text())


def _hcm(config: dict) -> dict:
    listener = config["static_resources"]["listeners"][0]
    return listener["filter_chains"][0]["filters"][0]["typed_config"]


def _drop_ptk(config: dict) -> int:
    """Removes the ptk filter and its per-route settings; returns where it sat in the chain."""
    hcm = _hcm(config)
    names = [f["name"] for f in hcm["http_filters"]]
    at = names.index("ptk")
    del hcm["http_filters"][at]
    for vhost in hcm["route_config"]["virtual_hosts"]:
        for route in vhost.get("routes", []):
            route.get("typed_per_filter_config", {}).pop("ptk", None)
    return at


def plain(config: dict) -> dict:
    _drop_ptk(config)
    return config


def wasm_floor(config: dict, floor_wasm: Path, mode: str = "swap") -> dict:
    """The ptk filter's slot, VM settings and fail-closed policy, with the bench filter in
    `mode` (bench/wasm-floor: `swap`, `empty` or `probe`)."""
    hcm = _hcm(config)
    ptk = next(f for f in hcm["http_filters"] if f["name"] == "ptk")
    wasm = ptk["typed_config"]["config"]
    wasm["vm_config"]["code"]["local"]["filename"] = str(floor_wasm)
    wasm["vm_config"]["vm_id"] = f"floor-{mode}"
    wasm["configuration"]["value"] = mode
    return config


def ext_authz(config: dict, authz_addr: str) -> dict:
    """HTTP ext_authz in the ptk filter's place: Envoy sends the request headers to
    bench-authz and copies its `authorization` answer (the real key) upstream."""
    at = _drop_ptk(config)
    _hcm(config)["http_filters"].insert(at, {
        "name": "envoy.filters.http.ext_authz",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.ext_authz.v3.ExtAuthz",
            "transport_api_version": "V3",
            "failure_mode_allow": False,  # fail closed, like the ptk filter
            "http_service": {
                "server_uri": {"uri": f"http://{authz_addr}", "cluster": "bench_authz",
                               "timeout": "2s"},
                "authorization_request": {
                    "allowed_headers": {"patterns": [{"exact": "authorization"}]}},
                "authorization_response": {
                    "allowed_upstream_headers": {"patterns": [{"exact": "authorization"}]}},
            },
        },
    })
    host, port = authz_addr.rsplit(":", 1)
    config["static_resources"]["clusters"].append({
        "name": "bench_authz",
        "type": "STATIC",
        "connect_timeout": "1s",
        "load_assignment": {"cluster_name": "bench_authz", "endpoints": [{"lb_endpoints": [
            {"endpoint": {"address": {"socket_address": {"address": host,
                                                          "port_value": int(port)}}}}]}]},
    })
    return config


def write(config: dict, path: Path, envoy: str, env: dict[str, str]) -> Path:
    """Writes the config as JSON and checks it with `envoy --mode validate`."""
    path.write_text(json.dumps(config, indent=1))
    check = subprocess.run([envoy, "--mode", "validate", "-c", str(path)], env=env,
                           capture_output=True, text=True, timeout=120)
    if check.returncode != 0:
        raise RuntimeError(f"envoy --mode validate rejected {path}:\n{check.stdout}{check.stderr}")
    return path
