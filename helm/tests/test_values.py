"""Wrong values are refused at install with a message naming the key (values.schema.json, or
the chart's own checks for rules across keys)."""

import copy
import json

import pytest
from helm_python.errors import HelmError

from chart import CHART, render, values


def refusal(change) -> str:
    vals = copy.deepcopy(values("defaults"))
    change(vals)
    with pytest.raises(HelmError) as caught:
        render(vals)
    return str(caught.value)


def test_a_typod_key_is_refused_naming_it():
    message = refusal(lambda v: v.setdefault("controlPlane", {}).update(replica=3))
    assert "at '/controlPlane': additional properties 'replica' not allowed" in message


def test_a_typod_nested_key_is_refused_naming_its_path():
    message = refusal(lambda v: v.update(filter={"istio": {"failStratgy": "FAIL_OPEN"}}))
    assert "at '/filter/istio': additional properties 'failStratgy' not allowed" in message


def test_negative_replicas_are_refused():
    message = refusal(lambda v: v.setdefault("controlPlane", {}).update(replicas=-1))
    assert "at '/controlPlane/replicas': minimum: got -1, want 0" in message


def test_a_redis_url_that_is_not_redis_is_refused():
    message = refusal(lambda v: v.update(redis={"mode": "external", "external": {"url": "http://redis:6379"}}))
    assert "at '/redis/external/url'" in message and "does not match pattern" in message


def test_a_redis_url_with_a_password_in_it_is_refused():
    message = refusal(lambda v: v.update(redis={"mode": "external", "external": {"url": "redis://:hunter2@redis:6379/0"}}))
    assert "at '/redis/external/url'" in message


def test_a_filter_url_that_is_neither_oci_nor_http_is_refused():
    message = refusal(lambda v: v.update(filter={"istio": {"url": "ftp://x/f.wasm"}}))
    assert "at '/filter/istio/url'" in message


def test_an_http_module_without_its_sha256_is_refused():
    message = refusal(lambda v: v.update(filter={"istio": {"url": "https://x/tollgate_filter.wasm"}}))
    assert "at '/filter/istio/sha256': minLength: got 0, want 64" in message


def test_missing_tokens_and_no_token_secret_are_refused_naming_both_ways():
    message = refusal(lambda v: v.update(auth={}))
    assert "at '/auth/existingSecret': minLength: got 0, want 1" in message
    assert "at '/auth/adminToken': minLength: got 0, want 16" in message
    assert "at '/auth/dataplaneToken': minLength: got 0, want 16" in message


def test_a_token_with_whitespace_is_refused():
    message = refusal(lambda v: v["auth"].update(dataplaneToken="has a space in it 0123"))
    assert "at '/auth/dataplaneToken'" in message


def test_a_token_secret_without_the_filters_copy_is_refused_when_helm_cannot_read_it():
    message = refusal(lambda v: v.update(auth={"existingSecret": "tollgate-tokens"}))
    assert "the filter's configuration needs the data-plane token: set auth.dataplaneToken" in message
    assert "tollgate/tollgate-tokens" in message


def test_the_memory_store_with_two_replicas_is_refused():
    message = refusal(lambda v: v.update(redis={"mode": "memory"}))
    assert "redis.mode=memory keeps counters in each pod: set controlPlane.replicas=1" in message


def test_external_redis_without_a_url_is_refused():
    message = refusal(lambda v: v.update(redis={"mode": "external"}))
    assert "redis.mode=external needs exactly one of redis.external.url (standalone)" in message


def test_external_redis_with_a_url_and_sentinels_is_refused():
    message = refusal(lambda v: v.update(redis={"mode": "external", "external": {
        "url": "redis://r:6379/0", "sentinel": {"masterName": "m", "nodes": ["redis://s1:26379"]}}}))
    assert "needs exactly one of redis.external.url" in message


def test_sentinels_without_a_master_name_are_refused():
    message = refusal(lambda v: v.update(redis={"mode": "external", "external": {
        "sentinel": {"nodes": ["redis://s1:26379"]}}}))
    assert "redis.external.sentinel.masterName is required" in message


def test_a_cluster_node_that_is_not_a_redis_url_is_refused():
    message = refusal(lambda v: v.update(redis={"mode": "external", "external": {
        "cluster": {"nodes": ["node-a:6379"]}}}))
    assert "at '/redis/external/cluster/nodes/0'" in message


def test_a_fail_strategy_istio_does_not_know_is_refused():
    message = refusal(lambda v: v.update(filter={"istio": {"failStrategy": "FAIL_CLOSED"}}))
    assert "at '/filter/istio/failStrategy'" in message


def test_an_unknown_filter_config_key_is_refused():
    message = refusal(lambda v: v.update(filter={"config": {"unmatched_paths": "deny"}}))
    assert "at '/filter/config': additional properties 'unmatched_paths' not allowed" in message


# Objects the schema leaves open on purpose: Helm's `global` (a parent chart's business) and
# the Kubernetes affinity terms passed through as they are (the Kubernetes schemas check them
# in test_schemas.py).
OPEN_OBJECTS = {"global", "controlPlane.affinity.nodeAffinity", "controlPlane.affinity.podAffinity",
                "controlPlane.affinity.podAntiAffinity"}


def test_every_object_in_the_values_schema_refuses_unknown_keys():
    schema = json.loads((CHART / "values.schema.json").read_text())
    open_objects = []

    def walk(node, path):
        if node.get("type") == "object" and "additionalProperties" not in node:
            open_objects.append(path)
        for key, child in node.get("properties", {}).items():
            walk(child, f"{path}.{key}".lstrip("."))
        for key in ("items", "additionalProperties"):
            if isinstance(node.get(key), dict):
                walk(node[key], f"{path}[]")
        for key in ("oneOf", "anyOf", "allOf"):
            for child in node.get(key, []):
                walk(child, path)

    walk(schema, "")
    assert set(open_objects) == OPEN_OBJECTS
