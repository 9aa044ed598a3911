"""One end-to-end stack: the real Envoy binary with the built .wasm, the real token-service on
a fresh SQLite store, and the recording mock upstream standing in for all three providers.

Nothing here skips: a missing Envoy, .wasm or token-service binary is a hard failure with the
command that builds it (`make build venv`).
"""

from __future__ import annotations

import json
import os
import re
import secrets
import shutil
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import requests

from tests.ports import free_port, is_port_clash

ROOT = Path(__file__).resolve().parents[2]
ENVOY = os.environ.get("ENVOY") or str(ROOT / ".venv/bin/envoy")
WASM = ROOT / "target/wasm32-wasip1/release/ptk_filter.wasm"
SERVICE = ROOT / "target/release/token-service"

#: Fake real keys the token-service hands out; tests look for them upstream and in logs.
REAL_KEYS = {
    "OPENAI_API_KEY": "sk-REAL-openai-4f1d9c",
    "ANTHROPIC_API_KEY": "sk-ant-REAL-anthropic-77ab20",
    "GEMINI_API_KEY": "AIza-REAL-gemini-0c93e1",
}


def require_built() -> None:
    """Fail loudly (never skip) when a binary the stack needs is missing."""
    missing = [str(p) for p in (Path(ENVOY), WASM, SERVICE) if not Path(p).exists()]
    if missing:
        raise RuntimeError(f"missing {missing}: run `make build venv` first")


class ProcessExited(RuntimeError):
    """A server exited before it answered; carries the end of its log."""

    def __init__(self, what: str, code: int, log_tail: str):
        super().__init__(f"{what} exited with {code}; the end of its log:\n{log_tail}")
        #: It lost a port to another socket: starting again on fresh ports is the remedy.
        self.port_clash = is_port_clash(log_tail)


def log_tail(log: Path | None, lines: int = 30) -> str:
    if log is None or not log.exists():
        return "(no log)"
    return "\n".join(log.read_text(errors="replace").splitlines()[-lines:])


def wait_http(url: str, proc: subprocess.Popen | None, what: str, timeout: float = 20,
              log: Path | None = None) -> None:
    """Waits until `url` answers below 500; `ProcessExited` (with `log`'s end) if `proc` dies."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise ProcessExited(what, proc.returncode, log_tail(log))
        try:
            if requests.get(url, timeout=1).status_code < 500:
                return
        except requests.RequestException:
            pass
        time.sleep(0.05)
    raise RuntimeError(f"{what} not ready at {url}")


@dataclass
class Stack:
    """A running stack; `start()` brings it up, `stop()` tears everything down."""

    timeout_ms: int = 1000
    rate_limit: str = "100/60"
    #: Verdict cache TTL (token-service) and refusal memory (filter); 0 turns both off.
    cache_ttl_ms: int = 1000
    #: The filter's own cache switch (plugin cache.enabled; render_envoy.py --no-cache).
    filter_cache: bool = True
    #: Another name for the check cluster (render_envoy.py --token-service-cluster).
    token_service_cluster: str | None = None
    #: Merged into the filter's plugin configuration (render_envoy.py --plugin-config).
    plugin_config: dict | None = None
    #: More environment for the token-service (e.g. PTK_REDIS_URL).
    service_extra_env: dict[str, str] = field(default_factory=dict)
    upstreams: dict[str, str] | None = None
    token_service_addr: str | None = None  # point the filter somewhere else (hang tests)
    #: Token-service processes on the same SQLite file (WAL), all endpoints of the check
    #: cluster (render_envoy.py --token-service A,B); the first also serves /admin.
    replicas: int = 1
    keys: dict[str, str] = field(default_factory=lambda: dict(REAL_KEYS))
    #: More render_envoy.py arguments, asked for once the mock and the token-service are up
    #: (so they can name their ports); they come last, so they win over the defaults.
    render_extra: Callable[["Stack"], list[str]] | None = None
    procs: dict[str, subprocess.Popen] = field(default_factory=dict)

    def start(self) -> "Stack":
        require_built()
        self.dir = Path(tempfile.mkdtemp(prefix="ptk-e2e-"))
        self.db = self.dir / "ptk.sqlite3"
        self.secret = secrets.token_urlsafe(24)
        #: The dashboard / admin API password (ADMIN_SECRET).
        self.admin_secret = "admin-" + secrets.token_urlsafe(24)
        self.access_log = self.dir / "access.log"
        self._start_mock()
        self.with_fresh_ports(self._start_service)
        self.with_fresh_ports(self._start_envoy)
        return self

    def with_fresh_ports(self, start: Callable[[], None], attempts: int = 3) -> None:
        """Runs `start` (which picks its own ports) again when a server it started lost a port
        to another socket between the pick and its bind; any other early exit fails at once.
        What `start` got running before the clash is stopped first."""
        for attempt in range(1, attempts + 1):
            before = dict(self.procs)
            try:
                start()
                return
            except ProcessExited as exited:
                if not exited.port_clash or attempt == attempts:
                    raise
                for name, proc in list(self.procs.items()):
                    if before.get(name) is not proc:
                        proc.kill()
                        proc.wait()
                        del self.procs[name]

    # --- processes -------------------------------------------------------------------------

    def _spawn(self, name: str, args: list[str], env: dict[str, str]) -> subprocess.Popen:
        log = open(self.dir / f"{name}.log", "wb")
        proc = subprocess.Popen(args, env=env, stdout=log, stderr=subprocess.STDOUT, cwd=ROOT)
        self.procs[name] = proc
        return proc

    def _start_mock(self) -> None:
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        proc = subprocess.Popen(
            [sys.executable, "-m", "tests.mock_upstream", "--host", "127.0.0.1", "--port", "0"],
            cwd=ROOT, env=env, stdout=subprocess.PIPE, stderr=open(self.dir / "mock.log", "wb"),
            text=True,
        )
        self.procs["mock"] = proc
        line = proc.stdout.readline() if proc.stdout else ""
        if "listening on" not in line:
            raise RuntimeError(f"mock upstream did not start: {line!r}")
        self.mock_url = "http://" + line.strip().rsplit(" ", 1)[-1]
        wait_http(f"{self.mock_url}/__mock/health", proc, "mock upstream")

    def service_env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.endswith("_API_KEY")}
        env.update(self.keys)
        env.update(
            PTK_DB=str(self.db),
            PTK_CHECK_SECRET=self.secret,
            ADMIN_SECRET=self.admin_secret,
            PTK_RATE_LIMIT=self.rate_limit,
            PTK_CACHE_TTL_MS=str(self.cache_ttl_ms),
            **self.service_extra_env,
            RUST_LOG=env.get("RUST_LOG", "info"),
        )
        return env

    def _start_service(self) -> None:
        self.service_port = free_port()
        env = self.service_env()
        env["PTK_LISTEN"] = f"127.0.0.1:{self.service_port}"
        # The admin listener (dashboard + admin API), also reachable through Envoy's /admin.
        self.service_admin_port = free_port()
        env["PTK_ADMIN_LISTEN"] = f"127.0.0.1:{self.service_admin_port}"
        self.service_admin_url = f"http://127.0.0.1:{self.service_admin_port}"
        proc = self._spawn("token-service", [str(SERVICE), "serve"], env)
        log = self.dir / "token-service.log"
        wait_http(f"http://127.0.0.1:{self.service_port}/healthz", proc, "token-service", log=log)
        wait_http(f"{self.service_admin_url}/admin", proc, "token-service admin", log=log)
        #: Check API address of every replica, in process-name order.
        self.replica_ports = [self.service_port]
        for n in range(2, self.replicas + 1):
            port = free_port()
            env = dict(env, PTK_LISTEN=f"127.0.0.1:{port}",
                       PTK_ADMIN_LISTEN=f"127.0.0.1:{free_port()}")
            replica = self._spawn(f"token-service-{n}", [str(SERVICE), "serve"], env)
            wait_http(f"http://127.0.0.1:{port}/healthz", replica, f"token-service {n}",
                      log=self.dir / f"token-service-{n}.log")
            self.replica_ports.append(port)

    def render(self, out: Path, **overrides: str) -> None:
        env = dict(os.environ)
        for var in ("OPENAI_UPSTREAM", "ANTHROPIC_UPSTREAM", "GEMINI_UPSTREAM"):
            env[var] = (self.upstreams or {}).get(var, self.mock_url)
        args = [
            sys.executable, str(ROOT / "tools/render_envoy.py"), "--out", str(out),
            "--proxy-port", str(self.proxy_port), "--admin-port", str(self.admin_port),
            "--token-service", self.token_service_addr
            or ",".join(f"127.0.0.1:{port}" for port in self.replica_ports),
            "--wasm", str(WASM), "--timeout-ms", str(self.timeout_ms),
            "--deny-ttl-ms", str(self.cache_ttl_ms),
            "--access-log", str(self.access_log),
            "--token-service-admin", f"127.0.0.1:{self.service_admin_port}",
            "--tls-port", str(self.tls_port),
            "--tls-cert", str(self.dir / "tls/server.crt"),
            "--tls-key", str(self.dir / "tls/server.key"),
            *([] if self.filter_cache else ["--no-cache"]),
            *(["--token-service-cluster", self.token_service_cluster]
              if self.token_service_cluster else []),
            *(["--plugin-config", json.dumps(self.plugin_config)] if self.plugin_config else []),
            *(self.render_extra(self) if self.render_extra else []),
        ]
        subprocess.run(args, env=env, check=True)

    def _start_envoy(self) -> None:
        self.proxy_port, self.admin_port, self.tls_port = free_port(), free_port(), free_port()
        subprocess.run([str(ROOT / "tools/dev_cert.sh"), str(self.dir / "tls")], check=True)
        #: CA that signs the TLS listener's certificate (trust it in TLS clients).
        self.ca_cert = self.dir / "tls/ca.crt"
        config = self.dir / "envoy.yaml"
        self.render(config)
        env = dict(os.environ, PTK_CHECK_SECRET=self.secret)
        proc = self._spawn(
            "envoy",
            [ENVOY, "-c", str(config), "--concurrency", "2", "--log-level", "info",
             "--disable-hot-restart"],
            env,
        )
        wait_http(f"http://127.0.0.1:{self.admin_port}/ready", proc, "envoy", timeout=60,
                  log=self.dir / "envoy.log")
        self.url = f"http://127.0.0.1:{self.proxy_port}"
        #: The same proxy over TLS (certificate for 127.0.0.1 and localhost, CA in ca_cert).
        self.tls_url = f"https://127.0.0.1:{self.tls_port}"

    def kill_service(self) -> None:
        proc = self.procs.pop("token-service")
        proc.kill()
        proc.wait()

    def kill_replica(self, n: int) -> None:
        """kill -9 the token-service replica `n` (1 is the first, `kill_service`'s)."""
        proc = self.procs.pop("token-service" if n == 1 else f"token-service-{n}")
        proc.kill()
        proc.wait()

    def stop(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.terminate()
        for proc in self.procs.values():
            try:
                proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                proc.kill()
        self.procs.clear()

    def cleanup(self) -> None:
        shutil.rmtree(self.dir, ignore_errors=True)

    # --- tokens (through the real CLI, on the same store) -----------------------------------

    def cli(self, *args: str, check: bool = True) -> subprocess.CompletedProcess:
        return subprocess.run(
            [str(SERVICE), *args], env=self.service_env(), cwd=ROOT,
            capture_output=True, text=True, check=check, timeout=30,
        )

    def mint(self, providers: str = "openai,anthropic,gemini", *extra: str) -> dict:
        out = self.cli("tokens", "create", "--label", "e2e", "--providers", providers, "--json", *extra)
        return json.loads(out.stdout)

    # --- the mock upstream -----------------------------------------------------------------

    def upstream_requests(self) -> list[dict]:
        return requests.get(f"{self.mock_url}/__mock/requests", timeout=5).json()

    def reset_upstream(self) -> None:
        requests.post(f"{self.mock_url}/__mock/reset", timeout=5).raise_for_status()

    def release_upstream(self) -> None:
        requests.post(f"{self.mock_url}/__mock/release", timeout=5).raise_for_status()

    def logs(self) -> str:
        """Everything every process of the stack wrote, plus Envoy's access log."""
        text = []
        for path in sorted(self.dir.glob("*.log")):
            text.append(path.read_text(errors="replace"))
        return "\n".join(text)


def wire_version() -> str:
    """The wire protocol version this build speaks (`ptk_wire::WIRE_VERSION`)."""
    source = (ROOT / "wire/src/version.rs").read_text()
    match = re.search(r'pub const WIRE_VERSION: &str = "([0-9]+\.[0-9]+)";', source)
    assert match, "WIRE_VERSION not found in wire/src/version.rs"
    return match.group(1)
