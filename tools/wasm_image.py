#!/usr/bin/env python3
"""The filter as an OCI image Istio can pull (`WasmPlugin` `url: oci://...`), without a Docker
engine, byte for byte reproducible.

  build       writes the image as an OCI image layout directory (push it with
              `skopeo copy oci:DIR:TAG docker://REGISTRY/REPO:TAG`) and prints its manifest digest
  wasmplugin  prints a manifest file (deploy/istio/50-wasmplugin.yaml) with the WasmPlugin's
              (or TrafficExtension's) `url` and `sha256` set to an image and that digest

The image is the "compat" variant of the Wasm image format that Istio's puller accepts
(istio/istio pkg/wasm/imagefetcher.go, `extractOCIStandardImage`): an OCI image manifest whose
last (here: only) layer is `application/vnd.oci.image.layer.v1.tar+gzip`, a tar holding
`plugin.wasm`. Any registry and any OCI tool (skopeo, crane, podman, oras) handles it, unlike
the artifact variant's custom media types. Istio checks `sha256` against the manifest digest.

Reproducible: the tar entry has a fixed name, mode, owner and mtime (0); gzip has mtime 0, no
file name and a fixed level; every JSON document is compact with sorted keys; nothing records
the build time or the machine. Rebuilding the same module gives the same digest (with the same
zlib: another zlib version may compress differently, so publish the digest you pushed).
Standard library only.
"""

from __future__ import annotations

import argparse
import gzip
import hashlib
import io
import json
import re
import shutil
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_WASM = ROOT / "target/wasm32-wasip1/release/ptk_filter.wasm"
DEFAULT_OUT = ROOT / "target/wasm-image"
DEFAULT_TAG = "0.1.0"

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
CONFIG_TYPE = "application/vnd.oci.image.config.v1+json"
LAYER_TYPE = "application/vnd.oci.image.layer.v1.tar+gzip"
#: The file name Istio looks for in the layer (`extractWasmPluginBinary`).
MODULE_NAME = "plugin.wasm"
REF_NAME = "org.opencontainers.image.ref.name"


class ImageError(Exception):
    """A refused input; the message says what to fix."""


def canonical_json(value: object) -> bytes:
    return json.dumps(value, sort_keys=True, separators=(",", ":")).encode()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def layer_tar(module: bytes) -> bytes:
    """A tar with one regular file, `plugin.wasm`, whose metadata is fixed."""
    info = tarfile.TarInfo(MODULE_NAME)
    info.size = len(module)
    info.mode = 0o644
    info.mtime = 0
    info.uid = info.gid = 0
    info.uname = info.gname = ""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.USTAR_FORMAT) as tar:
        tar.addfile(info, io.BytesIO(module))
    return buf.getvalue()


def gzipped(data: bytes) -> bytes:
    buf = io.BytesIO()
    # filename="" leaves FNAME out of the header; mtime=0 leaves the clock out.
    with gzip.GzipFile(filename="", mode="wb", fileobj=buf, compresslevel=9, mtime=0) as gz:
        gz.write(data)
    return buf.getvalue()


def descriptor(media_type: str, data: bytes) -> dict:
    return {"mediaType": media_type, "digest": digest(data), "size": len(data)}


def image_blobs(module: bytes) -> tuple[bytes, dict[str, bytes]]:
    """The manifest and every blob (config, layer), by digest."""
    tar = layer_tar(module)
    layer = gzipped(tar)
    config = canonical_json({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [digest(tar)]},
    })
    manifest = canonical_json({
        "schemaVersion": 2,
        "mediaType": MANIFEST_TYPE,
        "config": descriptor(CONFIG_TYPE, config),
        "layers": [{**descriptor(LAYER_TYPE, layer),
                    "annotations": {"org.opencontainers.image.title": MODULE_NAME}}],
    })
    return manifest, {digest(config): config, digest(layer): layer}


def write_layout(out: Path, module: bytes, tag: str) -> str:
    """Writes an OCI image layout at `out` (replacing it) and returns the manifest digest."""
    manifest, blobs = image_blobs(module)
    blobs[digest(manifest)] = manifest
    if out.exists():
        if not (out / "oci-layout").exists():
            raise ImageError(f"{out} exists and is not an OCI layout; not replacing it")
        shutil.rmtree(out)
    (out / "blobs/sha256").mkdir(parents=True)
    for name, data in blobs.items():
        (out / "blobs/sha256" / name.removeprefix("sha256:")).write_bytes(data)
    (out / "oci-layout").write_bytes(canonical_json({"imageLayoutVersion": "1.0.0"}))
    index = {"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
             "manifests": [{**descriptor(MANIFEST_TYPE, manifest),
                            "annotations": {REF_NAME: tag}}]}
    (out / "index.json").write_bytes(canonical_json(index))
    return digest(manifest)


def layout_digest(layout: Path, tag: str | None) -> str:
    """The manifest digest of `tag` (or of the only image) in an OCI layout."""
    try:
        index = json.loads((layout / "index.json").read_text())
    except (OSError, ValueError) as err:
        raise ImageError(f"{layout}: not an OCI layout ({err}); run `make image` first") from err
    found = [m["digest"] for m in index.get("manifests", [])
             if tag is None or m.get("annotations", {}).get(REF_NAME) == tag]
    if len(found) != 1:
        raise ImageError(f"{layout}: expected one image tagged {tag!r}, found {len(found)}")
    return found[0]


def patch_plugin(text: str, url: str, sha: str) -> str:
    """Sets the first `url:` and `sha256:` of each WasmPlugin / Wasm TrafficExtension document,
    keeping everything else (comments included) as written; other documents (the request-body
    hold's EnvoyFilter or Lua TrafficExtension) pass as they are."""
    docs = re.split(r"(?m)^---[ \t]*$", text)
    patched = 0
    for i, doc in enumerate(docs):
        if (not re.search(r"(?m)^kind:\s*(WasmPlugin|TrafficExtension)\s*$", doc)
                or re.search(r"(?m)^[ \t]+lua:[ \t]*$", doc)):
            continue
        doc, urls = re.subn(r"(?m)^([ \t]+url:)[ \t]*\S.*$",
                            lambda m: f"{m.group(1)} {url}", doc, 1)
        doc, shas = re.subn(r"(?m)^([ \t]+sha256:)[ \t]*\S.*$",
                            lambda m: f'{m.group(1)} "{sha}"', doc, 1)
        if not (urls and shas):
            raise ImageError("a WasmPlugin/TrafficExtension without `url:` and `sha256:` lines")
        docs[i] = doc
        patched += 1
    if not patched:
        raise ImageError("no WasmPlugin or TrafficExtension in the file")
    return "---".join(docs)


def oci_url(image: str) -> str:
    """`oci://REGISTRY/REPO:TAG` from that or from `REGISTRY/REPO:TAG`; a digest reference is
    refused (Istio wants it in `sha256`, and the tag is what operators roll)."""
    ref = image.removeprefix("oci://")
    if "@" in ref or "/" not in ref or ":" not in ref.rsplit("/", 1)[-1]:
        raise ImageError(f"--image {image!r}: expected REGISTRY/REPOSITORY:TAG")
    return "oci://" + ref


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    build = sub.add_parser("build", help="write the image as an OCI layout; print its digest")
    build.add_argument("--wasm", type=Path, default=DEFAULT_WASM)
    build.add_argument("--out", type=Path, default=DEFAULT_OUT, help="OCI layout directory")
    build.add_argument("--tag", default=DEFAULT_TAG)
    plugin = sub.add_parser("wasmplugin", help="print a WasmPlugin with this image's url/sha256")
    plugin.add_argument("--image", required=True, help="REGISTRY/REPOSITORY:TAG it was pushed to")
    plugin.add_argument("--layout", type=Path, default=DEFAULT_OUT)
    plugin.add_argument("--digest", help="manifest digest (default: the layout's, by tag)")
    plugin.add_argument("--file", type=Path, default=ROOT / "deploy/istio/50-wasmplugin.yaml")
    plugin.add_argument("--out", type=Path, help="write here instead of stdout")
    args = parser.parse_args(argv)
    try:
        if args.command == "build":
            module = args.wasm.read_bytes()
            if not module.startswith(b"\0asm"):
                raise ImageError(f"{args.wasm}: not a WebAssembly module")
            print(write_layout(args.out, module, args.tag))
            return 0
        url = oci_url(args.image)
        sha = args.digest or layout_digest(args.layout, url.rsplit(":", 1)[1])
        if not re.fullmatch(r"sha256:[0-9a-f]{64}", sha):
            raise ImageError(f"--digest {sha!r}: expected sha256:<64 hex>")
        text = patch_plugin(args.file.read_text(), url, sha.removeprefix("sha256:"))
        if args.out:
            args.out.write_text(text)
        else:
            sys.stdout.write(text)
        return 0
    except (OSError, ImageError) as err:
        print(f"wasm_image: {err}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
