"""Every object the chart renders is valid for the API server that will receive it: built-in
kinds against the Kubernetes OpenAPI schemas (kubernetes-validate, strict: unknown fields are
errors) of each supported Kubernetes version; Istio and prometheus-operator kinds against their
CRD schemas (crd/package.json pins the packages that compile them); Envoy Gateway kinds against
crd/envoy-gateway.schema.json (written from its API reference; no package ships those CRDs)."""

import json
import subprocess

import jsonschema
import kubernetes_validate
import pytest

from chart import TESTS, VALUE_SETS, render_objects

# Chart.yaml's kubeVersion (>=1.29) up to the newest schemas kubernetes-validate ships.
KUBE_VERSIONS = sorted({v for v in kubernetes_validate.utils.all_versions()
                        if tuple(map(int, v.split(".")[:2])) >= (1, 29)},
                       key=lambda v: tuple(map(int, v.split("."))))
CRD_GROUPS = ("networking.istio.io/", "extensions.istio.io/", "monitoring.coreos.com/")
EG_GROUP = "gateway.envoyproxy.io/"


def builtin(objs):
    return [o for o in objs if not o["apiVersion"].startswith(CRD_GROUPS + (EG_GROUP,))]


def test_the_supported_kubernetes_versions_include_1_29_to_1_35():
    assert {"1.29.0", "1.35.0"} <= set(KUBE_VERSIONS), KUBE_VERSIONS


@pytest.mark.parametrize("name", VALUE_SETS)
@pytest.mark.parametrize("version", KUBE_VERSIONS)
def test_every_builtin_object_is_valid_for_each_supported_kubernetes(name, version):
    errors = []
    for obj in builtin(render_objects(name)):
        try:
            kubernetes_validate.validate(obj, version, strict=True)
        except kubernetes_validate.ValidationError as e:
            errors.append(f"{obj['kind']}/{obj['metadata']['name']}: {e.message} at {list(e.path)}")
    assert not errors, "\n".join(errors)


def validate_crds(objs):
    node_modules = TESTS / "crd" / "node_modules"
    assert node_modules.is_dir(), f"{node_modules} is missing: scripts/setup.sh installs it (npm ci)"
    out = subprocess.run(["node", str(TESTS / "crd" / "validate-crds.mjs")], input=json.dumps(objs),
                         capture_output=True, text=True, check=True).stdout
    return {f"{r['kind']} {r['name']}": r["errors"] for r in json.loads(out)}


@pytest.mark.parametrize("name", VALUE_SETS)
def test_istio_and_servicemonitor_objects_match_their_crd_schemas(name):
    objs = [o for o in render_objects(name) if o["apiVersion"].startswith(CRD_GROUPS)]
    results = validate_crds(objs)
    assert len(results) == len(objs)
    assert all(not errs for errs in results.values()), results


def test_the_crd_check_catches_a_bad_enum_and_unknown_or_misplaced_fields():
    obj = {"apiVersion": "extensions.istio.io/v1alpha1", "kind": "WasmPlugin",
           "metadata": {"name": "t", "namespace": "istio-system"},
           "spec": {"url": "oci://r/x:1", "failStrategy": "FAIL_SOMETIMES", "phaze": "STATS",
                    "match": [{"number": 443}]}}
    errors = validate_crds([obj])["extensions.istio.io/v1alpha1/WasmPlugin t"]
    assert any("failStrategy" in e for e in errors), errors
    assert "spec.phaze: unknown field" in errors, errors
    # A real field name in the wrong place (it belongs in match[].ports[]).
    assert "spec.match.number: unknown field" in errors, errors


EG_SCHEMA = json.loads((TESTS / "crd" / "envoy-gateway.schema.json").read_text())


def test_envoy_gateway_objects_match_their_schemas():
    objs = [o for o in render_objects("envoy-gateway") if o["apiVersion"].startswith(EG_GROUP)]
    assert sorted(o["kind"] for o in objs) == ["EnvoyExtensionPolicy", "EnvoyPatchPolicy"]
    for obj in objs:
        jsonschema.validate(obj, EG_SCHEMA)


def test_the_envoy_gateway_schema_refuses_an_unknown_field():
    obj = next(o for o in render_objects("envoy-gateway") if o["kind"] == "EnvoyExtensionPolicy")
    obj["spec"]["wasm"][0]["failopen"] = True
    with pytest.raises(jsonschema.ValidationError, match="failopen"):
        jsonschema.validate(obj, EG_SCHEMA)
