#!/usr/bin/env bash
# Tollgate's main job on its embedded default. Installs what is missing, builds, and runs.
# The stack (Envoy + filter + control plane) fills in issue by issue; today this builds the
# workspace and prices a sample call with the shipped price table.
set -euo pipefail
cd "$(dirname "$0")/.."
./scripts/setup.sh
cargo run --quiet --locked -p tollgate-model --example price_a_call -- "$@"
