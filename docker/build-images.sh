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

# Everything that decides what ends up in a language's image, beyond its package list.
extra_inputs() {
  case $1 in
    javascript) echo "$here/recipes/javascript.npm" "$here/files/deno" ;;
    csharp) ls "$here"/csharp/json/*.cs ;;
  esac
}

recipe_hash() {
  # shellcheck disable=SC2046
  cat "$here/recipes/$1.packages" "$here/build-images.sh" $(extra_inputs "$1") | sha256sum | cut -c1-16
}

# Installs the npm-registry runtime binaries pinned in recipes/<lang>.npm into $2: each
# tarball is fetched once into $WORK/downloads and checked against its pinned SHA-256.
npm_binaries() {
  local lang=$1 root=$2 list=$here/recipes/$1.npm
  [ -f "$list" ] || return 0
  mkdir -p "$WORK/downloads"
  grep -v '^\s*#' "$list" | while read -r pkg version sha dir; do
    [ -n "$pkg" ] || continue
    local tgz="$WORK/downloads/$(echo "$pkg" | tr '/@' '__')-$version.tgz"
    if ! echo "$sha  $tgz" | sha256sum -c --quiet >/dev/null 2>&1; then
      local url="https://registry.npmjs.org/$pkg/-/${pkg##*/}-$version.tgz"
      echo "build-images: fetching $pkg@$version" >&2
      curl -fsSL --retry 3 -o "$tgz.part" "$url" || { echo "build-images: cannot fetch $url" >&2; exit 1; }
      echo "$sha  $tgz.part" | sha256sum -c --quiet \
        || { echo "build-images: $pkg@$version does not match its pinned SHA-256" >&2; exit 1; }
      mv "$tgz.part" "$tgz"
    fi
    mkdir -p "$root$dir"
    tar -xzf "$tgz" -C "$root$dir" --strip-components=1 --no-same-owner
    chmod -R a+rX "$root$dir"
  done
}

# What a language needs beyond its packages.
extras() {
  local lang=$1 root=$2
  case $lang in
    javascript)
      npm_binaries "$lang" "$root"
      # Node's headers are for native add-ons, which a sandbox without a compiler never builds.
      rm -rf "$root/usr/local/lib/node/include"
      ln -sf /usr/local/lib/node/bin/node "$root/usr/local/bin/node"
      ln -sf /usr/local/lib/bun/bin/bun "$root/usr/local/bin/bun"
      install -m 0755 "$here/files/deno" "$root/usr/local/bin/deno"
      for rt in "deno --version" "node --version" "bun --version"; do
        chroot "$root" /usr/local/bin/$rt >/dev/null \
          || { echo "build-images: '$rt' does not start in the image" >&2; exit 1; }
      done
      ;;
    go)
      # `go run FILE.go` builds once per program (agent/src/gorun.rs); the rest is go's.
      ln -sf /opt/codebeaker/codebeaker-agent "$root/usr/local/bin/go"
      ;;
    csharp)
      # The System.Text.Json subset for Mono, built from this repository's source.
      rm -rf "$root/tmp/stj" && mkdir -p "$root/tmp/stj" "$root/usr/lib/codebeaker"
      cp "$here"/csharp/json/*.cs "$root/tmp/stj/"
      # Mono needs /proc, even to compile.
      mount -t proc proc "$root/proc"
      local ok=0
      chroot "$root" /bin/sh -c 'mcs -nologo -target:library -optimize+ -r:System.Core.dll -r:System.Numerics.dll -out:/usr/lib/codebeaker/System.Text.Json.dll /tmp/stj/*.cs' || ok=$?
      # AOT-compile the framework assemblies every call loads (a JSON round trip and a
      # file write), and the JSON library, next to each assembly (`X.dll.so`, where Mono
      # looks first). A call's Mono start-up drops from ~57 to ~23 ms of CPU (run P).
      # binutils comes with mono-runtime-common; its assembler and linker do the work.
      [ "$ok" = 0 ] && chroot "$root" /bin/sh -c 'set -e
        g=/usr/lib/mono/gac
        for a in /usr/lib/mono/4.5/mscorlib.dll /usr/lib/codebeaker/System.Text.Json.dll \
                 $g/System/4.0.0.0__b77a5c561934e089/System.dll \
                 $g/System.Core/4.0.0.0__b77a5c561934e089/System.Core.dll \
                 $g/System.Numerics/4.0.0.0__b77a5c561934e089/System.Numerics.dll \
                 $g/System.Xml/4.0.0.0__b77a5c561934e089/System.Xml.dll \
                 $g/System.Configuration/4.0.0.0__b03f5f7f11d50a3a/System.Configuration.dll \
                 $g/Mono.Security/4.0.0.0__0738eb9f132ed756/Mono.Security.dll; do
          mono --aot -O=all "$a" >/dev/null
          chmod 0644 "$a.so"
        done' || ok=$?
      umount "$root/proc"
      [ "$ok" = 0 ] || { echo "build-images: the System.Text.Json library does not compile, or AOT fails" >&2; exit 1; }
      rm -rf "$root/tmp/stj"
      chmod 0644 "$root/usr/lib/codebeaker/System.Text.Json.dll"
      # `dotnet script FILE.cs`: the agent binary (mounted at /opt/codebeaker) is the shim.
      ln -sf /opt/codebeaker/codebeaker-agent "$root/usr/local/bin/dotnet"
      ;;
  esac
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
  extras "$lang" "$root"
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
