"""The request-body hold on Istio (deploy/istio/: the EnvoyFilter of 50-wasmplugin.yaml, the Lua
TrafficExtension of trafficextension/ptk.yaml): the same Lua as envoy.yaml's `ptk_body_hold`;
the chain istiod builds from each install path's objects (tests/deploy/istiod_chain.py) has it
after the ptk filter and before the router, and a misplaced or mis-selected hold is caught;
that chain, run in the real Envoy, keeps a limited token's refused model from the provider,
forwards an allowed one whole and only once its body is in, and estimates a budgeted token's
request from its body."""

from __future__ import annotations

import copy
import json
import time

import pytest
import requests
import yaml

from tests.e2e.harness import REAL_KEYS, ROOT

from .istiod_chain import LUA_TYPE, ROUTER
from .test_istio_manifests import (file_objects, istio_stack, istiod_http_filters,  # noqa: F401
                                   objects, wasm_filters)

#: Each install path's plugin file: the filter and its request-body hold.
PATHS = {"wasmplugin": "50-wasmplugin.yaml", "trafficextension": "trafficextension/ptk.yaml"}
HOLD = "x-ptk-hold-body"
#: A gateway listener port (the mirror's patches match on none).
PORT = 8443


def envoy_yaml_hold_lua() -> str:
    config = yaml.safe_load((ROOT / "envoy.yaml").read_text())
    listener = config["static_resources"]["listeners"][0]
    hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
    [hold] = [f for f in hcm["http_filters"] if f["name"] == "ptk_body_hold"]
    return hold["typed_config"]["default_source_code"]["inline_string"]


def manifest_hold_lua(mesh: list[dict]) -> list[str]:
    out = []
    for obj in mesh:
        if obj["kind"] == "EnvoyFilter":
            out += [p["patch"]["value"]["typed_config"]["default_source_code"]["inline_string"]
                    for p in obj["spec"]["configPatches"]]
        elif "lua" in obj["spec"]:
            out.append(obj["spec"]["lua"]["inlineCode"])
    return out


@pytest.mark.parametrize("path", PATHS)
def test_the_hold_is_envoy_yamls_lua_and_the_plugin_config_says_it_is_there(path):
    mesh = file_objects(PATHS[path])
    assert manifest_hold_lua(mesh) == [envoy_yaml_hold_lua()]
    [plugin] = [o["spec"].get("wasm", o["spec"]) for o in mesh if "lua" not in o["spec"]
                and o["kind"] in ("WasmPlugin", "TrafficExtension")]
    assert plugin["pluginConfig"]["limits"] == {"body_hold": True}


def hold_placement(mesh: list[dict]) -> str:
    """Where the hold ends up in the chain istiod builds: `after ptk` (right), `before ptk`,
    `missing` or `twice`."""
    chain = istiod_http_filters(mesh, PORT)
    names = [f["name"] for f in chain]
    [ptk] = wasm_filters(chain)
    holds = [i for i, f in enumerate(chain) if f["typed_config"]["@type"] == LUA_TYPE]
    if not holds:
        return "missing"
    if len(holds) > 1:
        return "twice"
    assert names[-1] == ROUTER
    return "after ptk" if names.index(ptk["name"]) < holds[0] else "before ptk"


@pytest.mark.parametrize("path", PATHS)
def test_istiod_places_the_hold_after_ptk_and_before_the_router(path):
    mesh = file_objects(PATHS[path])
    assert hold_placement(mesh) == "after ptk"
    names = [f["name"] for f in istiod_http_filters(mesh, PORT)]
    if path == "wasmplugin":
        # Patched in just before the router, whatever istiod names the plugin's filter.
        assert names[-2:] == ["ptk_body_hold", ROUTER]
        assert names[0] == "extensions.istio.io/trafficextension/ptk-gateway.ptk" \
            "~istio-translated-wasmplugin"
    else:
        # Right after ptk, by priority within the same phase.
        assert names[:2] == ["extensions.istio.io/trafficextension/ptk-gateway.ptk",
                             "extensions.istio.io/trafficextension/ptk-gateway.ptk-body-hold"]


def _edit(kind: str, edit):
    def mutate(mesh: list[dict]) -> list[dict]:
        mesh = copy.deepcopy(mesh)
        for obj in mesh:
            if obj["kind"] == kind and (kind == "EnvoyFilter" or "lua" in obj["spec"]):
                edit(obj)
        return mesh
    return mutate


def _patch(**fields):
    return lambda o: o["spec"]["configPatches"][0]["patch"].update(fields)


def _match(**fields):
    return lambda o: o["spec"]["configPatches"][0]["match"].update(fields)


MISPLACED = [
    # (install path, mutation, where the hold ends up)
    ("wasmplugin", _edit("EnvoyFilter", _patch(operation="INSERT_FIRST")), "before ptk"),
    ("wasmplugin", _edit("EnvoyFilter", lambda o: o["spec"].update(
        workloadSelector={"labels": {"istio": "ingressgateway"}})), "missing"),
    ("wasmplugin", _edit("EnvoyFilter", lambda o: o["metadata"].update(namespace="ptk")),
     "missing"),
    ("wasmplugin", _edit("EnvoyFilter", _match(context="SIDECAR_INBOUND")), "missing"),
    ("trafficextension", _edit("TrafficExtension", lambda o: o["spec"].update(priority=10)),
     "before ptk"),
    ("trafficextension", _edit("TrafficExtension", lambda o: o["spec"].update(phase="AUTHN")),
     "before ptk"),
    ("trafficextension", _edit("TrafficExtension", lambda o: o["spec"].pop("priority")),
     "after ptk"),  # no priority counts as the lowest: still after ptk
    ("trafficextension", _edit("TrafficExtension", lambda o: o["spec"].update(
        selector={"matchLabels": {"istio": "ingressgateway"}})), "missing"),
]


@pytest.mark.parametrize("path,mutate,where", MISPLACED,
                         ids=[f"{p}-{w}-{i}" for i, (p, _, w) in enumerate(MISPLACED)])
def test_a_misplaced_or_mis_selected_hold_is_caught(path, mutate, where):
    assert hold_placement(mutate(file_objects(PATHS[path]))) == where


# --- through the real Envoy --------------------------------------------------------------------

def chat(model: str, **extra) -> dict:
    return {"model": model, "messages": [{"role": "user", "content": "hi"}], **extra}


def post(stack, token: str, data) -> requests.Response:
    if isinstance(data, dict):
        data = json.dumps(data)
    return requests.post(f"{stack.url}/v1/chat/completions", data=data, timeout=20,
                         headers={"authorization": f"Bearer {token}",
                                  "content-type": "application/json"})


def in_two_parts(body: bytes, gap_s: float):
    """The body chunked (no content-length), its second part `gap_s` after the first."""
    yield body[:10]
    time.sleep(gap_s)
    yield body[10:]


def seen_once(stack, body: bytes, start: float, gap_s: float) -> None:
    """The mock saw exactly this request: body whole, unmarked, real key, after the gap."""
    [seen] = stack.upstream_requests()
    headers = dict(seen["headers"])
    assert seen["body"] == body.decode()
    assert HOLD not in {k.lower() for k in headers}, headers
    assert headers["authorization"] == f"Bearer {REAL_KEYS['OPENAI_API_KEY']}"
    # Held until the body was in: without the hold the headers go on at once.
    assert seen["time"] - start >= gap_s, seen["time"] - start


@pytest.mark.parametrize("path", PATHS)
def test_the_chain_runs_the_hold_in_envoy(istio_stack, path):
    # The verdict TTL outlasts each held request: a revalidation of an open request can close
    # a limited token's (cache TTL 0) or a budgeted token's request as revoked, which is not
    # what this test is about (reported separately).
    stack = istio_stack(file_objects(PATHS[path]),
                        objects()["VirtualService/ptk/ptk-providers"], cache_ttl_ms=5000).start()
    gap = 0.5
    # A limited token: a refused model never reaches the provider...
    limited = stack.mint("openai", "--models", "gpt-5*")["token"]
    r = post(stack, limited, chat("gpt-4o"))
    assert r.status_code == 403 and r.json()["error"]["code"] == "model_not_allowed", r.text
    assert stack.upstream_requests() == []
    # ...an allowed one does, whole, once its body is in.
    body = json.dumps(chat("gpt-5-mini")).encode()
    start = time.time()
    r = post(stack, limited, in_two_parts(body, gap))
    assert r.status_code == 200, r.text
    seen_once(stack, body, start, gap)

    # A budgeted token: estimated from the body. Its max_tokens over the whole budget is
    # refused before anything is forwarded (from the headers alone it would be the default
    # cap, which fits)...
    stack.reset_upstream()
    budgeted = stack.mint("openai", "--token-budget", "100000/day")["token"]
    r = post(stack, budgeted, chat("gpt-5-mini", max_tokens=500000))
    assert r.status_code == 429 and r.json()["error"]["code"] == "budget_exhausted", r.text
    assert stack.upstream_requests() == []
    # ...and a chunked body (no content-length, which without the hold is refused as
    # unmeterable) is estimated and forwarded whole.
    body = json.dumps(chat("gpt-5-mini", max_tokens=64)).encode()
    start = time.time()
    r = post(stack, budgeted, in_two_parts(body, gap))
    assert r.status_code == 200, r.text
    seen_once(stack, body, start, gap)
