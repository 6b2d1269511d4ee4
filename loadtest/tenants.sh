#!/usr/bin/env bash
# Tenant affinity's cost (BENCHMARKS.md): starts a Python-only gateway with an HS256 JWT
# secret, runs loadtest/tenants.py (new tenants' first calls, 100 tenants' containers),
# then again with `pool.tenant_affinity = false` for the comparison.
#   loadtest/tenants.sh [TENANTS]
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
  kill "$GW"; wait "$GW" 2>/dev/null || true
done
