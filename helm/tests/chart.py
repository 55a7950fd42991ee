"""Renders the chart with the real Helm (helm-python-sdk bundles Helm's own Go library) and
finds the binaries the chart's tests run. Shared by the test modules."""

from __future__ import annotations

import os
from functools import cache
from pathlib import Path

import yaml
from helm_python import Chart

ROOT = Path(__file__).resolve().parents[2]
CHART = ROOT / "helm" / "tollgate"
TESTS = Path(__file__).resolve().parent
VALUE_SETS = sorted(p.stem for p in (TESTS / "values").glob("*.yaml"))
RELEASE = "tollgate"
NAMESPACE = "tollgate"
TARGET = Path(os.environ.get("CARGO_TARGET_DIR", ROOT / "target"))


@cache
def chart() -> Chart:
    return Chart.load(CHART)


def values(name: str) -> dict:
    return yaml.safe_load((TESTS / "values" / f"{name}.yaml").read_text()) or {}


def render(vals: dict) -> str:
    """The manifest `helm template` would print: templates in path order, `---` between, NOTES
    left out. Helm's errors (schema or `fail`) raise with its own message."""
    out = chart().render(vals, name=RELEASE, namespace=NAMESPACE, is_install=True)
    docs = []
    for path in sorted(out):
        text = out[path].strip()
        if path.endswith("NOTES.txt") or not text:
            continue
        docs.append(f"# Source: {path}\n{text}\n")
    return "---\n".join(docs)


def objects(manifest: str) -> list[dict]:
    return [d for d in yaml.safe_load_all(manifest) if d]


def render_objects(name: str) -> list[dict]:
    return objects(render(values(name)))


def binary(name: str) -> Path:
    """A workspace binary scripts/test.sh builds before the chart tests; missing is a failure."""
    path = TARGET / "debug" / name
    assert path.exists(), f"{path} is missing: build it (scripts/test.sh helm does)"
    return path
