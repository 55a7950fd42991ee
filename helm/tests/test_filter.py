"""The filter configuration the chart renders is one the filter accepts (the validation its
`on_configure` runs, through `tollgate-inspect --check-config`), and the Envoy configuration
the rendered objects describe passes `envoy --mode validate`."""

import json
import os
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from chart import ROOT, TARGET, VALUE_SETS, binary, render, render_objects, values

FILTER_KINDS = ("WasmPlugin", "EnvoyFilter", "EnvoyExtensionPolicy")


def plugin_configs(objs):
    """(where, JSON text) of every plugin configuration among the rendered objects."""
    for obj in objs:
        kind, spec = obj["kind"], obj.get("spec", {})
        if kind == "WasmPlugin":
            yield kind, json.dumps(spec["pluginConfig"])
        elif kind == "EnvoyExtensionPolicy":
            for wasm in spec["wasm"]:
                yield kind, json.dumps(wasm["config"])
        elif kind == "EnvoyFilter":
            for patch in spec["configPatches"]:
                if patch["applyTo"] == "HTTP_FILTER":
                    yield kind, patch["patch"]["value"]["typed_config"]["config"]["configuration"]["value"]


def check_config(text):
    return subprocess.run([str(binary("tollgate-inspect")), "--check-config", "-"], input=text,
                          capture_output=True, text=True)


@pytest.mark.parametrize("name", [n for n in VALUE_SETS if n != "istio-off"])
def test_the_rendered_plugin_configuration_passes_the_filters_own_validation(name):
    configs = list(plugin_configs(render_objects(name)))
    assert configs, f"{name} renders no filter"
    for kind, text in configs:
        result = check_config(text)
        assert (result.returncode, result.stdout.strip()) == (0, "ok"), (kind, result.stderr)
        assert json.loads(text)["control_plane"]["token"] == values(name)["auth"]["dataplaneToken"]


def test_a_plugin_configuration_the_filter_refuses_fails_the_check_naming_the_field():
    vals = values("defaults")
    vals["filter"] = {"config": {"scopes": {"sources": [{"kind": "department", "header": "x-dept"}]}}}
    [(_, text)] = plugin_configs(render_objects_of(vals))
    result = check_config(text)
    assert result.returncode == 1
    assert "tollgate config: scopes.sources[0].kind" in result.stderr


def render_objects_of(vals):
    return [d for d in yaml.safe_load_all(render(vals)) if d]


def test_the_istio_examples_in_envoy_istio_are_what_the_chart_renders():
    def without_token(config):
        config["control_plane"]["token"] = "replace-with-the-dataplane-token"
        return config

    example = yaml.safe_load((ROOT / "envoy/istio/wasmplugin.yaml").read_text())
    rendered = next(o for o in render_objects("defaults") if o["kind"] == "WasmPlugin")
    assert without_token(rendered["spec"]["pluginConfig"]) == example["spec"]["pluginConfig"]
    for key in ("phase", "failStrategy", "selector", "imagePullPolicy"):
        assert example["spec"][key] == rendered["spec"][key], key
    assert example["metadata"] == {"name": "tollgate", "namespace": "istio-system"}

    [(_, example_filter)] = plugin_configs([yaml.safe_load((ROOT / "envoy/istio/envoyfilter.yaml").read_text())])
    [(_, rendered_filter)] = plugin_configs(render_objects("istio-envoyfilter"))
    assert json.loads(example_filter) == without_token(json.loads(rendered_filter))


# --- envoy --mode validate -------------------------------------------------------------------

def envoy():
    path = os.environ.get("TOLLGATE_ENVOY") or shutil.which("envoy") or str(ROOT / ".venv/bin/envoy")
    assert Path(path).exists(), "no Envoy: scripts/setup.sh installs it into .venv"
    return path


def wasm_module():
    path = TARGET / "wasm32-wasip1/wasm-opt/tollgate_filter.wasm"
    assert path.exists(), f"{path} is missing: scripts/build-wasm.sh builds it"
    return str(path)


def wasm_http_filter(config_json, fail_strategy):
    """The HTTP filter Istio generates for a WasmPlugin (module fetched to a local file)."""
    policy = {"FAIL_CLOSE": "FAIL_CLOSED"}.get(fail_strategy, fail_strategy)
    return {"name": "envoy.filters.http.wasm", "typed_config": {
        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
        "config": {"name": "tollgate", "root_id": "tollgate", "failure_policy": policy,
                   "vm_config": {"vm_id": "tollgate", "runtime": "envoy.wasm.runtime.v8",
                                 "code": {"local": {"filename": wasm_module()}}},
                   "configuration": {"@type": "type.googleapis.com/google.protobuf.StringValue",
                                     "value": config_json}}}}


def bootstrap(http_filter, clusters, stats_config=None):
    hcm = {"@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
           "stat_prefix": "egress", "route_config": {"virtual_hosts": [
               {"name": "all", "domains": ["*"], "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 404}}]}]},
           "http_filters": [http_filter, {"name": "envoy.filters.http.router", "typed_config": {
               "@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"}}]}
    config = {"static_resources": {
        "listeners": [{"name": "egress", "address": {"socket_address": {"address": "127.0.0.1", "port_value": 10000}},
                       "filter_chains": [{"filters": [{"name": "envoy.filters.network.http_connection_manager",
                                                       "typed_config": hcm}]}]}],
        "clusters": clusters}}
    if stats_config:
        config["stats_config"] = stats_config
    return config


def static_cluster(name, host="127.0.0.1", port=8080):
    return {"name": name, "type": "STRICT_DNS", "connect_timeout": "1s", "load_assignment": {
        "cluster_name": name, "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {
            "socket_address": {"address": host, "port_value": port}}}}]}]}}


def envoy_validate(config, tmp_path):
    path = tmp_path / "envoy.json"
    path.write_text(json.dumps(config))
    result = subprocess.run([envoy(), "--mode", "validate", "-c", str(path), "-l", "error"],
                            capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_envoy_config_of_the_istio_envoyfilter_passes_envoy_validate(tmp_path):
    objs = render_objects("istio-envoyfilter")
    patches = next(o for o in objs if o["kind"] == "EnvoyFilter")["spec"]["configPatches"]
    http_filter = next(p for p in patches if p["applyTo"] == "HTTP_FILTER")["patch"]["value"]
    http_filter["typed_config"]["config"]["vm_config"]["code"]["local"]["filename"] = wasm_module()
    stats = next(p for p in patches if p["applyTo"] == "BOOTSTRAP")["patch"]["value"]["stats_config"]
    cluster = json.loads(http_filter["typed_config"]["config"]["configuration"]["value"])["control_plane"]["cluster"]
    envoy_validate(bootstrap(http_filter, [static_cluster(cluster)], stats), tmp_path)


def test_the_envoy_config_of_the_istio_wasmplugin_passes_envoy_validate(tmp_path):
    objs = render_objects("defaults")
    plugin = next(o for o in objs if o["kind"] == "WasmPlugin")["spec"]
    stats = next(o for o in objs if o["kind"] == "EnvoyFilter")["spec"]["configPatches"][0]["patch"]["value"]["stats_config"]
    config = json.dumps(plugin["pluginConfig"])
    cluster = plugin["pluginConfig"]["control_plane"]["cluster"]
    envoy_validate(bootstrap(wasm_http_filter(config, plugin["failStrategy"]), [static_cluster(cluster)], stats), tmp_path)


def test_the_envoy_config_of_the_envoy_gateway_policies_passes_envoy_validate(tmp_path):
    objs = render_objects("envoy-gateway")
    wasm = next(o for o in objs if o["kind"] == "EnvoyExtensionPolicy")["spec"]["wasm"][0]
    patch = next(o for o in objs if o["kind"] == "EnvoyPatchPolicy")["spec"]["jsonPatches"][0]
    assert wasm["config"]["control_plane"]["cluster"] == patch["operation"]["value"]["name"]
    policy = "FAIL_OPEN" if wasm["failOpen"] else "FAIL_CLOSED"
    http_filter = wasm_http_filter(json.dumps(wasm["config"]), policy)
    envoy_validate(bootstrap(http_filter, [patch["operation"]["value"]]), tmp_path)


def test_envoy_validate_fails_on_a_broken_cluster(tmp_path):
    broken = static_cluster("tollgate_control_plane")
    broken["type"] = "NOT_A_TYPE"
    with pytest.raises(AssertionError):
        envoy_validate(bootstrap(wasm_http_filter("{}", "FAIL_RELOAD"), [broken]), tmp_path)
