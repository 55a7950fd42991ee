"""scripts/wasm-oci.py packs the built filter as the OCI image Istio and Envoy Gateway pull:
a valid image layout whose every digest and size checks out, one tar+gzip layer holding exactly
`plugin.wasm` (the built module, byte for byte), the `compat` variant annotation, and the same
digest on every run."""

import gzip
import hashlib
import io
import json
import subprocess
import sys
import tarfile

import pytest

from chart import ROOT, TARGET

SCRIPT = ROOT / "scripts" / "wasm-oci.py"


@pytest.fixture(scope="module")
def wasm():
    path = TARGET / "wasm32-wasip1/wasm-opt/tollgate_filter.wasm"
    assert path.exists(), f"{path} is missing: scripts/build-wasm.sh builds it"
    return path


def pack(wasm, out):
    result = subprocess.run([sys.executable, str(SCRIPT), "--wasm", str(wasm), "--out", str(out), "--tag", "t1"],
                            capture_output=True, text=True, check=True)
    return result.stdout.strip()


def blob(layout, descriptor):
    algo, hexdigest = descriptor["digest"].split(":")
    data = (layout / "blobs" / algo / hexdigest).read_bytes()
    assert algo == "sha256" and hashlib.sha256(data).hexdigest() == hexdigest, descriptor
    assert len(data) == descriptor["size"], descriptor
    return data


def test_the_layout_holds_plugin_wasm_with_every_digest_checked(wasm, tmp_path):
    layout = tmp_path / "oci"
    printed = pack(wasm, layout)
    assert json.loads((layout / "oci-layout").read_text()) == {"imageLayoutVersion": "1.0.0"}
    index = json.loads((layout / "index.json").read_text())
    [entry] = index["manifests"]
    assert entry["annotations"]["org.opencontainers.image.ref.name"] == "t1"
    assert printed == entry["digest"]
    manifest = json.loads(blob(layout, entry))
    assert manifest["mediaType"] == entry["mediaType"] == "application/vnd.oci.image.manifest.v1+json"
    assert manifest["annotations"] == {"module.wasm.image/variant": "compat"}
    config = json.loads(blob(layout, manifest["config"]))
    [layer] = manifest["layers"]
    assert layer["mediaType"] == "application/vnd.oci.image.layer.v1.tar+gzip"
    tar_bytes = gzip.decompress(blob(layout, layer))
    assert config["rootfs"] == {"type": "layers", "diff_ids": ["sha256:" + hashlib.sha256(tar_bytes).hexdigest()]}
    with tarfile.open(fileobj=io.BytesIO(tar_bytes)) as tar:
        [member] = tar.getmembers()
        assert member.name == "plugin.wasm" and member.isfile()
        assert tar.extractfile(member).read() == wasm.read_bytes()


def test_packing_twice_gives_the_same_digest(wasm, tmp_path):
    assert pack(wasm, tmp_path / "a") == pack(wasm, tmp_path / "b")


def test_a_file_that_is_not_wasm_is_refused(tmp_path):
    bogus = tmp_path / "x.wasm"
    bogus.write_bytes(b"not a module")
    result = subprocess.run([sys.executable, str(SCRIPT), "--wasm", str(bogus), "--out", str(tmp_path / "o")],
                            capture_output=True, text=True)
    assert result.returncode == 1 and "is not a WebAssembly module" in result.stderr
