"""Static checks of the committed envoy.yaml and of what tools/render_envoy.py makes of it
(as `make run` calls it): no provider call is cut before 600 s. The runtime side is in
test_provider_errors.py."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import yaml

from .harness import ROOT

PROVIDER_CLUSTERS = ("openai", "anthropic", "gemini")
SDK_TIMEOUT_S = 600


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


# --- timeouts ------------------------------------------------------------------------------


def provider_routes(config: dict) -> list[dict]:
    return [route for vhost in hcm_of(config)["route_config"]["virtual_hosts"]
            for route in vhost["routes"]
            if route.get("route", {}).get("cluster") in PROVIDER_CLUSTERS]


def test_the_default_config_never_cuts_a_provider_call_before_600s(tmp_path):
    """Envoy's defaults count: a route without `timeout` has 15 s, a route without
    `idle_timeout` inherits the HCM's stream_idle_timeout, which is 300 s when unset."""
    mock = {v: "http://127.0.0.1:9" for v in
            ("OPENAI_UPSTREAM", "ANTHROPIC_UPSTREAM", "GEMINI_UPSTREAM")}
    for label, config in (("committed", committed()), ("make run", rendered(tmp_path / "a")),
                          ("overrides", rendered(tmp_path / "b", env=mock))):
        hcm = hcm_of(config)
        assert never_before(hcm.get("request_timeout")), label
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
    assert render(tmp_path, "--provider-idle-timeout", "-5").returncode == 2
