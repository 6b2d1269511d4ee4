#!/usr/bin/env bash
# Builds the CodeBeaker runtime images offline, from Debian packages only.
#
# There is no container registry here, so `FROM python:3` cannot work. Instead:
#   1. debootstrap a minbase bookworm root filesystem once (cached under $WORK),
#   2. for each language, copy it and apt-get install that language's recipe,
#   3. `docker import` the tree as codebeaker-<lang>:latest with a recipe-hash label.
# The script is idempotent: an image whose label matches the recipe hash is skipped.
#
# Usage: docker/build-images.sh [python javascript go csharp]
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
WORK=${CODEBEAKER_IMAGE_WORK:-/var/tmp/codebeaker-images}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PREFIX=${CODEBEAKER_IMAGE_PREFIX:-codebeaker}
langs=("$@")
[ ${#langs[@]} -gt 0 ] || langs=(python javascript go csharp)

need() { command -v "$1" >/dev/null 2>&1 || { echo "build-images: '$1' is required (apt-get install $2)" >&2; exit 1; }; }
need docker docker.io
need debootstrap debootstrap
[ "$(id -u)" = 0 ] || { echo "build-images: must run as root (debootstrap and chroot)" >&2; exit 1; }

recipe_hash() {
  # The recipe and this script both decide what ends up in the image.
  cat "$here/recipes/$1.packages" "$here/build-images.sh" | sha256sum | cut -c1-16
}

base_rootfs() {
  local base=$WORK/base
  if [ ! -f "$base/.complete" ]; then
    echo "build-images: debootstrap bookworm minbase into $base" >&2
    rm -rf "$base"; mkdir -p "$base"
    debootstrap --variant=minbase bookworm "$base" "$MIRROR" >"$WORK/debootstrap.log" 2>&1 \
      || { tail -20 "$WORK/debootstrap.log" >&2; exit 1; }
    touch "$base/.complete"
  fi
  echo "$base"
}

build_one() {
  local lang=$1 image=$PREFIX-$1:latest hash
  [ -f "$here/recipes/$lang.packages" ] || { echo "build-images: no recipe for '$lang'" >&2; exit 1; }
  hash=$(recipe_hash "$lang")
  if [ "$(docker image inspect -f '{{index .Config.Labels "codebeaker.recipe"}}' "$image" 2>/dev/null || true)" = "$hash" ]; then
    echo "build-images: $image is up to date ($hash)"
    return
  fi
  local base root pkgs
  base=$(base_rootfs)
  root=$WORK/$lang
  rm -rf "$root"; cp -a "$base" "$root"; rm -f "$root/.complete"
  pkgs=$(grep -v '^\s*#' "$here/recipes/$lang.packages" | xargs)
  echo "build-images: installing [$pkgs] for $lang" >&2
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  chroot "$root" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs && apt-get clean" \
    >"$WORK/$lang.log" 2>&1 || { tail -30 "$WORK/$lang.log" >&2; exit 1; }
  # Drop what a runtime never needs: apt lists, docs, man pages, and the build host's resolver.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root/etc/resolv.conf"
  # The image's user for untrusted code (the agent drops to this uid).
  chroot "$root" /bin/sh -c 'getent passwd sandbox >/dev/null || useradd -u 1000 -M -d /workspace -s /usr/sbin/nologin sandbox' || true
  mkdir -p "$root/workspace" "$root/cache" "$root/opt/codebeaker"
  tar -C "$root" -c . | docker import \
    -c "LABEL codebeaker.recipe=$hash" -c "LABEL codebeaker.language=$lang" \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    -c 'WORKDIR /workspace' - "$image" >/dev/null
  rm -rf "$root"
  echo "build-images: built $image ($hash)"
}

mkdir -p "$WORK"
for l in "${langs[@]}"; do build_one "$l"; done
