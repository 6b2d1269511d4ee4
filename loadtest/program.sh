#!/usr/bin/env bash
# Resident program instances against fresh processes, in one run (issue 21):
#  - a batch of $ITEMS trivial items per language in "program" mode, and $CALL_ITEMS in
#    "call" mode (items/s, measured by the client from request to full answer);
#  - /v1/execute in "program" mode at concurrency 1 and 16 (k6), beside "call" mode.
#
#   loadtest/program.sh
#   ITEMS=20000 LANGS="python javascript go" loadtest/program.sh
set -euo pipefail
cd "$(dirname "$0")/.."
ITEMS=${ITEMS:-20000}
CALL_ITEMS=${CALL_ITEMS:-2000}
LANGS=${LANGS:-"python javascript go"}
DURATION=${DURATION:-15s}
PORT=${PORT:-18081}
OUT=${OUT:-target/bench-program}
mkdir -p "$OUT"
# A 20,000-item batch is above the default `limits.max_batch_items`.
export CODEBEAKER_LIMITS__MAX_BATCH_ITEMS=$ITEMS
INSTANCE=bench-program MIN_IDLE=${MIN_IDLE:-2}
. loadtest/gateway.sh
start_gateway

batch() { # language isolation items concurrency
  python3 - "$@" <<'PY'
import json, sys, time, urllib.request, os
lang, iso, n, conc = sys.argv[1], sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
code = {
    "python": "result = input_data['x'] + 1",
    "javascript": "const result = input_data.x + 1;",
    "go": "result := input_data[\"x\"].(float64) + 1",
    "csharp": "var result = input_data.GetProperty(\"x\").GetInt32() + 1;",
}[lang]
body = json.dumps({"language": lang, "code": code, "isolation": iso, "maxConcurrency": conc,
                   "items": [{"id": str(i), "input": {"x": i}} for i in range(n)]}).encode()
req = urllib.request.Request(f"http://127.0.0.1:{os.environ['PORT']}/v1/execute/batch", body,
                             {"content-type": "application/json", "x-api-key": os.environ["API_KEY"]})
t = time.time()
r = json.load(urllib.request.urlopen(req, timeout=3600))
dt = time.time() - t
ok = sum(1 for x in r["results"] if x["success"])
print(f"| {lang} | {iso} | {n} | {conc} | {dt:.2f} | {n/dt:.0f} | {ok}/{n} |")
PY
}
export PORT
echo
echo "| language | isolation | items | workers | seconds | items/s | succeeded |"
echo "|---|---|---|---|---|---|---|"
for l in $LANGS; do
  batch "$l" program 200 2 >/dev/null   # warm: instances started, Go compiled
  batch "$l" program "$ITEMS" 2
  batch "$l" call "$CALL_ITEMS" 2
done

echo
echo "| language | isolation | VUs | p50 ms | p90 ms | p99 ms | req/s |"
echo "|---|---|---|---|---|---|---|"
for l in $LANGS; do
  for iso in program call; do
    CB_LANGUAGE=$l ISOLATION=$iso VUS=1 DURATION=3s BASE_URL=http://127.0.0.1:$PORT k6 run -q --no-summary loadtest/execute.js >/dev/null 2>&1 || true
    for vus in 1 16; do
      CB_LANGUAGE=$l ISOLATION=$iso VUS=$vus DURATION=$DURATION BASE_URL=http://127.0.0.1:$PORT \
        k6 run -q --summary-export "$OUT/$l-$iso-$vus.json" loadtest/execute.js >/dev/null 2>&1 || true
      python3 - "$OUT/$l-$iso-$vus.json" "$l" "$iso" "$vus" <<'PY'
import json, sys
m = json.load(open(sys.argv[1]))["metrics"]
d = m["http_req_duration"]
print(f"| {sys.argv[2]} | {sys.argv[3]} | {sys.argv[4]} | {d['med']:.2f} | {d['p(90)']:.2f} | {d['p(99)']:.2f} | {m['http_reqs']['rate']:.0f} |")
PY
    done
  done
done
