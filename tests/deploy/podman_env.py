"""A throw-away podman for one test run: its own containers.conf (runc, cgroupfs, no default
ulimits: what this machine's kernel and sandbox allow), its own image/container storage, run
and network-config directories under a temp folder, and its own Docker-compatible API socket
for `docker-compose`. Nothing is read from or written to the machine's global podman state;
`close()` removes every container, volume, network and image it made, then the folder, and
the per-network port-forwarding chains netavark (1.4) leaves behind in the host's nat table
even after a clean `down` (empty `NETAVARK-DN-*` chains that appeared during the run).

Healthchecks: podman schedules them with systemd timers, and there is no systemd here, so
`HealthDriver` runs each container's healthcheck (`podman healthcheck run`) every second, as
the timer would; compose's `depends_on: condition: service_healthy` then proceeds as usual.
"""

from __future__ import annotations

import os
import random
import shutil
import subprocess
import tempfile
import threading
import time
from pathlib import Path

CONTAINERS_CONF = """\
[containers]
default_ulimits = []

[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
tmp_dir = "{tmp}/libpod"

[network]
network_config_dir = "{tmp}/networks"
default_subnet = "10.{octet}.0.0/24"
default_subnet_pools = [{{"base" = "10.{octet}.0.0/16", "size" = 24}}]
"""


class PodmanEnv:
    """Podman confined to a fresh directory of its own under /tmp (a short path: podman
    refuses a run root over 50 characters, and a socket path is limited to 108)."""

    def __init__(self) -> None:
        top = Path(tempfile.mkdtemp(prefix="ptk-podman-", dir="/tmp"))
        self.top = top
        for d in ("root", "run", "libpod", "networks"):
            (top / d).mkdir(parents=True, exist_ok=True)
        # A subnet range unlikely to meet another network on this host.
        self.octet = random.randint(150, 249)
        conf = CONTAINERS_CONF.format(tmp=top, octet=self.octet)
        (top / "containers.conf").write_text(conf)
        self.env = dict(os.environ, CONTAINERS_CONF=str(top / "containers.conf"))
        self.flags = ["--root", str(top / "root"), "--runroot", str(top / "run")]
        self.socket = top / "podman.sock"
        self.service: subprocess.Popen | None = None
        self.chains_before = nat_chains()

    def run(self, *args: str, check: bool = True, timeout: float = 300,
            **kw) -> subprocess.CompletedProcess:
        done = subprocess.run(["podman", *self.flags, *args], env=self.env, text=True,
                              capture_output=True, timeout=timeout, **kw)
        if check and done.returncode != 0:
            raise RuntimeError(f"podman {' '.join(args)}: {done.returncode}\n"
                               f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
        return done

    def start_service(self) -> None:
        """The Docker-compatible API on a socket of its own, for docker-compose."""
        log = open(self.top / "service.log", "w")
        self.service = subprocess.Popen(
            ["podman", *self.flags, "system", "service", "--time=0", f"unix://{self.socket}"],
            env=self.env, stdout=log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 30
        while not self.socket.exists():
            if self.service.poll() is not None or time.monotonic() > deadline:
                raise RuntimeError("podman system service did not start: "
                                   + (self.top / "service.log").read_text()[-2000:])
            time.sleep(0.1)

    def compose_env(self) -> dict[str, str]:
        return dict(self.env, DOCKER_HOST=f"unix://{self.socket}")

    def close(self) -> None:
        """Every container, pod, volume, network and image of this storage, then the files."""
        self.run("rm", "--all", "--force", "--time", "0", check=False)
        self.run("system", "reset", "--force", check=False)
        if self.service is not None:
            self.service.terminate()
            try:
                self.service.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.service.kill()
        shutil.rmtree(self.top, ignore_errors=True)
        for chain in nat_chains() - self.chains_before:
            # Only empty leftovers go (and -X refuses a chain something still jumps to).
            if not nat_chain_rules(chain):
                subprocess.run(["iptables", "-t", "nat", "-X", chain], capture_output=True)


def nat_chains() -> set[str]:
    """netavark's per-network port-forwarding chains in the host's nat table."""
    done = subprocess.run(["iptables", "-t", "nat", "-S"], capture_output=True, text=True)
    return {line.split()[1] for line in done.stdout.splitlines()
            if line.startswith("-N NETAVARK-DN-")}


def nat_chain_rules(chain: str) -> list[str]:
    done = subprocess.run(["iptables", "-t", "nat", "-S", chain], capture_output=True, text=True)
    return [line for line in done.stdout.splitlines() if line.startswith("-A ")]


class HealthDriver:
    """Runs the healthchecks of a compose project's containers once a second, in a thread."""

    def __init__(self, podman: PodmanEnv, project: str) -> None:
        self.podman = podman
        self.project = project
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._loop, daemon=True)

    def __enter__(self) -> "HealthDriver":
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)

    def _loop(self) -> None:
        while not self.stop.wait(1.0):
            names = self.podman.run(
                "ps", "--filter", f"label=com.docker.compose.project={self.project}",
                "--format", "{{.Names}}", check=False).stdout.split()
            for name in names:
                self.podman.run("healthcheck", "run", name, check=False, timeout=30)

    def status(self) -> dict[str, str]:
        """{container: health} for the project's running containers ('' = no healthcheck)."""
        out = self.podman.run(
            "ps", "--filter", f"label=com.docker.compose.project={self.project}",
            "--format", "{{.Names}} {{.Status}}", check=False).stdout
        return {line.split()[0]: line for line in out.splitlines() if line.strip()}
