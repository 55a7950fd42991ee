#!/usr/bin/env bash
# Builds proxy-wasm filters as they ship: cargo's `wasm` profile, then binaryen's wasm-opt.
#   scripts/build-wasm.sh [CRATE...]    default: tollgate-filter
# Writes $CARGO_TARGET_DIR/wasm32-wasip1/wasm-opt/<crate_name>.wasm (target/ by default);
# cargo's own output in wasm32-wasip1/wasm/ is the unoptimised input.
#
# Why a post-link pass: cargo's module is ~680 KB (Cargo.toml's [profile.wasm] says why its
# opt-levels); wasm-opt's whole-module passes (dead code, duplicate functions, local
# coalescing) take ~13 % off (~588 KB; issue 5's target is 600 KB), and it is no slower in
# Envoy (bench-gateway figures in docs/benchmarks.md). -O3 rather than -Oz: ~8 KB larger,
# measured faster in Envoy (the filter's own time in V8 is about a third lower).
# --merge-similar-functions (functions that differ only in constants become one taking them
# as parameters: the many monomorphised serde visitors) and --converge (repeat until nothing
# shrinks) take ~5.7 KB more off the -O3 module (602 453 -> 596 788 bytes); their cost in
# Envoy is not yet measured with bench-gateway.
# scripts/setup.sh installs wasm-opt (Debian `binaryen`; version 108 works).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"

crates=("$@")
((${#crates[@]})) || crates=(tollgate-filter)
pkgs=()
for c in "${crates[@]}"; do pkgs+=(-p "$c"); done
cargo build --quiet --locked "${pkgs[@]}" --target wasm32-wasip1 --profile wasm

# rustc's wasm32-wasip1 output uses these post-MVP features (LLVM's default "generic" CPU,
# and simd128 from .cargo/config.toml);
# `strip` drops the target_features section wasm-opt would read them from, so name them.
# Envoy's V8 runs all of them. An unnamed one fails validation here, not in Envoy.
features=(--enable-bulk-memory --enable-nontrapping-float-to-int --enable-sign-ext
  --enable-mutable-globals --enable-reference-types --enable-multivalue --enable-simd)
out="$TARGET/wasm32-wasip1/wasm-opt"
mkdir -p "$out"
for c in "${crates[@]}"; do
  name="${c//-/_}"
  wasm-opt "${features[@]}" -O3 --merge-similar-functions --converge "$TARGET/wasm32-wasip1/wasm/$name.wasm" -o "$out/$name.wasm.tmp"
  mv "$out/$name.wasm.tmp" "$out/$name.wasm"
  printf '[build-wasm] %s: %s bytes (cargo: %s)\n' "$out/$name.wasm" \
    "$(stat -c %s "$out/$name.wasm")" "$(stat -c %s "$TARGET/wasm32-wasip1/wasm/$name.wasm")" >&2
done
