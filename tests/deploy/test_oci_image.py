"""The filter as an OCI image (tools/wasm_image.py): rebuilt with the same digest, pushed to a
real registry (Debian's docker-registry on loopback) with skopeo, pulled back with skopeo,
every digest verified, `plugin.wasm` byte-identical to the built module, the image in the
format Istio's puller takes, and the WasmPlugin the tool prints naming the pushed digest."""

from __future__ import annotations

import gzip
import hashlib
import io
import json
import os
import shutil
import subprocess
import sys
import tarfile
import time
import urllib.request
from pathlib import Path

import pytest
import yaml

from tests.e2e.harness import ROOT, WASM, free_port

from .kube_schema import validate

TOOL = [sys.executable, str(ROOT / "tools/wasm_image.py")]
TAG = "0.1.0"
REPO = "ptk/filter"
OCI_MANIFEST = "application/vnd.oci.image.manifest.v1+json"
OCI_LAYER = "application/vnd.oci.image.layer.v1.tar+gzip"


def need(binary: str) -> str:
    path = shutil.which(binary)
    if not path:
        raise RuntimeError(f"{binary} is missing: run `make test-deps` (Debian package)")
    return path


@pytest.fixture(scope="module")
def registry(tmp_path_factory):
    """Debian's docker-registry (distribution 2.x) on a free loopback port, storage in a temp
    dir; yields host:port."""
    binary = need("docker-registry")
    need("skopeo")
    if not WASM.exists():
        raise RuntimeError(f"missing {WASM}: run `make wasm` first")
    root = tmp_path_factory.mktemp("registry")
    port = free_port()
    config = root / "config.yml"
    config.write_text(yaml.safe_dump({
        "version": 0.1,
        "log": {"level": "warn"},
        "storage": {"filesystem": {"rootdirectory": str(root / "data")}},
        "http": {"addr": f"127.0.0.1:{port}"},
    }))
    log = open(root / "registry.log", "wb")
    proc = subprocess.Popen([binary, "serve", str(config)], stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 20
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/v2/", timeout=1):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    raise RuntimeError((root / "registry.log").read_text())
                time.sleep(0.05)
        yield f"127.0.0.1:{port}"
    finally:
        proc.terminate()
        proc.wait(timeout=10)


def build(wasm: Path, out: Path) -> str:
    run = subprocess.run([*TOOL, "build", "--wasm", str(wasm), "--out", str(out), "--tag", TAG],
                         capture_output=True, text=True, check=True)
    return run.stdout.strip()


def skopeo(tmp: Path, *args: str) -> subprocess.CompletedProcess:
    # Our own accept-anything policy: the test registry is on loopback and plain HTTP.
    policy = tmp / "policy.json"
    policy.write_text(json.dumps({"default": [{"type": "insecureAcceptAnything"}]}))
    return subprocess.run(["skopeo", "--policy", str(policy), *args], capture_output=True,
                           text=True, check=True, timeout=60)


def sha256(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def plugin_wasm_as_istio_reads_it(manifest: dict, blob) -> bytes:
    """istio pkg/wasm `extractOCIStandardImage`: the last layer must be an OCI tar+gzip layer;
    the module is its entry whose base name is plugin.wasm."""
    assert manifest["mediaType"] == OCI_MANIFEST  # not Docker's, so the compat/OCI branch
    layer = manifest["layers"][-1]
    assert layer["mediaType"] == OCI_LAYER
    with tarfile.open(fileobj=io.BytesIO(gzip.decompress(blob(layer["digest"])))) as tar:
        [member] = tar.getmembers()
        assert os.path.basename(member.name) == "plugin.wasm"
        assert (member.mtime, member.uid, member.gid, member.mode) == (0, 0, 0, 0o644)
        return tar.extractfile(member).read()


def test_rebuilding_gives_the_same_digest(tmp_path):
    # Two copies of the module with different mtimes, built a clock second apart: nothing
    # of the file system or the clock may reach the image.
    first, second = tmp_path / "a.wasm", tmp_path / "b.wasm"
    shutil.copyfile(WASM, first)
    os.utime(first, (1000, 1000))
    d1 = build(first, tmp_path / "one")
    time.sleep(1.05)
    shutil.copyfile(WASM, second)
    d2 = build(second, tmp_path / "two")
    assert d1 == d2 and d1.startswith("sha256:") and len(d1) == 71
    files = lambda root: {p.relative_to(root): p.read_bytes()  # noqa: E731
                          for p in sorted(root.rglob("*")) if p.is_file()}
    assert files(tmp_path / "one") == files(tmp_path / "two")


def test_push_pull_round_trip_keeps_every_digest_and_the_module(registry, tmp_path):
    module = WASM.read_bytes()
    layout = tmp_path / "layout"
    built = build(WASM, layout)
    ref = f"{registry}/{REPO}:{TAG}"
    skopeo(tmp_path, "copy", "--quiet", "--dest-tls-verify=false", "--preserve-digests",
           f"oci:{layout}:{TAG}", f"docker://{ref}")

    # The registry serves the very manifest (what Istio's puller resolves and compares).
    request = urllib.request.Request(f"http://{registry}/v2/{REPO}/manifests/{TAG}",
                                     headers={"Accept": OCI_MANIFEST})
    with urllib.request.urlopen(request, timeout=10) as resp:
        served = resp.read()
        assert resp.headers["Docker-Content-Digest"] == built
        assert resp.headers["Content-Type"] == OCI_MANIFEST
    assert sha256(served) == built

    # Pulled back with skopeo into a plain directory: every blob is named by its digest.
    pulled = tmp_path / "pulled"
    skopeo(tmp_path, "copy", "--quiet", "--src-tls-verify=false", f"docker://{ref}",
           f"dir:{pulled}")
    manifest_bytes = (pulled / "manifest.json").read_bytes()
    assert sha256(manifest_bytes) == built
    manifest = json.loads(manifest_bytes)
    blobs = {}
    for desc in [manifest["config"], *manifest["layers"]]:
        data = (pulled / desc["digest"].removeprefix("sha256:")).read_bytes()
        assert sha256(data) == desc["digest"] and len(data) == desc["size"], desc
        blobs[desc["digest"]] = data
    config = json.loads(blobs[manifest["config"]["digest"]])
    uncompressed = gzip.decompress(blobs[manifest["layers"][0]["digest"]])
    assert config["rootfs"]["diff_ids"] == [sha256(uncompressed)]
    assert plugin_wasm_as_istio_reads_it(manifest, blobs.__getitem__) == module

    # The WasmPlugin the tool prints pulls this image and pins its manifest digest.
    printed = subprocess.run(
        [*TOOL, "wasmplugin", "--image", ref, "--layout", str(layout)],
        capture_output=True, text=True, check=True).stdout
    [plugin] = [d for d in yaml.safe_load_all(printed) if d and d["kind"] == "WasmPlugin"]
    assert plugin["spec"]["url"] == f"oci://{ref}"
    assert plugin["spec"]["sha256"] == built.removeprefix("sha256:")
    validate(plugin)
    committed = (ROOT / "deploy/istio/50-wasmplugin.yaml").read_text()
    assert len(printed.splitlines()) == len(committed.splitlines())  # comments kept


def test_the_tool_refuses_what_istio_could_not_use(tmp_path):
    not_wasm = tmp_path / "x.wasm"
    not_wasm.write_bytes(b"not a module")
    run = subprocess.run([*TOOL, "build", "--wasm", str(not_wasm), "--out", str(tmp_path / "o")],
                         capture_output=True, text=True)
    assert run.returncode == 2 and "not a WebAssembly module" in run.stderr
    run = subprocess.run([*TOOL, "wasmplugin", "--image", "registry.example.com/ptk/filter",
                          "--digest", "sha256:" + "a" * 64], capture_output=True, text=True)
    assert run.returncode == 2 and "REGISTRY/REPOSITORY:TAG" in run.stderr
