#!/usr/bin/env bash
# Times the filter core's request reading inside Envoy's own V8 (filter/wasm/src/vm_bench.rs):
# builds the filter with the `vm-bench` feature (as build-wasm.sh builds it, into a separate
# directory), starts Envoy from the venv with one worker, and prints what each VM logs
# (the main thread's and the worker's). Figures in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
export CARGO_TARGET_DIR="${CARGO_TARGET_DIR:-$ROOT/target}/vm-bench"
cargo build --quiet --locked -p tollgate-filter --features vm-bench --target wasm32-wasip1 --profile wasm
wasm="$CARGO_TARGET_DIR/tollgate_filter.wasm"
wasm-opt --enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext \
  --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-simd \
  -O3 "$CARGO_TARGET_DIR/wasm32-wasip1/wasm/tollgate_filter.wasm" -o "$wasm"
cargo build --quiet --locked --release -p tollgate-e2e --bin render-envoy-config
dir="$(mktemp -d)"
trap 'rm -rf "$dir"' EXIT
"$CARGO_TARGET_DIR/release/render-envoy-config" --local --wasm "$wasm" \
  --listen-port 0 --admin-port 0 --mock-port 1 > "$dir/envoy.yaml"
envoy="${ENVOY:-$ROOT/.venv/bin/envoy}"
echo "== $("$envoy" --version | grep -o 'version: [^ ]*')"
# Each VM runs the timings in on_configure; two VMs (main thread, one worker) print a set each.
timeout 60 "$envoy" -c "$dir/envoy.yaml" --concurrency 1 --disable-hot-restart -l warn 2>&1 |
  grep --line-buffered -o 'tollgate vm-bench: .*' | head -60 || true
