#!/usr/bin/env bash
# The filter core's per-call work, phase by phase, natively and in V8 (node runs the
# wasm32-wasip1 build with Liftoff off, as Envoy's V8 does), with hot and with cold caches.
# See filter/core/examples/exchange_phases.rs; figures in docs/benchmarks.md.
set -euo pipefail
cd "$(dirname "$0")/.."
TARGET="${CARGO_TARGET_DIR:-target}"
cargo build -q --profile wasm --target wasm32-wasip1 -p tollgate-filter-core \
  --no-default-features --features testing --example exchange_phases
cargo build -q --release -p tollgate-filter-core --features testing --example exchange_phases
for caches in hot cold; do
  echo "== native, $caches"
  "$TARGET/release/examples/exchange_phases" "$caches"
  echo "== V8 (node $(node --version)), $caches"
  node --no-liftoff --no-warnings scripts/run-wasi.mjs \
    "$TARGET/wasm32-wasip1/wasm/examples/exchange_phases.wasm" "$caches"
done
