#!/usr/bin/env bash
# Refreshes model/prices/imported.json (the control plane's imported price table) from
# LiteLLM's model_prices_and_context_window.json (MIT), read from the litellm wheel on PyPI:
# the wheel is downloaded into a temporary directory and the JSON read from it (nothing is
# installed). Tollgate's own entries (prices.json) win; a price seen before keeps its dated
# history, a changed one gets a version effective today. Prints what changed and the coverage
# of LiteLLM's chat models for the main providers. The package, version, file and date are
# recorded in the table (table_version, and each entry's source and checked).
#
#   scripts/refresh-prices.sh            # the newest litellm on PyPI
#   scripts/refresh-prices.sh 1.110.2    # a given version
set -euo pipefail
cd "$(dirname "$0")/.."

version="${1:-}"
member="litellm/model_prices_and_context_window_backup.json"
python="${PYTHON:-python3}"
[ -x .venv/bin/python ] && python=.venv/bin/python
tmp="$(mktemp -d)"
trap 'rm -rf "$tmp"' EXIT

"$python" -m pip download --quiet --no-deps --only-binary=:all: --dest "$tmp" \
  "litellm${version:+==$version}" >&2
wheel="$(ls "$tmp"/litellm-*.whl)"
version="$(basename "$wheel" | cut -d- -f2)"
"$python" - "$wheel" "$member" "$tmp/map.json" <<'PY'
import sys, zipfile
with zipfile.ZipFile(sys.argv[1]) as z, open(sys.argv[3], "wb") as out:
    out.write(z.read(sys.argv[2]))
PY

cargo run --quiet --locked -p tollgate-control-plane --bin tollgate -- \
  price build-table "$tmp/map.json" --package "litellm==$version" --member "$member" \
  --table model/prices/imported.json
python3 model/prices/check_prices.py model/prices/imported.json | tail -n 1
