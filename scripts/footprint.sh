#!/usr/bin/env bash
# The cache lines each phase of the bench's call touches when it starts cold, counted by
# callgrind's cache simulation (filter/core/examples/footprint.rs says why this is the
# figure to watch). Exact and repeatable: compare two builds by their lines, not by time.
#   scripts/footprint.sh [PHASE...]    default: every phase
# Native code (a plain release build), not Envoy's V8: the data lines are the module's own
# but for the allocator (glibc's here, the module's own in Wasm); the code lines a proxy for
# the JIT's (the shipped module is built with fat LTO, so its inlining differs somewhat).
# The simulated L1i is 1 KiB so that code, like data, is fetched from the (evicted) last
# level: "code lines" is then the distinct code the phase runs, not what L1i happened to keep.
set -euo pipefail
cd "$(dirname "$0")/.."
command -v valgrind >/dev/null || { echo "footprint: needs valgrind (apt-get install -y valgrind)" >&2; exit 1; }
cargo build --quiet --locked --release -p tollgate-filter-core --features testing --example footprint
bin="${CARGO_TARGET_DIR:-target}/release/examples/footprint"
phases=("$@")
((${#phases[@]})) || phases=(request-headers request-body response-headers response-body finish stream-event)
out="$(mktemp -d)"
trap 'rm -rf "$out"' EXIT
printf '%-18s %12s %11s %11s %11s\n' phase instructions "code lines" "data read" "data write"
for phase in "${phases[@]}"; do
  if ! valgrind --tool=callgrind --cache-sim=yes --I1=1024,2,64 --D1=32768,8,64 \
    --LL=4194304,16,64 --collect-atstart=no --toggle-collect='footprint::measured*' \
    --callgrind-out-file="$out/$phase" "$bin" "$phase" >/dev/null 2>"$out/$phase.err"; then
    cat "$out/$phase.err" >&2
    exit 1
  fi
  # The summary line: Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw. Nothing counted means the
  # measured function was not found (renamed, inlined): no figures rather than zeros.
  ir=""
  read -r ir _ _ _ _ _ ilmr dlmr dlmw < <(grep '^summary:' "$out/$phase" | cut -d' ' -f2-) || true
  if [[ -z "${ir:-}" || "$ir" == 0 ]]; then
    echo "footprint: nothing counted for $phase (is footprint::measured still called?)" >&2
    exit 1
  fi
  printf '%-18s %12s %11s %11s %11s\n' "$phase" "$ir" "$ilmr" "$dlmr" "$dlmw"
done
