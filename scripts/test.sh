#!/usr/bin/env bash
# The whole test suite, the same locally and in CI (.ci/run calls this).
#   scripts/test.sh            every check below, in order
#   scripts/test.sh CHECK...   only those checks
# Checks: fmt clippy clippy-wasm wasm test test-wasm ui doc prices helm up
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"


./scripts/setup.sh

export CARGO_TERM_COLOR="${CARGO_TERM_COLOR:-never}"
export PATH="$ROOT/.venv/bin:$PATH"

check_fmt() { cargo fmt --all --check; }
check_clippy() { cargo clippy --workspace --all-targets --locked -- -D warnings; }
check_clippy_wasm() {
  # The crates that end up in the filter's .wasm, as the filter builds them.
  cargo clippy -p tollgate-model --no-default-features --target wasm32-wasip1 --locked -- -D warnings
  cargo clippy -p tollgate-filter-core -p tollgate-filter --lib --target wasm32-wasip1 --locked -- -D warnings
  # The in-Envoy timing build (scripts/bench-in-envoy-vm.sh).
  cargo clippy -p tollgate-filter --lib --features vm-bench --target wasm32-wasip1 --locked -- -D warnings
  # Benches are native-only (criterion); everything else also builds for wasm.
  cargo clippy -p tollgate-model --lib --tests --examples --target wasm32-wasip1 --locked -- -D warnings
  # The dashboard calculator's bindings, as browsers load them.
  cargo clippy -p tollgate-model-wasm --all-targets --target wasm32-unknown-unknown --locked -- -D warnings
  # The exchange timing that scripts/bench-exchange-v8.sh runs in node's V8.
  cargo clippy -p tollgate-filter-core --examples --no-default-features --features testing \
    --target wasm32-wasip1 --locked -- -D warnings
}
# The proxy-wasm filters the Envoy tests load, built (and wasm-opt'ed) as users build them.
check_wasm() { ./scripts/build-wasm.sh tollgate-filter tollgate-noop-filter; }
# The Envoy tests load the .wasm files, so they are (re)built first.
check_test() { check_wasm && cargo test --workspace --locked; }
check_test_wasm() {
  CARGO_TARGET_WASM32_WASIP1_RUNNER="node --no-warnings $ROOT/scripts/wasi-run.mjs" \
    cargo test -p tollgate-model --target wasm32-wasip1 --locked
}
# The dashboard: its checked-in generated files match their sources, and the calculator's
# wasm-bindgen bindings give the shared cost cases in Node and in headless Chromium
# (chromedriver). Its pages are tested in headless Chromium against the whole gateway by
# tests/tests/dashboard.rs, part of `test`.
check_ui() {
  ./scripts/ui-assets.sh --check &&
    CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
      cargo test -p tollgate-model-wasm --target wasm32-unknown-unknown --locked &&
    WASM_BINDGEN_USE_BROWSER=1 CHROMEDRIVER="$(command -v chromedriver)" \
      CARGO_TARGET_WASM32_UNKNOWN_UNKNOWN_RUNNER=wasm-bindgen-test-runner \
      cargo test -p tollgate-model-wasm --target wasm32-unknown-unknown --locked
}
check_doc() { RUSTDOCFLAGS="-D warnings" cargo doc --workspace --no-deps --locked; }
check_prices() {
  python3 model/prices/check_prices.py && python3 model/prices/check_prices.py model/prices/imported.json
}
# The Helm chart, images and Istio install (helm/tests): lint, golden renders, Kubernetes and CRD
# schemas, refused values, the filter's own config check, envoy --mode validate, the wasm OCI
# layout, the control plane on a read-only root. Needs the .wasm and two native binaries.
check_helm() {
  check_wasm &&
    cargo build --locked -p tollgate-filter-core --bin tollgate-inspect -p tollgate-control-plane --bin tollgate &&
    .venv/bin/python -m pytest -q -p no:cacheprovider helm/tests
}
# The README's main command, end to end against the mock provider, on ports tests do not use.
check_up() {
  TOLLGATE_GATEWAY_PORT=19000 TOLLGATE_ENVOY_ADMIN_PORT=19901 TOLLGATE_CP_PORT=19080 TOLLGATE_MOCK_PORT=19081 \
    ./scripts/up.sh --smoke
}

all=(fmt clippy clippy-wasm wasm test test-wasm ui doc prices helm up)
checks=("$@")
((${#checks[@]})) || checks=("${all[@]}")
log="$(mktemp)"
trap 'rm -f "$log"' EXIT
for c in "${checks[@]}"; do
  printf '\n== %s ==\n' "$c"
  "check_${c//-/_}" 2>&1 | tee -a "$log"
done
# One closing line for the whole run: the sum of every `cargo test` and pytest summary above.
awk '/^test result:/ || /^=* ?[0-9]+ (passed|failed).* in [0-9.]+s/ { for (i = 1; i <= NF; i++) { if ($(i+1) ~ /^passed/) p += $i; if ($(i+1) ~ /^failed/) f += $i } }
     END { printf "\nall checks passed: '"${checks[*]}"'\ntests: %d passed, %d failed\n", p, f }' "$log"
