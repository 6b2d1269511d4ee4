#!/usr/bin/env bash
# The soak: k6 runs loadtest/soak.js (trivial Python and Go calls at a fixed rate, sessions
# with file commands, a hostile call every 20 s) against a release gateway for DURATION, and
# this script reports what BENCHMARKS.md records: requests by kind and status, trivial-call
# p50/p99 per minute, the gateway's RSS and open descriptors at start, middle and end, and
# the containers left by label against min_idle. Not part of `make test`.
#
#   loadtest/soak.sh                         # 10 minutes
#   DURATION=3m PY_RATE=100 GO_RATE=60 loadtest/soak.sh
#   LONG=1 loadtest/soak.sh                  # the memory soak: 30 minutes, RSS per minute, heap at start and end
#
# Every minute it samples the gateway's RSS; at the start and the end, the heap glibc holds
# and has in use (gdb attaches and calls malloc_stats(), which pauses the gateway for a
# moment); with HEAP=1 also every minute (then judge latency on a run without it).
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -n "${LONG:-}" ]; then DURATION=${DURATION:-30m}; fi
DURATION=${DURATION:-10m}
HEAP=${HEAP:-}
PORT=${PORT:-18090}
OUT=${OUT:-target/soak}
MIN_IDLE=${MIN_IDLE:-4}
mkdir -p "$OUT"
rm -f "$OUT/k6.json"
INSTANCE=soak LANGS="python go"
. loadtest/gateway.sh
start_gateway
# The heap as glibc sees it: malloc_stats() writes its totals to the gateway's stderr.
heap() {
  [ -n "$HEAP" ] || [ "${1:-}" = always ] || return 0
  command -v gdb >/dev/null 2>&1 || return 0
  gdb -p "$GW" -batch -ex 'call (void) malloc_stats()' >/dev/null 2>&1 || true
}
sample() { echo "$1 rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$GW/status) fds=$(ls /proc/$GW/fd | wc -l)"; }
# One unmeasured Go call fills the compile cache.
curl -fs -o /dev/null -H "x-api-key: $API_KEY" -H 'content-type: application/json' \
  -d '{"language":"go","code":"result := 1","input":{}}' "http://127.0.0.1:$PORT/v1/execute" || true
heap always
sample start | tee "$OUT/samples.txt"
secs=$(python3 -c "import re,sys; d='$DURATION'; m=re.fullmatch(r'(\d+)([smh])', d); print(int(m[1])*{'s':1,'m':60,'h':3600}[m[2]])")
( sleep $((secs / 2)); sample middle >>"$OUT/samples.txt" ) &
: >"$OUT/minutes.txt"
( for m in $(seq 0 $((secs / 60))); do
    heap
    echo "minute=$m rss_kb=$(awk '/VmRSS/ {print $2}' /proc/$GW/status 2>/dev/null) fds=$(ls /proc/$GW/fd 2>/dev/null | wc -l)" >>"$OUT/minutes.txt"
    sleep 60
  done ) &
MINUTES=$!
BASE_URL=http://127.0.0.1:$PORT DURATION=$DURATION SESSION_VUS=${SESSION_VUS:-2} k6 run -q --out json="$OUT/k6.json" loadtest/soak.js >"$OUT/k6.txt" 2>&1 || true
sample end >>"$OUT/samples.txt"
kill $MINUTES 2>/dev/null || true
heap always
sleep 5
containers=$(docker ps -a -q --filter label=codebeaker.instance=soak | wc -l)
running=$(docker ps -q --filter label=codebeaker.instance=soak | wc -l)
echo
cat "$OUT/samples.txt"
echo "per minute (RSS; with HEAP, glibc's 'system bytes' held and 'in use bytes' from malloc_stats, in order):"
cat "$OUT/minutes.txt"
if command -v gdb >/dev/null 2>&1; then
  python3 - "$OUT/gateway.log" <<'PY'
import re, sys
text = open(sys.argv[1], errors="replace").read()
# malloc_stats prints per arena, then "Total (incl. mmap):" with system and in-use bytes.
totals = re.findall(r"Total \(incl\. mmap\):\s*system bytes\s*=\s*(\d+)\s*in use bytes\s*=\s*(\d+)", text)
print("| sample | heap held MB | heap in use MB |")
for i, (sysb, used) in enumerate(totals):
    print(f"| {i} | {int(sysb)/1048576:.1f} | {int(used)/1048576:.1f} |")
PY
fi
echo "containers with the instance label after the run: $containers ($running running); min_idle is $MIN_IDLE per language (python, go)"
python3 - "$OUT/k6.json" <<'EOF'
import json, sys, collections
by_status = collections.Counter()
checks = collections.Counter()
minutes = collections.defaultdict(list)
start = None
for line in open(sys.argv[1]):
    p = json.loads(line)
    if p.get("type") != "Point":
        continue
    d = p["data"]; tags = d.get("tags", {})
    t = d["time"][:19]
    if p["metric"] == "http_req_duration":
        kind = tags.get("kind", "?")
        by_status[(kind, tags.get("status", "?"))] += 1
        if kind == "trivial":
            if start is None:
                start = t
            from datetime import datetime
            m = int((datetime.fromisoformat(t) - datetime.fromisoformat(start)).total_seconds() // 60)
            minutes[m].append(d["value"])
    elif p["metric"] == "checks":
        checks[(tags.get("check", "?"), d["value"])] += 1
print("\nrequests by kind and status:")
for (k, s), n in sorted(by_status.items()):
    print(f"  {k:8} {s:>4} {n}")
print("\nchecks (name, passed=1/failed=0, count):")
for (c, v), n in sorted(checks.items()):
    print(f"  {c}: {'passed' if v else 'FAILED'} {n}")
print("\ntrivial calls per minute: | minute | calls | p50 ms | p99 ms | max ms |")
for m in sorted(minutes):
    v = sorted(minutes[m]); n = len(v)
    print(f"| {m} | {n} | {v[n//2]:.1f} | {v[min(n-1, int(n*0.99))]:.1f} | {v[-1]:.1f} |")
EOF
