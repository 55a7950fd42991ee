"""The Dockerfile and the chart agree on how the control plane runs (no Docker engine here to
build the image; test_readonly.py runs the binary the way the image and the chart do)."""

import re

import yaml

from chart import CHART, ROOT


def test_the_image_runs_tollgate_as_the_charts_non_root_user():
    dockerfile = (ROOT / "Dockerfile").read_text()
    final_stage = dockerfile.rsplit("\nFROM ", 1)[1]
    assert final_stage.startswith("gcr.io/distroless/static")
    user = re.search(r"^USER (\d+):(\d+)$", final_stage, re.M)
    values = yaml.safe_load((CHART / "values.yaml").read_text())
    assert user and int(user[1]) == int(user[2]) == values["controlPlane"]["runAsUser"]
    assert 'ENTRYPOINT ["/usr/local/bin/tollgate"]' in final_stage
    # Statically linked: distroless/static has no libc.
    assert "x86_64-unknown-linux-musl" in dockerfile
