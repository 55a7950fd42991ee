#!/usr/bin/env bash
# Rebuilds the dashboard's generated files in ui/static (checked in, so a build needs no npm):
#   - vendor/: uPlot's built files and licence, from the npm package ui/package-lock.json pins
#   - pkg/: the calculator's WebAssembly, tollgate-model-wasm built for wasm32-unknown-unknown
#     (profile ui-wasm) and its JavaScript glue, by the wasm-bindgen CLI of exactly the
#     crate's version (scripts/setup.sh installs it); ui/pkg-built-with.txt records rustc's
#     and wasm-bindgen's versions
#   scripts/ui-assets.sh          regenerate them
#   scripts/ui-assets.sh --check  regenerate into a temporary folder and fail if the checked-in
#                                 files differ (scripts/test.sh ui runs this). The .wasm is
#                                 compared only when this rustc is the one recorded (another
#                                 compiler emits other bytes; the shared cost cases check what
#                                 it computes, tests/browser/dashboard.mjs through the page)
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
check=false
[ "${1:-}" = "--check" ] && check=true

out="$ROOT/ui/static"
if $check; then
  out="$(mktemp -d)"
  trap 'rm -rf "$out"' EXIT
fi
mkdir -p "$out/vendor"

if [ "$(sha256sum < ui/package-lock.json)" != "$(cat ui/node_modules/.tollgate-lock 2>/dev/null)" ]; then
  (cd ui && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
  sha256sum < ui/package-lock.json > ui/node_modules/.tollgate-lock
fi
cp ui/node_modules/uplot/dist/uPlot.iife.min.js ui/node_modules/uplot/dist/uPlot.min.css "$out/vendor/"
cp ui/node_modules/uplot/LICENSE "$out/vendor/uPlot.LICENSE"

# Paths in panic locations are remapped so the bytes do not depend on where the checkout and
# the cargo registry are.
target="${CARGO_TARGET_DIR:-$ROOT/target}"
RUSTFLAGS="--remap-path-prefix=${CARGO_HOME:-$HOME/.cargo}=/cargo --remap-path-prefix=$ROOT=/tollgate" \
  cargo build --locked -q -p tollgate-model-wasm --target wasm32-unknown-unknown --profile ui-wasm
wasm-bindgen --target web --no-typescript --out-dir "$out/pkg" \
  "$target/wasm32-unknown-unknown/ui-wasm/tollgate_model_wasm.wasm"
built_with="$(rustc -V); $(wasm-bindgen --version)"

if $check; then
  files=(vendor/uPlot.iife.min.js vendor/uPlot.min.css vendor/uPlot.LICENSE pkg/tollgate_model_wasm.js)
  if [ "$built_with" = "$(cat ui/pkg-built-with.txt)" ]; then
    files+=(pkg/tollgate_model_wasm_bg.wasm)
  else
    echo "ui/static/pkg/tollgate_model_wasm_bg.wasm was built with $(cat ui/pkg-built-with.txt), this is $built_with: its bytes are not compared" >&2
  fi
  for f in "${files[@]}"; do
    if ! cmp -s "$out/$f" "ui/static/$f"; then
      echo "ui/static/$f differs from what scripts/ui-assets.sh builds: run it and commit the result" >&2
      exit 1
    fi
  done
  echo "ui/static generated files match their sources"
else
  echo "$built_with" > ui/pkg-built-with.txt
fi
