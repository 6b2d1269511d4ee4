#!/usr/bin/env bash
# Tenant affinity's cost (BENCHMARKS.md): starts a Python-only gateway with an HS256 JWT
# secret, runs loadtest/tenants.py (new tenants' first calls, 100 tenants' containers),
# then again with `pool.tenant_affinity = false` for the comparison.
#   loadtest/tenants.sh [TENANTS]          MAX_SIZE=120 loadtest/tenants.sh: room for every tenant
set -euo pipefail
cd "$(dirname "$0")/.."
TENANTS=${1:-100}
PORT=${PORT:-18090} INSTANCE=bench-tenants LANGS=python MIN_IDLE=${MIN_IDLE:-2}
OUT=$(mktemp -d)
export CODEBEAKER_AUTH__JWT__HS256_SECRET=bench-only-secret-0123456789abcdef
export CODEBEAKER_AUTH__JWT__ISSUER=codebeaker-bench CODEBEAKER_AUTH__JWT__AUDIENCE=codebeaker-api
# shellcheck source=loadtest/gateway.sh
. loadtest/gateway.sh
for affinity in true false; do
  echo "== pool.tenant_affinity = $affinity"
  export CODEBEAKER_POOL__TENANT_AFFINITY=$affinity
  start_gateway
  python3 loadtest/tenants.py "http://127.0.0.1:$PORT" "$CODEBEAKER_AUTH__JWT__HS256_SECRET" "$TENANTS"
  # What the pool's containers hold in memory now (docker stats, summed).
  docker stats --no-stream --format '{{.MemUsage}}' $(docker ps -q --filter "label=codebeaker.instance=$INSTANCE") \
    | awk '{v=$1; u=v; gsub(/[0-9.]/,"",u); sub(/[A-Za-z]+$/,"",v); m=(u=="GiB")?v*1024:(u=="KiB")?v/1024:v; s+=m; n++}
           END {printf "containers running: %d, memory %.0f MiB (%.1f MiB each)\n", n, s, n ? s/n : 0}'
  kill "$GW"; wait "$GW" 2>/dev/null || true
done
