#!/usr/bin/env bash
# Tollgate's main job on its embedded default: real Envoy running the Tollgate filter, in
# front of the real LLM providers (clients bring their own API keys, as usual) or, offline
# or with --mock, a mock provider replaying recorded answers; the control plane beside it on
# its in-memory store (or Redis when REDIS_URL is set). Ctrl-C stops everything.
#
#   scripts/up.sh            real providers when reachable, else the mock
#   scripts/up.sh --mock     always the mock
#   scripts/up.sh --smoke    start, send one call through, check it was counted, stop (CI)
#
# Ports: TOLLGATE_GATEWAY_PORT (10000), TOLLGATE_ENVOY_ADMIN_PORT (9901),
# TOLLGATE_CP_PORT (8080), TOLLGATE_MOCK_PORT (18080).
set -euo pipefail
cd "$(dirname "$0")/.."
ROOT="$PWD"

mock=""; smoke=""
for arg in "$@"; do
  case "$arg" in
    --mock) mock=1 ;;
    --smoke) smoke=1; mock=1 ;;
    *) echo "usage: scripts/up.sh [--mock] [--smoke]" >&2; exit 2 ;;
  esac
done
GATEWAY_PORT="${TOLLGATE_GATEWAY_PORT:-10000}"
ADMIN_PORT="${TOLLGATE_ENVOY_ADMIN_PORT:-9901}"
CP_PORT="${TOLLGATE_CP_PORT:-8080}"
MOCK_PORT="${TOLLGATE_MOCK_PORT:-18080}"
say() { printf '[up] %s\n' "$*" >&2; }

./scripts/setup.sh
TARGET="${CARGO_TARGET_DIR:-$ROOT/target}"
say "building the filter (.wasm) and the control plane"
./scripts/build-wasm.sh tollgate-filter
cargo build --quiet --locked -p tollgate-control-plane --bin tollgate -p tollgate-e2e --bin tollgate-mock-provider --bin render-envoy-config
WASM="$TARGET/wasm32-wasip1/wasm-opt/tollgate_filter.wasm"

if [ -z "$mock" ] && ! timeout 3 bash -c 'exec 3<>/dev/tcp/api.openai.com/443' 2>/dev/null; then
  say "api.openai.com is not reachable: using the mock provider"
  mock=1
fi

STATE="$ROOT/.tollgate"
mkdir -p "$STATE"
pids=()
stop() {
  trap - EXIT INT TERM
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap stop EXIT INT TERM

wait_http() { # url, what
  for _ in $(seq 1 300); do
    curl -fsS -o /dev/null "$1" 2>/dev/null && return 0
    sleep 0.1
  done
  say "$2 did not come up; see $STATE/*.log"; exit 1
}

ADMIN_TOKEN="local-admin-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
DATAPLANE_TOKEN="local-dataplane-$(od -An -N8 -tx8 /dev/urandom | tr -d ' ')"
export TOLLGATE_ADMIN_TOKEN="$ADMIN_TOKEN"
TOLLGATE_LISTEN="127.0.0.1:$CP_PORT" TOLLGATE_DATAPLANE_TOKEN="$DATAPLANE_TOKEN" \
  "$TARGET/debug/tollgate" serve > "$STATE/control-plane.log" 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$CP_PORT/readyz" "the control plane"

render_args=(--local --wasm "$WASM" --listen-port "$GATEWAY_PORT" --admin-port "$ADMIN_PORT"
  --control-plane-port "$CP_PORT" --dataplane-token "$DATAPLANE_TOKEN")
if [ -n "$mock" ]; then
  "$TARGET/debug/tollgate-mock-provider" --listen "127.0.0.1:$MOCK_PORT" > "$STATE/mock-provider.log" 2>&1 &
  pids+=($!)
  render_args+=(--mock-port "$MOCK_PORT")
fi
"$TARGET/debug/render-envoy-config" "${render_args[@]}" > "$STATE/envoy.yaml"
"$ROOT/.venv/bin/envoy" -c "$STATE/envoy.yaml" --disable-hot-restart --concurrency 2 \
  --log-path "$STATE/envoy.log" -l info > /dev/null 2>&1 &
pids+=($!)
wait_http "http://127.0.0.1:$ADMIN_PORT/ready" "Envoy"

# A sample budget: $25 a month for team "demo".
"$TARGET/debug/tollgate" --url "http://127.0.0.1:$CP_PORT" budget create -f - > /dev/null <<'JSON'
{"id": "demo-monthly", "description": "sample budget from scripts/up.sh", "scopes": ["team:demo"],
 "limit_usd": "25", "period": "monthly", "timezone": "UTC"}
JSON

# Enforcement end to end: a budget worth less than one call admits the first (its
# reservation fits), is charged past its limit when the call settles, and refuses the next.
smoke_budget() {
  "$TARGET/debug/tollgate" --url "http://127.0.0.1:$CP_PORT" budget create -f - > /dev/null <<'JSON'
{"id": "smoke-tiny", "scopes": ["team:smoke"], "limit_usd": "0.0001", "period": "daily"}
JSON
  call() {
    curl -sS -o /dev/null -w '%{http_code}' "http://127.0.0.1:$GATEWAY_PORT/openai/v1/chat/completions" \
      -H 'content-type: application/json' -H 'x-tollgate-team: smoke' \
      -d '{"model":"gpt-4o-mini","max_tokens":16,"messages":[{"role":"user","content":"Hi"}]}'
  }
  [ "$(call)" = 200 ] || { say "smoke: the first call on a fresh budget was not admitted"; exit 1; }
  for _ in $(seq 1 50); do
    "$TARGET/debug/tollgate" --url "http://127.0.0.1:$CP_PORT" budget show smoke-tiny \
      | grep -q '^usage.remaining_nanos: 0$' && break
    sleep 0.1
  done
  [ "$(call)" = 429 ] || { say "smoke: the exhausted budget did not refuse the next call"; exit 1; }
  say "smoke: the call was settled against its budget and the next one refused with 429"
}

if [ -n "$smoke" ]; then
  curl -fsS "http://127.0.0.1:$GATEWAY_PORT/v1/chat/completions" -H 'content-type: application/json' \
    -H 'host: api.openai.com' \
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}' > /dev/null
  for _ in $(seq 1 50); do
    # Read whole before grep: `grep -q` stops reading at its match, and with pipefail the
    # writer's broken pipe would fail the test (more likely the more stats Envoy has).
    stats="$(curl -fsS "http://127.0.0.1:$ADMIN_PORT/stats/prometheus")"
    if grep -q 'tollgate_requests_total{provider="openai",outcome="charged"} 1' <<< "$stats"; then
      say "smoke: a call went through Envoy and the filter charged it"
      smoke_budget
      exit 0
    fi
    sleep 0.1
  done
  say "smoke: the call was not counted"; tail -20 "$STATE/envoy.log" >&2; exit 1
fi

# The store the control plane picked: the same variables, in the same order, as `tollgate serve`.
redis_url="${TOLLGATE_REDIS_URL:-${REDIS_URL:-}}"
if [ -n "$redis_url" ]; then
  store="Redis at $(printf '%s' "$redis_url" | sed -E 's#//[^@/]*@#//***@#')"
else
  store="in-memory store: counters are lost when it stops"
fi
upstream="the real providers (your API keys go through untouched)"
[ -n "$mock" ] && upstream="the mock provider (recorded answers; no keys needed)"
cat <<EOF

Tollgate is up: Envoy + the Tollgate filter in front of $upstream.

  gateway        http://127.0.0.1:$GATEWAY_PORT     (/openai/v1/..., /anthropic/v1/messages, /gemini/v1beta/...: docs/providers/)
  metrics        http://127.0.0.1:$ADMIN_PORT/stats/prometheus   (tollgate_* series)
  control plane  http://127.0.0.1:$CP_PORT   ($store; admin token below)
  dashboard      http://127.0.0.1:$CP_PORT/ui/   (log in with the admin token: docs/dashboard.md)
  logs, config   $STATE/

Try it (team "demo" has the sample budget demo-monthly: \$25 a month):
  curl -si http://127.0.0.1:$GATEWAY_PORT/openai/v1/chat/completions -H 'content-type: application/json' \\
    -H "authorization: Bearer \$OPENAI_API_KEY" -H 'x-tollgate-team: demo' \\
    -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"Hello"}]}'
  (x-tollgate-reserved-usd / x-tollgate-remaining-usd in the answer; 429 once the budget is spent)
  curl -s http://127.0.0.1:$ADMIN_PORT/stats/prometheus | grep ^tollgate_

  # the official SDKs: point them at the gateway
  OPENAI_BASE_URL=http://127.0.0.1:$GATEWAY_PORT/openai/v1 python3 your_app.py
  ANTHROPIC_BASE_URL=http://127.0.0.1:$GATEWAY_PORT/anthropic python3 your_app.py

Admin CLI:
  export TOLLGATE_ADMIN_TOKEN=$ADMIN_TOKEN
  $TARGET/debug/tollgate --url http://127.0.0.1:$CP_PORT budget list

  $TARGET/debug/tollgate --url http://127.0.0.1:$CP_PORT budget show demo-monthly

Every governed call is reserved against its budgets before it leaves and settled with its
exact cost when it ends (docs/enforcement.md). Ctrl-C stops everything.
EOF
wait -n "${pids[@]}" || true
say "a component exited; stopping (logs in $STATE/)"
