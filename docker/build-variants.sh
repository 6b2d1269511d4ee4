#!/usr/bin/env bash
# Builds the optional package variants of the runtime images, offline at run time:
# packages come from PyPI and npm *now*, at build time, pinned by the variant's lock file;
# the containers made from the image never have a network.
#
#   python-<x>      docker/variants/<name>/requirements.lock: wheels downloaded on the host
#                   and installed by the image's own Python, in a container without network;
#   javascript-<x>  docker/variants/<name>/package-lock.json: tarballs fetched and checked
#                   against the lock's integrity, laid out as /node_modules (found by Bun and
#                   Node from /workspace).
#
# Each image is FROM its language's default image and carries the labels the gateway reads:
#   codebeaker.variant, codebeaker.language, codebeaker.packages (JSON {name: version} of
#   the allow-list), codebeaker.recipe (hash of the lock, this script and the base image).
# Up-to-date images are skipped. Usage: docker/build-variants.sh python-data javascript-libs
set -euo pipefail

here=$(cd "$(dirname "$0")" && pwd)
WORK=${CODEBEAKER_IMAGE_WORK:-/var/tmp/codebeaker-images}
PREFIX=${CODEBEAKER_IMAGE_PREFIX:-codebeaker}
[ $# -gt 0 ] || { echo "usage: build-variants.sh <variant>... (see docker/variants/)" >&2; exit 1; }
command -v python3 >/dev/null || { echo "build-variants: python3 is required (apt-get install python3-venv)" >&2; exit 1; }

lockfile() {
  case $1 in
    python-*) echo "$here/variants/$1/requirements.lock" ;;
    javascript-*) echo "$here/variants/$1/package-lock.json" ;;
  esac
}

# The allow-list with its locked versions, as the JSON object of the packages label.
allow_list() {
  local name=$1 dir=$here/variants/$1
  case $name in
    python-*) python3 - "$dir" <<'PY' ;;
import json, re, sys, pathlib
d = pathlib.Path(sys.argv[1])
norm = lambda n: re.sub(r"[-_.]+", "-", n).lower()
want = [norm(l.split("#")[0].strip()) for l in (d / "requirements.in").read_text().splitlines() if l.split("#")[0].strip()]
locked = {}
for l in (d / "requirements.lock").read_text().splitlines():
    m = re.match(r"([A-Za-z0-9_.-]+)==(\S+)", l)
    if m: locked[norm(m[1])] = m[2]
missing = [w for w in want if w not in locked]
if missing: sys.exit(f"build-variants: {d.name}: not in the lock: {missing} (run relock.sh)")
print(json.dumps({w: locked[w] for w in want if w != "pip"}, separators=(",", ":")))
PY
    javascript-*) python3 - "$dir" <<'PY' ;;
import json, sys, pathlib
d = pathlib.Path(sys.argv[1])
lock = json.loads((d / "package-lock.json").read_text())["packages"]
want = json.loads((d / "package.json").read_text())["dependencies"]
print(json.dumps({n: lock["node_modules/" + n]["version"] for n in sorted(want)}, separators=(",", ":")))
PY
  esac
}

# npm ci without npm: every package of the lock, fetched once into $WORK/downloads, checked
# against its integrity hash and unpacked at its path in the lock's tree.
npm_tree() {
  python3 - "$1" "$2" "$WORK/downloads" <<'PY'
import base64, hashlib, io, json, pathlib, sys, tarfile, urllib.request
lock, out, cache = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2]), pathlib.Path(sys.argv[3])
cache.mkdir(parents=True, exist_ok=True)
for path, p in json.loads(lock.read_text())["packages"].items():
    if not path:
        continue
    if p.get("hasInstallScript"):
        sys.exit(f"build-variants: {path} has an install script; not allowed in a variant")
    algo, want = p["integrity"].split("-", 1)
    f = cache / (p["resolved"].rsplit("/", 1)[1] + "." + hashlib.sha1(p["resolved"].encode()).hexdigest()[:8])
    data = f.read_bytes() if f.exists() else b""
    if base64.b64encode(hashlib.new(algo, data).digest()).decode() != want:
        print(f"build-variants: fetching {p['resolved']}", file=sys.stderr)
        data = urllib.request.urlopen(p["resolved"], timeout=60).read()
        if base64.b64encode(hashlib.new(algo, data).digest()).decode() != want:
            sys.exit(f"build-variants: {p['resolved']} does not match the lock's integrity")
        f.write_bytes(data)
    dest = out / path
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        for m in t.getmembers():
            if not (m.isfile() or m.isdir()):
                continue
            parts = pathlib.PurePosixPath(m.name).parts[1:]
            if not parts or ".." in parts:
                continue
            target = dest.joinpath(*parts)
            if m.isdir():
                target.mkdir(parents=True, exist_ok=True)
                continue
            target.parent.mkdir(parents=True, exist_ok=True)
            target.write_bytes(t.extractfile(m).read())
            target.chmod(0o644)
PY
}

# Wheels of the lock, downloaded once into $WORK/wheels/<variant> (pip checks the hashes).
wheels() {
  local name=$1 dest=$WORK/wheels/$1 venv=$WORK/venv
  [ -x "$venv/bin/pip" ] || python3 -m venv "$venv"
  mkdir -p "$dest"
  "$venv/bin/pip" download -q --no-deps --require-hashes -d "$dest" --only-binary=:all: \
    --implementation cp --python-version 3.11 --abi cp311 --platform manylinux2014_x86_64 \
    --platform manylinux_2_17_x86_64 --platform manylinux_2_28_x86_64 \
    -r "$(lockfile "$name")" >&2
  echo "$dest"
}

build_one() {
  local name=$1 lang=${1%%-*} image=$PREFIX-$1:latest base=$PREFIX-${1%%-*}:latest
  local dir=$here/variants/$name hash base_id packages
  [ -d "$dir" ] && [ -f "$(lockfile "$name")" ] || { echo "build-variants: no variant '$name' in docker/variants" >&2; exit 1; }
  base_id=$(docker image inspect -f '{{.Id}}' "$base" 2>/dev/null) \
    || { echo "build-variants: $base is missing; run docker/build-images.sh $lang first" >&2; exit 1; }
  hash=$(cat "$dir"/* "$here/build-variants.sh" <(echo "$base_id") | sha256sum | cut -c1-16)
  if [ "$(docker image inspect -f '{{index .Config.Labels "codebeaker.recipe"}}' "$image" 2>/dev/null || true)" = "$hash" ]; then
    echo "build-variants: $image is up to date ($hash)"
    return
  fi
  packages=$(allow_list "$name")
  local labels=(-c "LABEL codebeaker.recipe=$hash" -c "LABEL codebeaker.variant=$name"
                -c "LABEL codebeaker.language=$lang" -c "LABEL codebeaker.packages='$packages'")
  local box=codebeaker-build-$name
  docker rm -f "$box" >/dev/null 2>&1 || true
  case $lang in
    python)
      local w pip
      w=$(wheels "$name")
      pip=$(ls "$w"/pip-*.whl | head -1)
      # The image's own Python installs (so every wheel is checked against *its* tags), as
      # root, with no network: only the hashed wheels can go in.
      docker run --name "$box" --network none --user 0 -v "$w:/wheels:ro" -v "$dir:/recipe:ro" \
        --entrypoint python3 "$base" "/wheels/$(basename "$pip")/pip" install -q --no-index \
        --find-links /wheels --require-hashes --break-system-packages --root-user-action=ignore \
        --no-cache-dir -r /recipe/requirements.lock
      # Modules the Python zygote imports once, so that each call's import is a lookup.
      [ ! -f "$dir/preload" ] || docker cp "$dir/preload" "$box:/etc/codebeaker-python-preload"
      ;;
    javascript)
      local tree=$WORK/tree-$name
      rm -rf "$tree" && mkdir -p "$tree"
      npm_tree "$dir/package-lock.json" "$tree"
      docker create --name "$box" --entrypoint /bin/true "$base" >/dev/null
      docker cp "$tree/node_modules" "$box:/node_modules"
      rm -rf "$tree"
      ;;
    *) echo "build-variants: no variant support for $lang" >&2; exit 1 ;;
  esac
  docker commit "${labels[@]}" -c 'ENTRYPOINT []' -c 'CMD []' "$box" "$image" >/dev/null
  docker rm -f "$box" >/dev/null
  echo "build-variants: built $image ($hash) with $packages"
}

for v in "$@"; do build_one "$v"; done
