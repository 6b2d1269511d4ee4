# Sourced by docker/build-images.sh after apt-get.
# The System.Text.Json subset for Mono, built from image/json/*.cs with the image's own mcs.
rm -rf "$root/tmp/stj" && mkdir -p "$root/tmp/stj" "$root/usr/lib/codebeaker"
cp "$imagedir"/json/*.cs "$root/tmp/stj/"
# Mono needs /proc, even to compile (build-images.sh unmounts it if this fails half-way).
mount -t proc proc "$root/proc"
ok=0
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
# System.Web.Extensions (JavaScriptSerializer) must resolve for `mcs -r:System.Web.Extensions`.
[ "$ok" = 0 ] && { chroot "$root" /bin/sh -c 'cd /tmp/stj && cat >jss.cs <<CS
using System.Web.Script.Serialization;
class P { static void Main() { System.Console.WriteLine(new JavaScriptSerializer().Serialize(new int[] {1, 2})); } }
CS
mcs -nologo -r:System.Web.Extensions -out:jss.exe jss.cs && test "$(mono jss.exe)" = "[1,2]"' \
  || { echo "build-images: mcs -r:System.Web.Extensions does not compile or run" >&2; ok=1; }; }
umount "$root/proc"
[ "$ok" = 0 ] || { echo "build-images: the System.Text.Json library does not compile, or AOT fails" >&2; exit 1; }
rm -rf "$root/tmp/stj"
chmod 0644 "$root/usr/lib/codebeaker/System.Text.Json.dll"
# `dotnet script FILE.cs`: the agent binary (mounted at /opt/codebeaker) is the shim.
ln -sf /opt/codebeaker/codebeaker-agent "$root/usr/local/bin/dotnet"
