#!/bin/sh
# Builds serde_json (and what `serde_json::Value` needs) as rlibs for plain `rustc`, from
# the crate sources Debian ships in /usr/share/cargo/registry (librust-serde-json-dev):
# there is no cargo and no crate registry in the image. Runs inside the image's chroot.
#
#   rustc --edition 2021 -L dependency=$OUT --extern serde_json=$OUT/libserde_json.rlib ...
#
# Features: serde "std"; serde_json "std" + "preserve_order" (objects keep their key
# order, as in Python and JavaScript; needs indexmap + hashbrown). No serde_derive: the
# contract is `serde_json::Value` and the `json!` macro. A crate's build script, where it
# has one, is compiled and run as cargo would, and its `cargo:rustc-cfg=` lines passed on.
set -eu
REG=${REG:-/usr/share/cargo/registry}
OUT=${OUT:-/usr/lib/codebeaker/rust}
RUSTC=${RUSTC:-rustc}
TARGET=$($RUSTC -vV | sed -n 's/^host: //p')
skip_build_rs=
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
mkdir -p "$OUT"

dir() { # the one registry directory of crate $1
  set -- "$REG"/"$1"-[0-9]*
  [ $# = 1 ] && [ -d "$1" ] || { echo "build-json: want exactly one $1 in $REG, have: $*" >&2; exit 1; }
  echo "$1"
}

# The cfgs a crate's build.rs prints (as --cfg arguments), with cargo's environment.
build_cfgs() { # name srcdir
  [ -f "$2/build.rs" ] && [ "$skip_build_rs" != "$1" ] || return 0
  $RUSTC --edition 2018 --cap-lints allow -o "$tmp/build-$1" "$2/build.rs" >&2
  (cd "$2" && env RUSTC="$RUSTC" TARGET="$TARGET" HOST="$TARGET" OUT_DIR="$tmp" \
      CARGO_CFG_TARGET_ARCH="${TARGET%%-*}" CARGO_FEATURE_STD=1 "$tmp/build-$1") \
    | sed -n 's/^cargo:rustc-cfg=\(.*\)$/--cfg \1/p'
}

lib() { # name edition [rustc args...]
  name=$1 edition=$2; shift 2
  src=$(dir "$name")
  cfgs=$(build_cfgs "$name" "$src")
  # shellcheck disable=SC2086
  $RUSTC --crate-name "$name" --crate-type rlib --edition "$edition" -C opt-level=3 \
    -C metadata="codebeaker-$name" --cap-lints allow -L "dependency=$OUT" \
    -o "$OUT/lib$name.rlib" $cfgs "$@" "$src/src/lib.rs"
  echo "build-json: $(basename "$src")" $cfgs >&2
}

lib itoa 2018
lib ryu 2015
lib serde 2015 --cfg 'feature="std"'
lib hashbrown 2021 --cfg 'feature="raw"'
# indexmap's build.rs needs the autocfg crate; with feature "std" it prints `has_std`.
skip_build_rs=indexmap
lib indexmap 2021 --cfg 'feature="std"' --cfg has_std --extern hashbrown="$OUT/libhashbrown.rlib"
lib serde_json 2018 --cfg 'feature="std"' --cfg 'feature="preserve_order"' \
  --extern serde="$OUT/libserde.rlib" --extern itoa="$OUT/libitoa.rlib" \
  --extern ryu="$OUT/libryu.rlib" --extern indexmap="$OUT/libindexmap.rlib"
chmod 0644 "$OUT"/*.rlib
