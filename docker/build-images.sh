#!/usr/bin/env bash
# Builds the CodeBeaker runtime images offline, from Debian packages only.
#
# There is no container registry here, so `FROM python:3` cannot work. Instead:
#   1. debootstrap a minbase bookworm root filesystem once (cached under $WORK),
#   2. for each image recipe, copy it and apt-get install the recipe's packages, install the
#      recipe's pinned npm-registry binaries and source its extras,
#   3. `docker import` the tree as codebeaker-<name>:latest with a recipe-hash label.
#
# An image recipe is a directory:
#   languages/<name>/image/   the runtime image of language <name> (built by default);
#   docker/images/<name>/     an image that is not a language's (redis: built when named).
# holding
#   packages    Debian bookworm packages, one per line, # comments;
#   npm         optional: npm-registry binaries, `<package> <version> <sha256> <dir>` a line;
#   extras.sh   optional: bash, sourced after apt-get and npm with $root (the image's root
#               tree), $dir (the recipe directory, languages/<name>), $imagedir (its image/),
#               $WORK (download cache) set and the function npm_binaries available;
#   anything else extras.sh uses.
# The recipe hash covers every file of the image directory (names and contents) and this
# script; an image whose label matches it is skipped. Missing images are built in parallel,
# at most $CODEBEAKER_IMAGE_JOBS (default 2) at a time, each logging to $WORK/<name>.log.
#
# Usage: docker/build-images.sh [name...]   (default: every languages/*/image/)
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
repo=$(cd "$here/.." && pwd)
WORK=${CODEBEAKER_IMAGE_WORK:-/var/tmp/codebeaker-images}
MIRROR=${DEBIAN_MIRROR:-http://deb.debian.org/debian}
PREFIX=${CODEBEAKER_IMAGE_PREFIX:-codebeaker}
JOBS=${CODEBEAKER_IMAGE_JOBS:-2}

need() { command -v "$1" >/dev/null 2>&1 || { echo "build-images: '$1' is required (apt-get install $2)" >&2; exit 1; }; }
need docker docker.io
need debootstrap debootstrap
[ "$(id -u)" = 0 ] || { echo "build-images: must run as root (debootstrap and chroot)" >&2; exit 1; }

# The image directory of a recipe name, or nothing.
image_dir() {
  if [ -d "$repo/languages/$1/image" ]; then echo "$repo/languages/$1/image"
  elif [ -d "$repo/docker/images/$1" ]; then echo "$repo/docker/images/$1"
  fi
}

recipe_hash() {
  local d=$1
  { (cd "$d" && find . -type f -print0 | LC_ALL=C sort -z | xargs -0 sha256sum)
    sha256sum <"$here/build-images.sh"; } | sha256sum | cut -c1-16
}

# Installs the npm-registry runtime binaries pinned in the list $1 into the root tree $2:
# each tarball is fetched once into $WORK/downloads and checked against its pinned SHA-256.
npm_binaries() {
  local list=$1 root=$2
  [ -f "$list" ] || return 0
  mkdir -p "$WORK/downloads"
  local pkg version sha dest tgz url
  while read -r pkg version sha dest; do
    case $pkg in ''|'#'*) continue ;; esac
    tgz="$WORK/downloads/$(echo "$pkg" | tr '/@' '__')-$version.tgz"
    if ! echo "$sha  $tgz" | sha256sum -c --quiet >/dev/null 2>&1; then
      url="https://registry.npmjs.org/$pkg/-/${pkg##*/}-$version.tgz"
      echo "build-images: fetching $pkg@$version" >&2
      curl -fsSL --retry 3 -o "$tgz.part.$$" "$url" || { echo "build-images: cannot fetch $url" >&2; return 1; }
      echo "$sha  $tgz.part.$$" | sha256sum -c --quiet \
        || { echo "build-images: $pkg@$version does not match its pinned SHA-256" >&2; return 1; }
      mv "$tgz.part.$$" "$tgz"
    fi
    mkdir -p "$root$dest"
    tar -xzf "$tgz" -C "$root$dest" --strip-components=1 --no-same-owner
    chmod -R a+rX "$root$dest"
  done <"$list"
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
}

# Builds one image; runs in its own subshell with its output in $WORK/<name>.log.
build_one() {
  set -euo pipefail
  local name=$1 hash=$2 image=$PREFIX-$1:latest
  local imagedir dir root pkgs
  imagedir=$(image_dir "$name")
  case $imagedir in "$repo/languages/"*) dir=$(dirname "$imagedir") ;; *) dir=$imagedir ;; esac
  root=$(mktemp -d "$WORK/root-$name.XXXXXX")
  # shellcheck disable=SC2064
  trap "mountpoint -q '$root/proc' && umount '$root/proc'; rm -rf '$root'" EXIT
  cp -a "$WORK/base/." "$root/"; rm -f "$root/.complete"
  pkgs=$(grep -v '^\s*#' "$imagedir/packages" | xargs)
  echo "build-images: installing [$pkgs] for $name"
  cp /etc/resolv.conf "$root/etc/resolv.conf" 2>/dev/null || true
  chroot "$root" /bin/sh -c "apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq --no-install-recommends $pkgs && apt-get clean"
  npm_binaries "$imagedir/npm" "$root"
  if [ -f "$imagedir/extras.sh" ]; then
    echo "build-images: extras.sh for $name"
    # shellcheck disable=SC1091
    source "$imagedir/extras.sh"
  fi
  # Drop what a runtime never needs: apt lists, docs, man pages, and the build host's resolver.
  rm -rf "$root"/var/lib/apt/lists/* "$root"/usr/share/doc/* "$root"/usr/share/man/* "$root/etc/resolv.conf"
  # The image's user for untrusted code (the agent drops to this uid).
  chroot "$root" /bin/sh -c 'getent passwd sandbox >/dev/null || useradd -u 1000 -M -d /workspace -s /usr/sbin/nologin sandbox' || true
  mkdir -p "$root/workspace" "$root/cache" "$root/opt/codebeaker" "$root/opt/codebeaker-languages"
  tar -C "$root" -c . | docker import \
    -c "LABEL codebeaker.recipe=$hash" -c "LABEL codebeaker.language=$name" \
    -c 'ENV PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin LANG=C.UTF-8' \
    -c 'WORKDIR /workspace' - "$image" >/dev/null
  echo "build-images: built $image ($hash)"
}

names=("$@")
if [ ${#names[@]} -eq 0 ]; then
  for d in "$repo"/languages/*/image; do [ -d "$d" ] && names+=("$(basename "$(dirname "$d")")"); done
fi
mkdir -p "$WORK"

# What is missing or stale.
todo=() hashes=()
for name in "${names[@]}"; do
  d=$(image_dir "$name")
  [ -n "$d" ] || { echo "build-images: '$name' has no image recipe (languages/$name/image/ or docker/images/$name/)" >&2; exit 1; }
  [ -f "$d/packages" ] || { echo "build-images: '$name': $d/packages is missing" >&2; exit 1; }
  h=$(recipe_hash "$d")
  if [ "$(docker image inspect -f '{{index .Config.Labels "codebeaker.recipe"}}' "$PREFIX-$name:latest" 2>/dev/null || true)" = "$h" ]; then
    echo "build-images: $PREFIX-$name:latest is up to date ($h)"
  else
    todo+=("$name") hashes+=("$h")
  fi
done
[ ${#todo[@]} -gt 0 ] || exit 0

base_rootfs

# Bash 5.1's `wait -n -p` says which build ended.
declare -A name_of=()
failed=()
reap_one() {
  local pid rc=0
  wait -n -p pid "${!name_of[@]}" || rc=$?
  [ "$rc" = 0 ] || failed+=("${name_of[$pid]}")
  unset "name_of[$pid]"
}
for i in "${!todo[@]}"; do
  name=${todo[$i]}
  while [ ${#name_of[@]} -ge "$JOBS" ]; do reap_one; done
  echo "build-images: building $PREFIX-$name:latest (log: $WORK/$name.log)"
  (build_one "$name" "${hashes[$i]}") >"$WORK/$name.log" 2>&1 &
  name_of[$!]=$name
done
while [ ${#name_of[@]} -gt 0 ]; do reap_one; done

for n in "${todo[@]}"; do
  case " ${failed[*]} " in *" $n "*) ;; *) grep -h '^build-images: built' "$WORK/$n.log" || true ;; esac
done
if [ ${#failed[@]} -gt 0 ]; then
  for n in "${failed[@]}"; do
    echo "build-images: $PREFIX-$n:latest FAILED; the end of $WORK/$n.log:" >&2
    tail -25 "$WORK/$n.log" | sed 's/^/  | /' >&2
  done
  echo "build-images: failed: ${failed[*]}" >&2
  exit 1
fi
