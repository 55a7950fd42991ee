#!/usr/bin/env bash
# Rebuilds the dashboard's generated files in ui/static (checked in, so a build needs no npm):
#   - vendor/: uPlot's built files and licence, from the npm package ui/package-lock.json pins
#   scripts/ui-assets.sh          regenerate them
#   scripts/ui-assets.sh --check  regenerate into a temporary folder and fail if the checked-in
#                                 files differ (scripts/test.sh ui runs this)
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

if $check; then
  for f in vendor/uPlot.iife.min.js vendor/uPlot.min.css vendor/uPlot.LICENSE; do
    if ! cmp -s "$out/$f" "ui/static/$f"; then
      echo "ui/static/$f differs from what scripts/ui-assets.sh builds: run it and commit the result" >&2
      exit 1
    fi
  done
  echo "ui/static generated files match their sources"
fi
