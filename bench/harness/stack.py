"""Bringing up every system under test at once, each on its own loopback ports, so the
measurement loop can interleave them: the Rust mock, plain Envoy, Envoy with the wasm floors,
Envoy + ptk filter (cache warm; the same with metering off; with a budgeted token, with and
without the request-body hold; cache off) with a token-service each, Envoy + ext_authz with
bench-authz, and LiteLLM's proxy."""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import shutil
import subprocess
from dataclasses import dataclass, field
from pathlib import Path

from . import envoy_configs
from .procs import Procs, free_port, wait_http

ROOT = Path(__file__).resolve().parents[2]
RELEASE = ROOT / "target/release"
WASM = ROOT / "target/wasm32-wasip1/release/ptk_filter.wasm"
FLOOR_WASM = ROOT / "target/wasm32-wasip1/release/ptk_bench_wasm_floor.wasm"
LITELLM = ROOT / ".venv-bench/bin/litellm"
#: Huge, so leases are as large as the token-service grants and no scenario is rate limited.
RATE_LIMIT = "1000000000/60"
#: The plugin configuration that turns token usage metering off (it is on by default).
METERING_OFF = {"metering": {"enabled": False}}
#: The budgeted scenarios' token budget: large enough that no round runs out (the grants are
#: still real: a quarter of what is left, capped at 200,000 tokens, spent per request).
BUDGET = "1000000000000000/month"
#: The plugin configuration that says no request-body hold filter is in the chain, so a
#: budgeted request is estimated from `content-length` plus the default output cap.
BODY_HOLD_OFF = {"limits": {"body_hold": False}}


@dataclass
class Target:
    """One thing wrk points at."""

    name: str
    label: str
    addr: str = ""  # host:port
    host: str = ""  # Host header to send ("" = wrk's default)
    cpu_pids: list[int] = field(default_factory=list)  # whose CPU time is the proxy's cost
    envoy_pid: int | None = None
    sidecar_pid: int | None = None  # token-service, bench-authz or LiteLLM
    admin_port: int | None = None  # Envoy admin, for callout counts
    callout_cluster: str | None = None
    error: str | None = None  # why it could not be measured

    @property
    def url(self) -> str:
        """What wrk loads: a non-streaming chat completion."""
        return f"http://{self.addr}/v1/chat/completions"


@dataclass
class Stack:
    workdir: Path
    envoy: str
    litellm_workers: int = 2
    procs: Procs = field(init=False)
    token: str = field(default_factory=lambda: "ptk_bench_" + secrets.token_urlsafe(24))
    secret: str = field(default_factory=lambda: secrets.token_urlsafe(24))
    real_key: str = "sk-bench-real-key-" + secrets.token_hex(8)
    targets: dict[str, Target] = field(default_factory=dict)

    def __post_init__(self) -> None:
        self.procs = Procs(self.workdir)
        self.token_hash = hashlib.sha256(self.token.encode()).hexdigest()
        self.hashes_file = self.workdir / "hashes.txt"
        self.hashes_file.write_text(self.token_hash + "\n")

    # --- pieces --------------------------------------------------------------------------

    def service_env(self, db: Path, listen: str, cache_ttl_ms: int) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items()
               if not k.endswith("_API_KEY") and k != "ADMIN_SECRET"}
        env.update(PTK_DB=str(db), PTK_CHECK_SECRET=self.secret, PTK_LISTEN=listen,
                   PTK_CACHE_TTL_MS=str(cache_ttl_ms), OPENAI_API_KEY=self.real_key,
                   RUST_LOG="warn")
        return env

    def mint(self, db: Path, budget: str | None = None) -> None:
        """The bench token, through the real CLI (which also creates the file and schema);
        with `budget`, a token budget (`N/PERIOD`) too."""
        env = self.service_env(db, "127.0.0.1:0", 0)
        subprocess.run([str(RELEASE / "token-service"), "tokens", "create", "--label", "bench",
                        "--providers", "openai", "--token", self.token,
                        "--rate-limit", RATE_LIMIT,
                        *(["--token-budget", budget] if budget else [])],
                       env=env, check=True, capture_output=True, timeout=30)

    def start_token_service(self, name: str, cache_ttl_ms: int, db: Path | None = None,
                            mint: bool = True, budget: str | None = None
                            ) -> tuple[subprocess.Popen, str]:
        """A token-service on a fresh SQLite file holding the bench token (with `budget`)."""
        db = db or self.workdir / f"{name}.sqlite3"
        listen = f"127.0.0.1:{free_port()}"
        env = self.service_env(db, listen, cache_ttl_ms)
        if mint:
            self.mint(db, budget)
        proc = self.procs.spawn(name, [str(RELEASE / "token-service"), "serve"], env=env)
        wait_http(f"http://{listen}/healthz", proc, name)
        return proc, listen

    def start_envoy(self, target: Target, config: dict) -> None:
        path = envoy_configs.write(config, self.workdir / f"envoy-{target.name}.json",
                                   self.envoy, self.envoy_env())
        proc = self.procs.spawn(
            f"envoy-{target.name}",
            [self.envoy, "-c", str(path), "--concurrency", "2", "--log-level", "warn",
             "--disable-hot-restart"], env=self.envoy_env())
        wait_http(f"http://127.0.0.1:{target.admin_port}/ready", proc, f"envoy ({target.name})")
        target.envoy_pid = proc.pid
        target.cpu_pids.append(proc.pid)

    def envoy_env(self) -> dict[str, str]:
        return dict(os.environ, PTK_CHECK_SECRET=self.secret)

    def envoy_target(self, name: str, label: str, host: str = "") -> tuple[Target, dict]:
        target = Target(name, label, host=host)
        proxy_port, target.admin_port = free_port(), free_port()
        target.addr = f"127.0.0.1:{proxy_port}"
        return target, dict(proxy_port=proxy_port, admin_port=target.admin_port)

    # --- the systems under test ----------------------------------------------------------

    def start_mock(self) -> None:
        proc = self.procs.spawn("mock", [str(RELEASE / "bench-mock")], announce=True)
        self.mock_addr = proc.address  # type: ignore[attr-defined]
        self.targets["mock"] = Target("mock", "mock upstream alone", addr=self.mock_addr,
                                      cpu_pids=[proc.pid])

    def start_envoys(self) -> None:
        mock = f"http://{self.mock_addr}"
        # Plain Envoy routes on Host like the filter's rewrite would; the filter scenarios send
        # what an SDK sends (the proxy's own address) and let the filter rewrite :authority.
        plain, ports = self.envoy_target("plain", "plain Envoy", host=envoy_configs.UPSTREAM_HOST)
        cfg = envoy_configs.render(self.workdir, "plain", mock=mock, token_service="127.0.0.1:1",
                                   wasm=WASM, deny_ttl_ms=0, **ports)
        self.start_envoy(plain, envoy_configs.plain(cfg))
        self.targets["plain"] = plain

        for name, label, ttl, plugin, budget in (
                ("filter_warm", "Envoy + ptk filter, cache warm", 1000, None, None),
                ("filter_nometer", "Envoy + ptk filter, cache warm, metering off", 1000,
                 METERING_OFF, None),
                ("filter_budget", "Envoy + ptk filter, cache warm, budgeted token", 1000,
                 None, BUDGET),
                ("filter_budget_nohold", "Envoy + ptk filter, cache warm, budgeted token, "
                 "no body hold", 1000, BODY_HOLD_OFF, BUDGET),
                ("filter_off", "Envoy + ptk filter, cache off", 0, None, None)):
            service, listen = self.start_token_service(f"token-service-{name}", ttl,
                                                       budget=budget)
            target, ports = self.envoy_target(name, label)
            cfg = envoy_configs.render(self.workdir, name, mock=mock, token_service=listen,
                                       wasm=WASM, deny_ttl_ms=ttl, cache=ttl > 0,
                                       plugin=plugin, **ports)
            self.start_envoy(target, cfg)
            target.sidecar_pid = service.pid
            target.cpu_pids.append(service.pid)
            target.callout_cluster = "token_service"
            self.targets[name] = target

        for name, label, mode in (
                ("wasm_empty", "Envoy + empty wasm filter (no host calls)", "empty"),
                ("wasm_floor", "Envoy + trivial wasm filter (floor)", "swap")):
            floor, ports = self.envoy_target(name, label, host=envoy_configs.UPSTREAM_HOST)
            cfg = envoy_configs.render(self.workdir, name, mock=mock, token_service="127.0.0.1:1",
                                       wasm=WASM, deny_ttl_ms=0, **ports)
            self.start_envoy(floor, envoy_configs.wasm_floor(cfg, FLOOR_WASM, mode))
            self.targets[name] = floor

        authz = self.procs.spawn(
            "bench-authz", [str(RELEASE / "bench-authz"), "--hashes", str(self.hashes_file)],
            env=dict(os.environ, BENCH_REAL_KEY=self.real_key), announce=True)
        target, ports = self.envoy_target("ext_authz", "Envoy + ext_authz (Rust service)",
                                          host=envoy_configs.UPSTREAM_HOST)
        cfg = envoy_configs.render(self.workdir, "ext_authz", mock=mock,
                                   token_service="127.0.0.1:1", wasm=WASM, deny_ttl_ms=0, **ports)
        self.start_envoy(target, envoy_configs.ext_authz(cfg, authz.address))  # type: ignore[attr-defined]
        target.sidecar_pid = authz.pid
        target.cpu_pids.append(authz.pid)
        target.callout_cluster = "bench_authz"
        self.targets["ext_authz"] = target

    def start_litellm(self) -> None:
        """LiteLLM's proxy with the custom_auth hook; on failure the target carries why."""
        target = Target("litellm", f"LiteLLM proxy ({self.litellm_workers} workers)")
        self.targets["litellm"] = target
        if not (ROOT / ".venv-bench/.installed").exists() or not LITELLM.exists():
            log = ROOT / ".venv-bench/install.log"
            tail = log.read_text(errors="replace").strip().splitlines()[-1:] if log.exists() else []
            target.error = ("the pinned install into .venv-bench failed: "
                            + (tail[0] if tail else "no install log (run make bench)"))
            return
        home = self.workdir / "litellm"
        home.mkdir(exist_ok=True)
        shutil.copy(ROOT / "bench/litellm/custom_auth.py", home / "custom_auth.py")
        (home / "config.yaml").write_text(json.dumps({  # JSON is YAML
            "model_list": [{"model_name": "gpt-4o-mini", "litellm_params": {
                "model": "openai/gpt-4o-mini", "api_base": f"http://{self.mock_addr}/v1",
                "api_key": self.real_key}}],
            "general_settings": {"custom_auth": "custom_auth.user_api_key_auth"},
            "litellm_settings": {"telemetry": False},
        }))
        port = free_port()
        env = {k: v for k, v in os.environ.items()
               if not k.endswith("_API_KEY") and k not in ("DATABASE_URL",)}
        env.update(BENCH_LITELLM_HASHES=str(self.hashes_file),
                   # Required to boot; requests are authorised by custom_auth, not by this key.
                   LITELLM_MASTER_KEY="sk-" + secrets.token_hex(32),
                   LITELLM_LOCAL_MODEL_COST_MAP="True", LITELLM_TELEMETRY="False",
                   LITELLM_LOG="ERROR", DISABLE_SCHEMA_UPDATE="True")
        proc = self.procs.spawn(
            "litellm", [str(LITELLM), "--config", str(home / "config.yaml"), "--host",
                        "127.0.0.1", "--port", str(port), "--num_workers",
                        str(self.litellm_workers)], env=env, cwd=home)
        try:
            wait_http(f"http://127.0.0.1:{port}/health/liveliness", proc, "LiteLLM", timeout=180)
        except RuntimeError as err:
            log = (self.workdir / "litellm.log").read_text(errors="replace").strip()
            target.error = f"{err}; last log line: {log.splitlines()[-1] if log else '(empty)'}"
            return
        target.addr = f"127.0.0.1:{port}"
        target.sidecar_pid = proc.pid
        target.cpu_pids.append(proc.pid)
