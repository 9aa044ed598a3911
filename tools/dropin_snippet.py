#!/usr/bin/env python3
"""Write deploy/envoy/ptk-dropin.yaml, the pieces an operator adds to their own Envoy, from
envoy.yaml (the config `make run` and the tests use), so the two never drift: the snippet is
generated, and tests/deploy/test_envoy_dropin.py fails until it is regenerated after a change
to envoy.yaml (`python3 tools/dropin_snippet.py`).

The pieces are envoy.yaml's own, with two changes that make them safe in a config that serves
other traffic: the filter entries (ptk and the request-body hold filter after it) are
`disabled: true` (they run only where a virtual host turns them on), and each ptk virtual host
turns them on. The entry virtual host (`ptk_entry`) is
envoy.yaml's catch-all `unrouted` host under a name of the operator's choosing
(tools/merge_dropin.py --domain).
"""

from __future__ import annotations

import argparse
import copy
import sys
from pathlib import Path

import yaml

from envoy_upstreams import provider_names

ROOT = Path(__file__).resolve().parent.parent
SNIPPET = ROOT / "deploy/envoy/ptk-dropin.yaml"

#: The connection manager settings ptk needs (see each piece's comment in the snippet).
HCM_KEYS = ("use_remote_address", "early_header_mutation_extensions", "stream_idle_timeout",
            "request_timeout", "upgrade_configs", "local_reply_config", "access_log")
ENTRY_VHOST = "ptk_entry"
#: Placeholder host name of the entry virtual host (tools/merge_dropin.py --domain).
ENTRY_DOMAIN = "llm.example.com"
FILTER_CONFIG = "type.googleapis.com/envoy.config.route.v3.FilterConfig"
#: Per-host config that turns the default-disabled ptk filter on: any valid per-route config
#: does, and the wasm filter has none of its own, so an empty one that Envoy may ignore
#: (`is_optional`). Envoy builds a request's filter chain from the first route it matches,
#: so the filter runs for requests that arrive on these hosts (then re-routes them).
ON = {"@type": FILTER_CONFIG, "is_optional": True,
      "config": {"@type": "type.googleapis.com/google.protobuf.Empty"}}
#: The request-body hold filter (after ptk): the same, so it runs wherever ptk does.
HOLD_FILTER = "ptk_body_hold"
ENABLE_PTK = {"ptk": ON, HOLD_FILTER: ON}

HEADER = """\
# ptk drop-in for an existing Envoy (1.40): the pieces to add to your own config.
# GENERATED from envoy.yaml by tools/dropin_snippet.py: do not edit, regenerate.
# deploy/envoy/README.md is the checklist; tools/merge_dropin.py merges these pieces into a
# config (one listener) for you, or copy them by hand, each where its comment says.
# Values to adapt: the .wasm path, the token-service addresses (check API and admin
# listener), the CA bundle provider certificates are verified against, the entry domain.
# envoy.yaml (the repository's full config) carries the reasons behind each setting.
"""

COMMENTS = {
    "http_filter": """
# 1. The ptk wasm filter: into your listener's HttpConnectionManager `http_filters`, before
#    envoy.filters.http.router (and before any filter that must only see authorised
#    requests). `disabled: true`: it runs only on the virtual hosts below that turn it on,
#    so your own routes never see it. Envoy must have PTK_CHECK_SECRET in its environment
#    (the same value as the token-service's); fail_open: false refuses traffic if it cannot
#    load.
""",
    "hold_filter": """
# 1b. The request-body hold filter: into the same `http_filters`, right AFTER ptk and before
#    the router. For a request ptk marks (x-ptk-hold-body: a token with a model allow-list on
#    a route whose model is in the JSON body) it keeps the headers from the router until the
#    whole body is in, so ptk reads the model and can refuse (403) before the provider hears
#    of the request; it removes the mark. Unmarked requests pass. A held body over the
#    connection's buffer limit (per_connection_buffer_limit_bytes, 1 MiB by default) gets
#    413. ptk's plugin configuration says it is installed (`limits.body_hold: true`): without
#    this filter, set it false, and such requests are refused.
""",
    "connection_manager": """
# 2. Settings of that HttpConnectionManager. use_remote_address: the client address is the
#    TCP peer (the guess throttle's key; set xff_num_trusted_hops behind trusted proxies).
#    early_header_mutation_extensions: client-sent x-envoy-* headers are dropped.
#    stream_idle_timeout / request_timeout: long completions and streams are not cut.
#    upgrade_configs: WebSockets (OpenAI Realtime, Gemini Live). local_reply_config: Envoy's
#    own 502/504 for a provider route in that provider's error shape (keyed on the route
#    names below; put these mappers before yours). access_log: a format that never prints a
#    credential, a query or a token-shaped path (yours must not print the auth headers or
#    the query either).
""",
    "virtual_hosts": """
# 3. Virtual hosts, into that HttpConnectionManager's route_config (inline). The providers'
#    hosts are matched on the `:authority` the filter rewrites (api.openai.com, ...): no
#    other virtual host of yours may claim those names. `ptk_entry` is where clients point
#    (base URL http(s)://llm.example.com[:port]; change the domain): the filter runs there,
#    picks the provider and rewrites the authority, so Envoy re-routes to a provider host.
#    Its /admin routes (dashboard and admin API, filter disabled) go to the token-service's
#    admin listener with the check secret. Every ptk host turns the filter on.
""",
    "clusters": """
# 4. Clusters, into static_resources.clusters: the token-service's admin listener and check
#    API (several replicas: more lb_endpoints; outlier detection, the /healthz health check
#    and the filter's one retry take a dead replica out; plain HTTP only on loopback, else
#    verified TLS or a mesh's mTLS) and the three providers over TLS verified against the
#    CA bundle (chain and DNS name).
""",
}


def pieces(envoy: dict) -> dict:
    """The drop-in pieces taken from a loaded envoy.yaml."""
    listener = next(l for l in envoy["static_resources"]["listeners"] if l["name"] == "proxy")
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    ptk = copy.deepcopy(next(f for f in hcm["http_filters"] if f["name"] == "ptk"))
    http_filter = {"name": ptk.pop("name"), "disabled": True, **ptk}
    hold = copy.deepcopy(next(f for f in hcm["http_filters"] if f["name"] == HOLD_FILTER))
    hold_filter = {"name": hold.pop("name"), "disabled": True, **hold}
    vhosts = {v["name"]: v for v in hcm["route_config"]["virtual_hosts"]}
    hosts = []
    for name in provider_names(hcm["route_config"]["virtual_hosts"]):
        host = copy.deepcopy(vhosts[name])
        host["typed_per_filter_config"] = copy.deepcopy(ENABLE_PTK)
        hosts.append(host)
    entry = copy.deepcopy(vhosts["unrouted"])
    entry["name"] = ENTRY_VHOST
    entry["domains"] = [ENTRY_DOMAIN, f"{ENTRY_DOMAIN}:*"]
    entry["typed_per_filter_config"] = copy.deepcopy(ENABLE_PTK)
    hosts.append(entry)
    return {
        "http_filter": http_filter,
        "hold_filter": hold_filter,
        "connection_manager": {k: copy.deepcopy(hcm[k]) for k in HCM_KEYS},
        "virtual_hosts": hosts,
        "clusters": copy.deepcopy(envoy["static_resources"]["clusters"]),
    }


class NoAliasDumper(yaml.SafeDumper):
    """Writes shared values in full, so every piece reads on its own."""

    def ignore_aliases(self, data: object) -> bool:
        return True


def _str(dumper: yaml.SafeDumper, data: str) -> yaml.Node:
    # Multi-line strings (the plugin configuration) as literal blocks, as in envoy.yaml.
    style = "|" if "\n" in data else None
    return dumper.represent_scalar("tag:yaml.org,2002:str", data, style=style)


NoAliasDumper.add_representer(str, _str)


def render(envoy: dict) -> str:
    """The snippet file's text."""
    out = [HEADER]
    for key, value in pieces(envoy).items():
        out.append(COMMENTS[key])
        out.append(yaml.dump({key: value}, Dumper=NoAliasDumper, sort_keys=False, width=100))
    return "".join(out)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--envoy", default=str(ROOT / "envoy.yaml"))
    parser.add_argument("--out", default=str(SNIPPET))
    parser.add_argument("--check", action="store_true",
                        help="exit 1 if --out differs from what would be written")
    args = parser.parse_args(argv)
    with open(args.envoy, encoding="utf-8") as fh:
        text = render(yaml.safe_load(fh))
    if args.check:
        current = Path(args.out).read_text(encoding="utf-8") if Path(args.out).exists() else ""
        if current != text:
            print(f"{args.out} is stale: run python3 tools/dropin_snippet.py", file=sys.stderr)
            return 1
        return 0
    Path(args.out).write_text(text, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
