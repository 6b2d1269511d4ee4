#!/usr/bin/env bash
# Starts the Compose deployment from a repository checkout: builds what is missing (agent
# bundle, runtime images, gateway image), fills in the host-specific variables of
# compose.yaml, and prints how to create the first API key.
#
#   deploy/up.sh              # one gateway (queue in SQLite)
#   deploy/up.sh --replicas   # two gateways sharing a Redis (queue, limits, sessions)
set -euo pipefail
replicas=false
[ "${1:-}" = "--replicas" ] && replicas=true
here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
cd "$repo"
[ -x target/agent-bundle/codebeaker-agent ] || make agent
make images
docker image inspect codebeaker-gateway:latest >/dev/null 2>&1 || deploy/build-gateway-image.sh
export CODEBEAKER_BUNDLE="$repo/target/agent-bundle"
export DOCKER_GID=${DOCKER_GID:-$(stat -c %g /var/run/docker.sock)}
# The shared compile cache: written by the gateway (uid 10001), read by the sandboxes.
export CODEBEAKER_COMPILE_CACHE=${CODEBEAKER_COMPILE_CACHE:-/var/lib/codebeaker-compile-cache}
mkdir -p "$CODEBEAKER_COMPILE_CACHE" && chown 10001 "$CODEBEAKER_COMPILE_CACHE"
compose=(docker-compose)
command -v docker-compose >/dev/null 2>&1 || compose=(docker compose)
if $replicas; then
  docker/build-images.sh redis
  export CODEBEAKER_REDIS_URL=redis://redis:6379
  compose+=(--profile replicas)
fi
"${compose[@]}" -f "$here/compose.yaml" -p codebeaker up -d
cat <<MSG
CodeBeaker is starting on port ${CODEBEAKER_PORT:-8080} (GET /readyz says when the pools are warm).
Create an API key (printed once; its hash goes to the keys file in the data volume):
  ${compose[*]} -f $here/compose.yaml -p codebeaker exec gateway codebeaker keys create --name admin --tenant default --scopes execute,sessions,admin
MSG
