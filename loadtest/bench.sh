#!/usr/bin/env bash
# One-command benchmark: builds and starts the gateway (release), waits for warm pools,
# warms each language's compile cache, then runs k6 per language at concurrency 1 and 16
# and prints p50 / p99 / throughput plus the gateway's RSS.
#
#   loadtest/bench.sh                  # all languages, 15 s per run
#   DURATION=30s LANGS="python go" loadtest/bench.sh
#   RUNTIME=runsc EXTRAS=0 loadtest/bench.sh   # every language under gVisor; only /v1/execute
set -euo pipefail
cd "$(dirname "$0")/.."
DURATION=${DURATION:-15s}
LANGS=${LANGS:-"python javascript go csharp"}
PORT=${PORT:-18080}
OUT=${OUT:-target/bench}
mkdir -p "$OUT"

# Enough warm containers to serve 16 concurrent callers without cold starts.
INSTANCE=bench MIN_IDLE=4
. loadtest/gateway.sh
start_gateway
rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$GW/status)

# The edge alone: auth, rate limiting and routing, no container (GET /v1/languages).
# First, while nothing else runs: later runs can leave queued work behind.
if command -v wrk >/dev/null 2>&1 || apt-get install -y -qq wrk >/dev/null 2>&1; then
  echo
  echo "edge: GET /v1/languages with a valid key, wrk 2 threads, 16 connections, ${DURATION}"
  wrk -t2 -c16 -d"$DURATION" --latency -H "x-api-key: $API_KEY" "http://127.0.0.1:$PORT/v1/languages" \
    | grep -E "Requests/sec|50%|90%|99%|Non-2xx" || true
fi


rm -f "$OUT/queue-wait.txt"
echo "| language | VUs | p50 ms | p90 ms | p99 ms | req/s | checks |"
echo "|---|---|---|---|---|---|---|"
for l in $LANGS; do
  # Warm-up: enough sequential calls that every container compiled (Go, C#) and started
  # its runner; not measured.
  CB_LANGUAGE=$l VUS=1 DURATION=5s BASE_URL=http://127.0.0.1:$PORT k6 run -q --no-summary loadtest/execute.js >/dev/null 2>&1 || true
  for vus in 1 16; do
    f="$OUT/$l-$vus.json"
    curl -fs "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics-before" || true
    CB_LANGUAGE=$l VUS=$vus DURATION=$DURATION BASE_URL=http://127.0.0.1:$PORT \
      k6 run -q --summary-export "$f" loadtest/execute.js >/dev/null 2>&1 || true
    curl -fs "http://127.0.0.1:$PORT/metrics" >"$OUT/metrics-after" || true
    [ "$vus" = 1 ] || python3 loadtest/queuewait.py "$OUT/metrics-before" "$OUT/metrics-after" "$l" >>"$OUT/queue-wait.txt"
    python3 - "$f" "$l" "$vus" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d = m["http_req_duration"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {d['med']:.1f} | {d['p(90)']:.1f} | {d['p(99)']:.1f} | {m['http_reqs']['rate']:.0f} | {m['checks']['value']*100:.1f}% |")
PY
  done
done
echo; cat "$OUT/queue-wait.txt" 2>/dev/null || true
if [ "${EXTRAS:-1}" = 0 ]; then
  echo "gateway RSS with all pools warm: $((rss_kb / 1024)) MB"
  exit 0
fi
# Sessions over the JSON-RPC WebSocket (Python).
case " $LANGS " in *" python "*)
  f="$OUT/sessions.json"
  DURATION_MS=${SESSION_MS:-20000} BASE_URL=http://127.0.0.1:$PORT \
    k6 run -q --summary-export "$f" loadtest/sessions.js >/dev/null 2>&1 || true
  echo
  echo "| session metric (python) | p50 ms | p90 ms | p99 ms | samples |"
  echo "|---|---|---|---|---|"
  python3 - "$f" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
for k in ["session_create_ms", "file_command_ms", "write_read_round_trip_ms", "execute_shell_true_ms", "loopai_flow_ms"]:
    d = m.get(k)
    if d:
        print(f"| {k} | {d['med']:.1f} | {d['p(90)']:.1f} | {d['p(99)']:.1f} | {d['count']} |")
print(f"rpc errors: {m.get('rpc_errors', {}).get('count', 0)}")
PY
;; esac

# Batches of a trivial Python program (1,000 and 10,000 items), with the gateway's RSS
# sampled during the large one.
case " $LANGS " in *" python "*)
  echo
  echo "| batch (python) | items | seconds | items/s | gateway RSS max MB |"
  echo "|---|---|---|---|---|"
  for n in ${BATCH_SIZES:-1000 10000}; do
    f="$OUT/batch-$n.json"
    peak=0
    ITEMS=$n BASE_URL=http://127.0.0.1:$PORT k6 run -q --summary-export "$f" loadtest/batch.js >/dev/null 2>&1 &
    K6=$!
    while kill -0 $K6 2>/dev/null; do
      r=$(awk '/VmRSS/ {print $2}' /proc/$GW/status); [ "$r" -gt "$peak" ] && peak=$r
      sleep 0.2
    done
    python3 - "$f" "$n" "$peak" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d = m["http_req_duration"]["max"] / 1000
ok = m["checks"]["passes"] == 2
print(f"| python | {sys.argv[2]} | {d:.1f} | {int(sys.argv[2]) / d:.0f} | {int(sys.argv[3]) // 1024} |" + ("" if ok else " (checks failed)"))
PY
  done
;; esac

# Async executions: submit → completed, 8 clients polling.
case " $LANGS " in *" python "*)
  f="$OUT/async.json"
  VUS=8 DURATION=$DURATION BASE_URL=http://127.0.0.1:$PORT k6 run -q --summary-export "$f" loadtest/async.js >/dev/null 2>&1 || true
  echo
  echo "| async (python, 8 VUs) | p50 ms | p90 ms | p99 ms | samples | checks |"
  echo "|---|---|---|---|---|---|"
  python3 - "$f" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
for k in ["async_submit_ms", "async_complete_ms"]:
    d = m[k]
    print(f"| {k} | {d['med']:.1f} | {d['p(90)']:.1f} | {d['p(99)']:.1f} | {d['count']} | {m['checks']['value']*100:.1f}% |")
PY
;; esac

# The Loopai client's flow per language (key in the URL, mode Create, shell, read).
echo
echo "| Loopai flow (reused session) | flow p50 ms | flow p99 ms | shell step p50 ms | \`true\` p50 ms | flows | failures |"
echo "|---|---|---|---|---|---|---|"
for l in $LANGS; do
  f="$OUT/loopai-$l.json"
  CB_LANGUAGE=$l DURATION_MS=${LOOPAI_MS:-15000} BASE_URL=http://127.0.0.1:$PORT \
    k6 run -q --summary-export "$f" loadtest/loopai.js >/dev/null 2>&1 || true
  python3 - "$f" "$l" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
f, s, t = m["loopai_flow_ms"], m["shell_run_ms"], m["shell_true_ms"]
print(f"| {sys.argv[2]} | {f['med']:.1f} | {f['p(99)']:.1f} | {s['med']:.1f} | {t['med']:.1f} | {f['count']} | {m.get('flow_failures', {}).get('count', 0)} |")
PY
done

echo
echo "gateway RSS with all pools warm: $((rss_kb / 1024)) MB (after the runs: $(( $(awk '/VmRSS/ {print $2}' /proc/$GW/status) / 1024 )) MB)"
