# Sourced by docker/build-images.sh with $root (the image tree) and $imagedir (this dir).
# serde_json as rlibs for plain rustc (no cargo, no registry in the image), built in the
# chroot from the crate sources of librust-serde-json-dev; then the sources go.
install -m 0755 "$imagedir/build-json.sh" "$root/tmp/build-json.sh"
mount -t proc proc "$root/proc"
rust_ok=0
chroot "$root" /bin/sh -c 'OUT=/usr/lib/codebeaker/rust /tmp/build-json.sh' || rust_ok=$?
umount "$root/proc"
rm -f "$root/tmp/build-json.sh"
[ "$rust_ok" = 0 ] || { echo "build-images: serde_json does not build for rustc" >&2; exit 1; }
# The crate sources were only the build's input. Of the rest, what rustc (which runs gcc
# as its linker driver) never uses: translations, gcc's LTO compiler and dumper, the
# sanitizer runtimes, rustdoc (~140 MB of the image's ~750).
rm -rf "$root/usr/share/cargo/registry" "$root/usr/share/locale"/* \
  "$root"/usr/lib/gcc/x86_64-linux-gnu/*/lto1 "$root"/usr/bin/*lto-dump* \
  "$root"/usr/lib/gcc/x86_64-linux-gnu/*/lib*san* "$root"/usr/lib/x86_64-linux-gnu/lib*san.so* \
  "$root/usr/bin/rustdoc"
chmod 0755 "$root/usr/lib/codebeaker" "$root/usr/lib/codebeaker/rust"
