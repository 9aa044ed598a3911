#!/usr/bin/env bash
# `make compose-context`: the images' build context in target/compose-context (a directory of
# its own, so a build never sends the repository's target/ along): the static token-service,
# the filter module, the Envoy configurations rendered from envoy.yaml by
# tools/render_envoy.py, the mock provider's sources and the Containerfiles.
set -euo pipefail
cd "$(dirname "$0")/../.."

PYTHON=${PYTHON:-.venv/bin/python}
OUT=${PTK_COMPOSE_CONTEXT:-target/compose-context}
SERVICE=target/x86_64-unknown-linux-musl/release/token-service
WASM=target/wasm32-wasip1/release/ptk_filter.wasm

rm -rf "$OUT"
mkdir -p "$OUT/mock_upstream"
cp deploy/compose/Containerfile.* deploy/compose/requirements-mock.txt "$OUT/"
install -m 0755 "$SERVICE" "$OUT/token-service"
install -m 0644 "$WASM" "$OUT/ptk_filter.wasm"
install -m 0644 tests/mock_upstream/*.py "$OUT/mock_upstream/"

# Inside the compose network: the proxy listens on every interface of its container (only the
# published port reaches it from the host), the token-service is reached by its service name
# in plain HTTP (the network is private to the stack; across hosts use TLS, see the README),
# and the CA bundle is the one inside the Envoy image.
render=(--listen-address 0.0.0.0 --proxy-port 10000 --admin-port 9901
  --token-service token-service:10080 --token-service-admin token-service:10081
  --token-service-plaintext --wasm /etc/envoy/ptk_filter.wasm
  --provider-ca-path /etc/ssl/certs/ca-certificates.crt)
env -u OPENAI_UPSTREAM -u ANTHROPIC_UPSTREAM -u GEMINI_UPSTREAM \
  "$PYTHON" tools/render_envoy.py --out "$OUT/envoy-providers.yaml" "${render[@]}"
mock=http://mock-upstream:9100
OPENAI_UPSTREAM=$mock ANTHROPIC_UPSTREAM=$mock GEMINI_UPSTREAM=$mock \
  "$PYTHON" tools/render_envoy.py --out "$OUT/envoy-mock.yaml" "${render[@]}"
chmod 0644 "$OUT"/*.yaml
echo "build context ready in $OUT"
