#!/usr/bin/env python3
"""Packs the filter's .wasm as an OCI image layout that Istio's WasmPlugin (and Envoy Gateway's
Image code source) pull: `plugin.wasm` alone in one gzip'd tar layer of a scratch image, with
the manifest annotation `module.wasm.image/variant: compat`. No Docker needed; the output is
byte-for-byte reproducible (fixed timestamps, owners and gzip header).

    scripts/wasm-oci.py [--wasm target/wasm32-wasip1/wasm-opt/tollgate_filter.wasm]
                        [--out target/oci/tollgate-filter] [--tag 0.1.0]

Prints the manifest digest: the value of the WasmPlugin's `sha256` (and of `@sha256:` in its
URL). Push the layout with any OCI client, e.g.
    oras cp --from-oci-layout target/oci/tollgate-filter:0.1.0 registry.example.com/tollgate/filter:0.1.0
    skopeo copy oci:target/oci/tollgate-filter:0.1.0 docker://registry.example.com/tollgate/filter:0.1.0
"""

import argparse
import gzip
import hashlib
import io
import json
import os
import shutil
import sys
import tarfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))
DEFAULT_WASM = TARGET / "wasm32-wasip1/wasm-opt/tollgate_filter.wasm"
VARIANT_ANNOTATION = "module.wasm.image/variant"


def layer_tar(wasm: bytes) -> bytes:
    """A tar holding only `plugin.wasm`, with fixed metadata so the digest is reproducible."""
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w", format=tarfile.PAX_FORMAT) as tar:
        info = tarfile.TarInfo("plugin.wasm")
        info.size = len(wasm)
        info.mode = 0o444
        info.mtime = 0
        info.uid = info.gid = 0
        info.uname = info.gname = ""
        tar.addfile(info, io.BytesIO(wasm))
    return buf.getvalue()


def gzip_fixed(data: bytes) -> bytes:
    buf = io.BytesIO()
    with gzip.GzipFile(fileobj=buf, mode="wb", mtime=0, compresslevel=9, filename="") as gz:
        gz.write(data)
    return buf.getvalue()


def canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":")).encode()


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def build(wasm: bytes, out: Path, tag: str) -> str:
    """Writes the layout to `out` (replacing it) and returns the manifest digest."""
    tar = layer_tar(wasm)
    layer = gzip_fixed(tar)
    config = canonical({
        "architecture": "wasm",
        "os": "wasip1",
        "config": {},
        "rootfs": {"type": "layers", "diff_ids": [digest(tar)]},
    })
    manifest = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json",
                   "digest": digest(config), "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+gzip",
                    "digest": digest(layer), "size": len(layer)}],
        "annotations": {VARIANT_ANNOTATION: "compat"},
    })
    index = canonical({
        "schemaVersion": 2,
        "mediaType": "application/vnd.oci.image.index.v1+json",
        "manifests": [{"mediaType": "application/vnd.oci.image.manifest.v1+json",
                       "digest": digest(manifest), "size": len(manifest),
                       "annotations": {"org.opencontainers.image.ref.name": tag}}],
    })
    if out.exists():
        shutil.rmtree(out)
    blobs = out / "blobs" / "sha256"
    blobs.mkdir(parents=True)
    for blob in (layer, config, manifest):
        (blobs / hashlib.sha256(blob).hexdigest()).write_bytes(blob)
    (out / "oci-layout").write_bytes(canonical({"imageLayoutVersion": "1.0.0"}))
    (out / "index.json").write_bytes(index)
    return digest(manifest)


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--wasm", type=Path, default=DEFAULT_WASM)
    parser.add_argument("--out", type=Path, default=TARGET / "oci/tollgate-filter")
    parser.add_argument("--tag", default="0.1.0")
    args = parser.parse_args()
    try:
        wasm = args.wasm.read_bytes()
    except OSError as e:
        print(f"wasm-oci: {e} (build it first: scripts/build-wasm.sh)", file=sys.stderr)
        return 1
    if wasm[:4] != b"\0asm":
        print(f"wasm-oci: {args.wasm} is not a WebAssembly module", file=sys.stderr)
        return 1
    print(build(wasm, args.out, args.tag))
    return 0


if __name__ == "__main__":
    sys.exit(main())
