// Validates rendered Istio and prometheus-operator objects against their CRD schemas, as
// compiled by the @kubernetes-models packages (package.json pins them). Reads a JSON array of
// objects on stdin; prints a JSON array of {kind, name, errors} (errors empty when valid).
//
// The compiled schemas check types, enums, patterns and required fields but, like the CRDs,
// do not refuse unknown fields (the API server prunes them silently). So every key of the
// object must also be a field name that the package's TypeScript declarations of that API
// group know; the free-form parts (labels, plugin configuration, Envoy patches) are skipped.
import { readFileSync, readdirSync } from "node:fs";
import { dirname, join } from "node:path";
import { fileURLToPath } from "node:url";

const here = dirname(fileURLToPath(import.meta.url));
const models = {
  "extensions.istio.io/v1alpha1/WasmPlugin": "@kubernetes-models/istio",
  "networking.istio.io/v1alpha3/EnvoyFilter": "@kubernetes-models/istio",
  "networking.istio.io/v1/ServiceEntry": "@kubernetes-models/istio",
  "networking.istio.io/v1/DestinationRule": "@kubernetes-models/istio",
  "monitoring.coreos.com/v1/ServiceMonitor": "@kubernetes-models/prometheus-operator",
};
// Paths (dot-joined, array indexes dropped) whose contents are free-form.
const opaque = new Set([
  "metadata.labels", "metadata.annotations", "spec.selector.matchLabels", "spec.pluginConfig",
  "spec.workloadSelector.labels", "spec.configPatches.patch.value", "spec.selector.matchLabels",
]);

const knownKeys = new Map();
function keysOf(pkg, group) {
  const id = `${pkg}/${group}`;
  if (!knownKeys.has(id)) {
    const dir = join(here, "node_modules", pkg, group);
    // metav1 names, declared in @kubernetes-models/apimachinery rather than the group.
    const keys = new Set(["apiVersion", "kind", "metadata", "name", "namespace", "labels", "annotations",
      "matchLabels", "matchExpressions", "key", "operator", "values"]);
    for (const f of readdirSync(dir, { recursive: true })) {
      if (!String(f).endsWith(".d.ts")) continue;
      for (const m of readFileSync(join(dir, f), "utf8").matchAll(/"?([A-Za-z_][A-Za-z0-9_]*)"?\??:/g)) {
        keys.add(m[1]);
      }
    }
    knownKeys.set(id, keys);
  }
  return knownKeys.get(id);
}

function unknownKeys(value, path, keys, out) {
  if (opaque.has(path)) return;
  if (Array.isArray(value)) {
    for (const v of value) unknownKeys(v, path, keys, out);
  } else if (value !== null && typeof value === "object") {
    for (const [k, v] of Object.entries(value)) {
      const p = path ? `${path}.${k}` : k;
      if (!keys.has(k)) out.push(`${p}: unknown field`);
      unknownKeys(v, p, keys, out);
    }
  }
}

const objects = JSON.parse(readFileSync(0, "utf8"));
const results = [];
for (const obj of objects) {
  const id = `${obj.apiVersion}/${obj.kind}`;
  const pkg = models[id];
  const name = obj.metadata?.name;
  if (!pkg) {
    results.push({ kind: id, name, errors: [`no CRD schema for ${id}`] });
    continue;
  }
  const group = obj.apiVersion;
  const mod = await import(`${pkg}/${group}/${obj.kind}`);
  const Model = mod[obj.kind];
  const errors = [];
  try {
    new Model(obj).validate();
  } catch (e) {
    errors.push(String(e.message ?? e));
  }
  unknownKeys(obj, "", keysOf(pkg, group), errors);
  results.push({ kind: id, name, errors });
}
process.stdout.write(JSON.stringify(results));
