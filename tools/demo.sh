#!/usr/bin/env bash
# `make demo`: the whole stack (token-service on a fresh store in ./data-demo, Envoy with the
# filter, and the test suite's mock standing in for OpenAI, Anthropic and Gemini) with dummy
# keys, then a narrated tour: mint a token with the CLI, a request and a stream through the
# proxy, disable the token, the same request refused. No real key, no internet.
# Afterwards the stack stays up until Ctrl-C when stdin is a terminal (PTK_DEMO_KEEP=0 stops it
# at once; PTK_DEMO_KEEP=1 keeps it even without a terminal). Exit status 0 only when every
# step answered as narrated. Ports: the same variables as `make run` (PTK_PROXY_PORT, ...).
set -euo pipefail
cd "$(dirname "$0")/.."

PYTHON=${PYTHON:-.venv/bin/python}
SERVICE=${SERVICE:-target/release/token-service}
DATA=${PTK_DATA:-data-demo}
PROXY_PORT=${PTK_PROXY_PORT:-10000}
P="http://127.0.0.1:$PROXY_PORT"
if [ -z "${PTK_DEMO_KEEP:-}" ]; then
  if [ -t 0 ]; then PTK_DEMO_KEEP=1; else PTK_DEMO_KEEP=0; fi
fi

# A fresh store each time (the secrets and the dev CA are kept).
mkdir -p "$DATA" && chmod 700 "$DATA"
rm -f "$DATA"/ptk.sqlite3 "$DATA"/ptk.sqlite3-* "$DATA"/*.log
DB="$DATA/ptk.sqlite3"
CLI=("$SERVICE" --db "$DB")

pids=()
cleanup() {
  trap - INT TERM EXIT
  # run.sh stops its own children (token-service, Envoy) on TERM.
  for pid in "${pids[@]}"; do kill -TERM "$pid" 2>/dev/null || true; done
  wait 2>/dev/null || true
}
trap cleanup INT TERM EXIT

fail() {
  echo >&2
  echo "demo FAILED: $*" >&2
  echo "(logs: $DATA/run.log, $DATA/token-service.log, $DATA/mock.log)" >&2
  exit 1
}
step() { printf '\n\033[1m== %s\033[0m\n' "$*"; }
show() { printf '$ %s\n' "$*"; }

step "0. Start the mock providers, the token-service and Envoy (dummy keys, no internet)"
"$PYTHON" -m tests.mock_upstream --host 127.0.0.1 --port "${PTK_DEMO_MOCK_PORT:-0}" --quiet \
  > "$DATA/mock.log" 2>&1 &
pids+=($!)
mock=""
for _ in $(seq 1 100); do
  mock=$(grep -o 'listening on 127.0.0.1:[0-9]*' "$DATA/mock.log" 2>/dev/null | cut -d' ' -f3 || true)
  [ -n "$mock" ] && break
  kill -0 "${pids[0]}" 2>/dev/null || fail "the mock provider did not start"
  sleep 0.1
done
[ -n "$mock" ] || fail "the mock provider did not start"
echo "mock OpenAI/Anthropic/Gemini on http://$mock"

env -u PTK_KEYS_FILE PTK_DATA="$DATA" PTK_DB="$DB" \
  OPENAI_API_KEY=sk-demo-openai ANTHROPIC_API_KEY=sk-ant-demo GEMINI_API_KEY=AIza-demo-gemini \
  OPENAI_UPSTREAM="http://$mock" ANTHROPIC_UPSTREAM="http://$mock" GEMINI_UPSTREAM="http://$mock" \
  tools/run.sh > "$DATA/run.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 300); do
  grep -q '^ptk proxy is up' "$DATA/run.log" && break
  if ! kill -0 "${pids[1]}" 2>/dev/null; then
    cat "$DATA/run.log" >&2
    fail "the stack did not start (above: tools/run.sh's output)"
  fi
  sleep 0.1
done
grep -q '^ptk proxy is up' "$DATA/run.log" || fail "the stack did not come up in 30 s"
grep -E '^(ptk proxy is up|Real keys configured for|Dashboard)' "$DATA/run.log"
# Which versions run: the filter's start-up line (from Envoy's log) and the service's own.
grep -m 1 -o 'ptk filter [^ ]* started.*' "$DATA/run.log" || true
"$SERVICE" --version

step "1. Mint a proxy token with the CLI (the plaintext is printed once, alone on stdout)"
show "TOKEN=\$(${CLI[*]} tokens create --label demo --providers openai,anthropic,gemini)"
TOKEN=$("${CLI[@]}" tokens create --label demo --providers openai,anthropic,gemini)
case "$TOKEN" in ptk_*) ;; *) fail "tokens create printed no ptk_ token" ;; esac
echo "TOKEN=${TOKEN:0:10}…  (only its SHA-256 hash is stored)"
show "${CLI[*]} tokens list"
"${CLI[@]}" tokens list

chat='{"model":"gpt-4o-mini","messages":[{"role":"user","content":"hi"}]}'
request() { # prints the status line and the body
  curl -sS -o "$DATA/answer.txt" -w '%{http_code}' "$P/v1/chat/completions" \
    -H "authorization: Bearer $TOKEN" -H 'content-type: application/json' -d "$chat"
}

step "2. A request through the proxy: the filter swaps the token for the real (dummy) key"
show "curl $P/v1/chat/completions -H \"authorization: Bearer \$TOKEN\" -H 'content-type: application/json' -d '$chat'"
status=$(request) || fail "curl could not reach the proxy"
echo "HTTP $status"; head -c 300 "$DATA/answer.txt"; echo
[ "$status" = 200 ] || fail "step 2 expected 200, got $status"

step "3. A streamed answer (SSE), event by event"
stream='{"model":"gpt-4o-mini","stream":true,"messages":[{"role":"user","content":"hi"}]}'
show "curl -N $P/v1/chat/completions -H \"authorization: Bearer \$TOKEN\" -H 'content-type: application/json' -d '$stream'"
curl -sSN "$P/v1/chat/completions" -H "authorization: Bearer $TOKEN" \
  -H 'content-type: application/json' -d "$stream" > "$DATA/stream.txt" || fail "the stream broke"
grep '^data:' "$DATA/stream.txt" | head -n 4
echo "… $(grep -c '^data:' "$DATA/stream.txt") events in all"
grep -q '^data: \[DONE\]' "$DATA/stream.txt" || fail "step 3: the stream did not end with data: [DONE]"

step "4. The same token on Anthropic's and Gemini's own APIs"
show "curl $P/v1/messages -H \"x-api-key: \$TOKEN\" -H 'anthropic-version: 2023-06-01' …"
status=$(curl -sS -o /dev/null -w '%{http_code}' "$P/v1/messages" -H "x-api-key: $TOKEN" \
  -H 'anthropic-version: 2023-06-01' -H 'content-type: application/json' \
  -d '{"model":"claude-sonnet-4-5","max_tokens":16,"messages":[{"role":"user","content":"hi"}]}')
echo "HTTP $status"; [ "$status" = 200 ] || fail "step 4 (Anthropic) expected 200, got $status"
show "curl $P/v1beta/models/gemini-2.5-flash:generateContent -H \"x-goog-api-key: \$TOKEN\" …"
status=$(curl -sS -o /dev/null -w '%{http_code}' "$P/v1beta/models/gemini-2.5-flash:generateContent" \
  -H "x-goog-api-key: $TOKEN" -H 'content-type: application/json' \
  -d '{"contents":[{"parts":[{"text":"hi"}]}]}')
echo "HTTP $status"; [ "$status" = 200 ] || fail "step 4 (Gemini) expected 200, got $status"

step "5. Disable the token (by its hash, or any unique prefix of 8+ hex characters)"
hash=$("${CLI[@]}" tokens list --json | "$PYTHON" -c 'import json,sys; print(json.load(sys.stdin)[0]["hash"])')
show "${CLI[*]} tokens disable ${hash:0:12}"
"${CLI[@]}" tokens disable "${hash:0:12}"

step "6. The same request, after the filter's 1 s verdict cache: refused"
sleep 1.2
status=$(request) || fail "curl could not reach the proxy"
echo "HTTP $status"; cat "$DATA/answer.txt"; echo
[ "$status" = 401 ] || fail "step 6 expected 401, got $status"
grep -q 'invalid or revoked token' "$DATA/answer.txt" || fail "step 6: not 'invalid or revoked token'"

step "Demo passed"
if [ "$PTK_DEMO_KEEP" = 1 ]; then
  echo "The demo stack stays up; Ctrl-C stops it. Try next:"
else
  echo "Stopping the demo stack. Run make demo from a terminal (or with PTK_DEMO_KEEP=1) to keep"
  echo "it up, then try:"
fi
cat <<MSG
  (the CLI is "${CLI[*]}")
  ${CLI[*]} tokens enable ${hash:0:12}        # and the request works again within 1 s
  ${CLI[*]} tokens create --label gem --providers gemini --rate-limit 3/60
  the dashboard: $P/admin  (sign in with the secret in $DATA/admin-secret: cat $DATA/admin-secret)
  what the mock received: curl -s http://$mock/__mock/last
  a real provider: make run, with OPENAI_API_KEY=... (README, first screen)
MSG
if [ "$PTK_DEMO_KEEP" = 1 ]; then
  wait -n "${pids[@]}" || true
fi
