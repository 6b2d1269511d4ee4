#!/usr/bin/env bash
# The cost of replica mode: the edge (wrk on GET /v1/languages) and Python /v1/execute at 1
# and 16 VUs, for one gateway alone (`single`) or on a local redis-server (`redis`).
#   loadtest/shared.sh single 18095; loadtest/shared.sh redis 18096
set -euo pipefail
cd "$(dirname "$0")/.."
MODE=$1 LANGS=python INSTANCE=sb$1 MIN_IDLE=4 PORT=$2 OUT=target/sb-$1
mkdir -p $OUT
if [ "$MODE" = redis ]; then
  redis-server --port 16390 --save "" --appendonly no --daemonize yes >/dev/null
  export CODEBEAKER_SHARED__REDIS_URL=redis://127.0.0.1:16390 CODEBEAKER_SHARED__PREFIX=sb$RANDOM
fi
. loadtest/gateway.sh
start_gateway
echo "== $MODE"
wrk -t2 -c16 -d10s --latency -H "x-api-key: $API_KEY" "http://127.0.0.1:$PORT/v1/languages" | grep -E "Requests/sec|50%|99%"
for vus in 1 16; do
  CB_LANGUAGE=python VUS=$vus DURATION=10s BASE_URL=http://127.0.0.1:$PORT k6 run -q --summary-export $OUT/k6.json loadtest/execute.js >/dev/null 2>&1 || true
  python3 -c "import json;m=json.load(open('$OUT/k6.json'))['metrics'];d=m['http_req_duration'];print('python $vus VU p50 %.1f p99 %.1f rate %.0f' % (d['med'],d['p(99)'],m['http_reqs']['rate']))"
done
[ "$MODE" = redis ] && redis-cli -p 16390 shutdown nosave >/dev/null 2>&1 || true
