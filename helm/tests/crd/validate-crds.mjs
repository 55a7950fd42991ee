// Validates rendered Istio and prometheus-operator objects against their CRD schemas, as
// compiled by the @kubernetes-models packages (package.json pins them). Reads a JSON array of
// objects on stdin; prints a JSON array of {kind, name, errors} (errors empty when valid).
//
// The compiled schemas check types, enums, patterns and required fields but, like the CRDs,
// do not refuse unknown fields (the API server prunes them silently). So every key must also
// be declared by the package's TypeScript declaration of the kind: path by path for Istio's
// (self-contained interfaces, free-form objects such as pluginConfig or an Envoy patch left
// open), by name within the API group for prometheus-operator's (whose interfaces refer to
// one another).
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

// Field paths declared by a self-contained TypeScript interface (Istio's): "spec.match.mode".
// Returns {fields, open}: open = paths whose type is a free-form object ({} or an index signature).
export function declaredPaths(text) {
  const src = text.replace(/\/\*[\s\S]*?\*\//g, "").replace(/\/\/.*$/gm, "");
  const start = src.indexOf("export interface");
  const body = src.slice(src.indexOf("{", start));
  const fields = new Set(), open = new Set();
  const stack = [];  // paths of the enclosing object types
  let pending = null;
  const re = /"([^"]+)"\??\s*:|\[\s*\w+\s*:\s*string\s*\]\s*:|\{\s*\}|[{}]/g;
  let m;
  while ((m = re.exec(body))) {
    const tok = m[0];
    const here = stack.length ? stack[stack.length - 1] : null;
    if (m[1] !== undefined) {
      pending = here ? `${here}.${m[1]}` : m[1];
      if (here === "") pending = m[1];
      fields.add(pending);
    } else if (tok.startsWith("[")) {
      if (here !== null) open.add(here);
    } else if (/^\{\s*\}$/.test(tok)) {
      if (pending) open.add(pending);
    } else if (tok === "{") {
      stack.push(stack.length === 0 ? "" : (pending ?? here));
      pending = null;
    } else {
      // A union's next member (`} | {`) opens the same path again.
      pending = stack.pop();
      if (stack.length === 0) break;
    }
  }
  return { fields, open };
}

function unknownPaths(obj, declared) {
  const out = [];
  const walk = (value, path) => {
    if ([...declared.open].some((o) => path === o)) return;
    if (Array.isArray(value)) return value.forEach((v) => walk(v, path));
    if (value === null || typeof value !== "object") return;
    for (const [k, v] of Object.entries(value)) {
      const p = path ? `${path}.${k}` : k;
      if (!declared.fields.has(p)) out.push(`${p}: unknown field`);
      else walk(v, p);
    }
  };
  walk(obj.spec, "spec");
  return out;
}

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
  if (pkg === "@kubernetes-models/istio") {
    const dts = join(here, "node_modules", pkg, group, `${obj.kind}.d.ts`);
    errors.push(...unknownPaths(obj, declaredPaths(readFileSync(dts, "utf8"))));
  } else {
    unknownKeys(obj, "", keysOf(pkg, group), errors);
  }
  results.push({ kind: id, name, errors });
}
process.stdout.write(JSON.stringify(results));
