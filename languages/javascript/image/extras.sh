# Sourced by docker/build-images.sh after apt-get and the npm binaries (image/npm) are in
# $root: Deno, Bun and official Node.js.
# Node's headers are for native add-ons, which a sandbox without a compiler never builds.
rm -rf "$root/usr/local/lib/node/include"
ln -sf /usr/local/lib/node/bin/node "$root/usr/local/bin/node"
ln -sf /usr/local/lib/bun/bin/bun "$root/usr/local/bin/bun"
# The permission-granting `deno` wrapper (image/deno) in front of the real binary.
install -m 0755 "$imagedir/deno" "$root/usr/local/bin/deno"
for rt in "deno --version" "node --version" "bun --version"; do
  # shellcheck disable=SC2086
  chroot "$root" /usr/local/bin/$rt >/dev/null \
    || { echo "build-images: '$rt' does not start in the image" >&2; exit 1; }
done
