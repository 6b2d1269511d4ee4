#!/usr/bin/env bash
# Builds the gateway image `codebeaker-gateway:latest` offline, without a registry: the
# release binary and exactly the shared libraries it links (glibc only), a CA bundle (for
# HTTPS webhooks and OTLP), an unprivileged user, and nothing else: no shell, no package
# manager. The sandbox runtime images are separate (`make images`).
#
# Usage: deploy/build-gateway-image.sh [tag]
set -euo pipefail
cd "$(dirname "$0")/.."
TAG=${1:-codebeaker-gateway:latest}
# The uid the gateway runs as inside its image (it needs only the Docker socket's group).
GATEWAY_UID=10001

command -v docker >/dev/null || { echo "build-gateway-image: docker is required" >&2; exit 1; }
cargo build --release --bin codebeaker
bin=target/release/codebeaker
root=$(mktemp -d)
trap 'rm -rf "$root"' EXIT

install -D -m 0755 "$bin" "$root/usr/local/bin/codebeaker"
# Line tables stay in target/ for profiling; the image needs none of them.
strip --strip-debug "$root/usr/local/bin/codebeaker" 2>/dev/null || true
# The binary's shared libraries and the dynamic loader, at the paths it was linked against.
ldd "$bin" | grep -oE '/[^ ]+' | while read -r lib; do
  install -D -m 0644 "$(readlink -f "$lib")" "$root$lib"
done
chmod 0755 "$root"/lib64/ld-linux-*.so.* 2>/dev/null || true
if [ -f /etc/ssl/certs/ca-certificates.crt ]; then
  install -D -m 0644 /etc/ssl/certs/ca-certificates.crt "$root/etc/ssl/certs/ca-certificates.crt"
fi
mkdir -p "$root/etc" "$root/tmp" "$root/var/lib/codebeaker"
chmod 1777 "$root/tmp"
printf 'root:x:0:0::/:/nonexistent\ncodebeaker:x:%s:%s::/var/lib/codebeaker:/nonexistent\n' \
  "$GATEWAY_UID" "$GATEWAY_UID" >"$root/etc/passwd"
printf 'root:x:0:\ncodebeaker:x:%s:\n' "$GATEWAY_UID" >"$root/etc/group"
chown -R "$GATEWAY_UID:$GATEWAY_UID" "$root/var/lib/codebeaker"

tar -C "$root" -c . | docker import \
  -c "USER $GATEWAY_UID:$GATEWAY_UID" \
  -c 'WORKDIR /var/lib/codebeaker' \
  -c 'ENV CODEBEAKER_SERVER__BIND=0.0.0.0:8080 CODEBEAKER_SERVER__LOG_FORMAT=json CODEBEAKER_AUTH__KEYS_FILE=/var/lib/codebeaker/keys.toml CODEBEAKER_EXECUTIONS__DATABASE=/var/lib/codebeaker/executions.db SSL_CERT_FILE=/etc/ssl/certs/ca-certificates.crt' \
  -c 'EXPOSE 8080' \
  -c 'ENTRYPOINT ["/usr/local/bin/codebeaker"]' \
  -c 'CMD ["serve"]' \
  -c "LABEL org.opencontainers.image.title=codebeaker-gateway" \
  - "$TAG" >/dev/null
echo "build-gateway-image: built $TAG ($(docker image inspect -f '{{.Size}}' "$TAG" | awk '{printf "%.1f MB", $1/1e6}'))"
