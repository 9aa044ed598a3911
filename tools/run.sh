#!/usr/bin/env bash
# `make run`: the token-service on an embedded SQLite store under ./data, and Envoy with the ptk
# filter in front of it, in the foreground. Ctrl-C stops both.
set -euo pipefail
cd "$(dirname "$0")/.."

ENVOY=${ENVOY:-.venv/bin/envoy}
PYTHON=${PYTHON:-.venv/bin/python}
SERVICE=${SERVICE:-target/release/token-service}
PROXY_PORT=${PTK_PROXY_PORT:-10000}
TLS_PORT=${PTK_PROXY_TLS_PORT:-10443}
ADMIN_PORT=${PTK_ENVOY_ADMIN_PORT:-9901}
SERVICE_ADDR=${PTK_LISTEN:-127.0.0.1:10080}
SERVICE_ADMIN_ADDR=${PTK_ADMIN_LISTEN:-127.0.0.1:10081}
DATA=${PTK_DATA:-data}

# Every port we need must be free: a foreign server answering on one of them would pass our
# readiness probes while our own process died on start.
"$PYTHON" tools/port_check.py \
  "Envoy proxy=PTK_PROXY_PORT=127.0.0.1:$PROXY_PORT" \
  "Envoy TLS proxy=PTK_PROXY_TLS_PORT=127.0.0.1:$TLS_PORT" \
  "Envoy admin=PTK_ENVOY_ADMIN_PORT=127.0.0.1:$ADMIN_PORT" \
  "token-service check API=PTK_LISTEN=$SERVICE_ADDR" \
  "token-service admin=PTK_ADMIN_LISTEN=$SERVICE_ADMIN_ADDR"

mkdir -p "$DATA"
chmod 700 "$DATA"
# The secret that lets Envoy (and only Envoy) ask the token-service for real keys. Generated
# once and kept with the data; override with PTK_CHECK_SECRET.
if [ -z "${PTK_CHECK_SECRET:-}" ]; then
  if [ ! -s "$DATA/check-secret" ]; then
    (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(32))' > "$DATA/check-secret")
  fi
  PTK_CHECK_SECRET=$(cat "$DATA/check-secret")
fi
export PTK_CHECK_SECRET PTK_LISTEN=$SERVICE_ADDR PTK_DB=${PTK_DB:-$DATA/ptk.sqlite3}
# The dashboard / admin API password. Generated once into the data folder and printed only on
# the run that generated it; override with ADMIN_SECRET (16+ characters).
admin_secret_new=""
if [ -z "${ADMIN_SECRET:-}" ]; then
  if [ ! -s "$DATA/admin-secret" ]; then
    (umask 077 && "$PYTHON" -c 'import secrets; print(secrets.token_urlsafe(24))' > "$DATA/admin-secret")
    admin_secret_new=1
  fi
  ADMIN_SECRET=$(cat "$DATA/admin-secret")
  # The service reads it from the file, so its sign-in page can say where the secret is.
  export ADMIN_SECRET_FILE="$DATA/admin-secret"
else
  export ADMIN_SECRET
fi
export PTK_ADMIN_LISTEN=$SERVICE_ADMIN_ADDR

tools/dev_cert.sh "$DATA/tls"
# Optional: the CA bundle provider certificates are verified against (default: the system
# trust store), how long a provider call may stay silent (default: envoy.yaml's 900 s) and
# how many proxies in front of Envoy are trusted for the client's address (default: none).
render_opts=()
[ -n "${PTK_PROVIDER_CA_FILE:-}" ] && render_opts+=(--provider-ca-file "$PTK_PROVIDER_CA_FILE")
[ -n "${PTK_PROVIDER_IDLE_TIMEOUT:-}" ] && render_opts+=(--provider-idle-timeout "$PTK_PROVIDER_IDLE_TIMEOUT")
# Behind load balancers or proxies you trust (they must write x-forwarded-for): how many.
[ -n "${PTK_XFF_NUM_TRUSTED_HOPS:-}" ] && render_opts+=(--xff-num-trusted-hops "$PTK_XFF_NUM_TRUSTED_HOPS")
# OpenAI's geo-403 egress fallback: the gateway (URL) geo-blocked OpenAI calls are replayed through.
[ -n "${PTK_GEO_FALLBACK_EGRESS:-}" ] && render_opts+=(--geo-fallback-egress "$PTK_GEO_FALLBACK_EGRESS")
[ -n "${PTK_PLUGIN_CONFIG:-}" ] && render_opts+=(--plugin-config "$PTK_PLUGIN_CONFIG")
"$PYTHON" tools/render_envoy.py --out "$DATA/envoy.yaml" \
  --proxy-port "$PROXY_PORT" --admin-port "$ADMIN_PORT" --token-service "$SERVICE_ADDR" \
  --token-service-admin "$SERVICE_ADMIN_ADDR" \
  --tls-port "$TLS_PORT" --tls-cert "$DATA/tls/server.crt" --tls-key "$DATA/tls/server.key" \
  "${render_opts[@]}"

pids=()
cleanup() {
  trap - INT TERM EXIT
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
  echo "stopped."
}
trap cleanup INT TERM EXIT

# The service's log also goes to a file: its start-up line says which providers have keys
# (from the environment or PTK_KEYS_FILE), which the banner below repeats.
"$SERVICE" serve 2> >(tee "$DATA/token-service.log" >&2) &
pids+=($!)
# A name only this run's Envoy has (its node id), to tell it from anything else on the admin port.
run_id="ptk-run-$$-$RANDOM$RANDOM"
# The filter's own info lines (its version at start, streams closed on revocation) are worth
# seeing; the rest of Envoy stays at warn unless PTK_ENVOY_LOG_LEVEL says otherwise.
log_opts=(--log-level "${PTK_ENVOY_LOG_LEVEL:-warn}")
[ -z "${PTK_ENVOY_LOG_LEVEL:-}" ] && log_opts+=(--component-log-level wasm:info)
"$ENVOY" -c "$DATA/envoy.yaml" --disable-hot-restart --concurrency "${PTK_ENVOY_CONCURRENCY:-2}" \
  "${log_opts[@]}" --service-node "$run_id" &
pids+=($!)

wait_for() { # url, what
  for _ in $(seq 1 100); do
    curl -fsS --max-time 2 -o /dev/null "$1" 2>/dev/null && return 0
    for pid in "${pids[@]}"; do kill -0 "$pid" 2>/dev/null || { echo "$2 exited; see its log above" >&2; exit 1; }; done
    sleep 0.1
  done
  echo "$2 did not come up at $1" >&2
  exit 1
}
wait_for "http://$SERVICE_ADDR/healthz" "token-service"
wait_for "http://$SERVICE_ADMIN_ADDR/admin" "token-service admin"
wait_for "http://127.0.0.1:$ADMIN_PORT/ready" "envoy"
server_info=$(curl -fsS --max-time 5 "http://127.0.0.1:$ADMIN_PORT/server_info" 2>/dev/null || true)
if [[ "$server_info" != *"\"$run_id\""* ]]; then
  echo "error: the Envoy answering on 127.0.0.1:$ADMIN_PORT is not the one this run started;" \
       "stop whatever holds that port or set PTK_ENVOY_ADMIN_PORT" >&2
  exit 1
fi

# Which providers have real keys, as the token-service itself read them (environment or
# PTK_KEYS_FILE): its start-up line, `providers with keys: openai, gemini` (or `none`).
keys_line=""
for _ in $(seq 1 50); do
  keys_line=$(sed -e 's/\x1b\[[0-9;]*m//g' "$DATA/token-service.log" 2>/dev/null |
    grep -oE 'providers with keys: (none|[a-z]+(, [a-z]+)*)' | tail -n 1 || true)
  [ -n "$keys_line" ] && break
  sleep 0.1
done
configured=${keys_line#providers with keys: }
[ -z "$configured" ] && configured="unknown (see the token-service log)"
[ "$configured" = "none" ] && configured="none (set OPENAI_API_KEY / ANTHROPIC_API_KEY / GEMINI_API_KEY, or PTK_KEYS_FILE)"
base="http://127.0.0.1:$PROXY_PORT"
# The CLI works on the same store; name it when it is not the CLI's default.
cli=$SERVICE
[ -z "${PTK_DATABASE_URL:-}" ] && [ "$PTK_DB" != "data/ptk.sqlite3" ] && cli="$SERVICE --db $PTK_DB"
if [ -n "$admin_secret_new" ]; then
  admin_note="admin secret (generated now, kept in $DATA/admin-secret, shown only this once): $ADMIN_SECRET"
else
  admin_note="admin secret: your ADMIN_SECRET, or the one in $DATA/admin-secret"
fi
cat <<MSG

ptk proxy is up on $base  (token-service $SERVICE_ADDR, Envoy admin 127.0.0.1:$ADMIN_PORT)
  and over TLS on https://127.0.0.1:$TLS_PORT (development CA: $DATA/tls/ca.crt;
  trust it with SSL_CERT_FILE=$DATA/tls/ca.crt or NODE_EXTRA_CA_CERTS=$DATA/tls/ca.crt)
Real keys configured for: $configured

Dashboard: $base/admin   ($admin_note)

Mint a proxy token in the dashboard, or in another terminal, from this folder:
  TOKEN=\$($cli tokens create --label me --providers openai,anthropic,gemini)

Point your SDK at the proxy; only the base URL and the key change:
  OpenAI     OpenAI(base_url="$base/v1", api_key=TOKEN)
  Anthropic  Anthropic(base_url="$base", api_key=TOKEN)
  Gemini     genai.Client(api_key=TOKEN, http_options={"base_url": "$base"})
  Gemini via its OpenAI endpoint: OpenAI(base_url="$base/v1beta/openai", api_key=TOKEN)

Try it:
  curl $base/v1/chat/completions -H "authorization: Bearer \$TOKEN" \\
       -H 'content-type: application/json' \\
       -d '{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'

Manage tokens: $cli tokens list | disable HASH | enable HASH | expire HASH --at RFC3339|never | delete HASH | usage HASH
Ctrl-C stops everything.
MSG

wait -n "${pids[@]}"
echo "a process exited; stopping the rest" >&2
