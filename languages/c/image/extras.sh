# Sourced by docker/build-images.sh after apt-get: CodeBeaker's headers for the C and C++
# templates, the C++ helper library with nlohmann::json compiled once, and the precompiled
# header the C++ templates start with.
#
# CXXFLAGS must be exactly the flags of languages/cpp/language.toml's [compile] argv (but
# -o and the files): GCC uses a precompiled header only if they match; the check below
# compiles a template the way the agent does and fails the build if the PCH is not used.
CXXFLAGS="-O1 -pipe"
inc=$root/usr/local/include/codebeaker
mkdir -p "$inc" "$root/tmp/cb"
install -m 0644 "$imagedir"/include/codebeaker/cb.h "$imagedir"/include/codebeaker/cb.hpp "$inc/"
cp "$imagedir/cbjson.cpp" "$root/tmp/cb/"
chroot "$root" /bin/sh -ec "
  cd /tmp/cb
  g++ -O2 -pipe -c -o cbjson.o cbjson.cpp
  ar rcs /usr/local/lib/libcodebeaker-cpp.a cbjson.o
  g++ $CXXFLAGS -x c++-header -o /usr/local/include/codebeaker/cb.hpp.gch /usr/local/include/codebeaker/cb.hpp
  printf '#include <codebeaker/cb.hpp>\nint main() { return __cb_write_output(\"/dev/null\", nlohmann::json::parse(\"[1]\")); }\n' >t.cpp
  g++ $CXXFLAGS -H -o t t.cpp -lcodebeaker-cpp 2>h.txt
  ./t
  grep -q '^! /usr/local/include/codebeaker/cb.hpp.gch' h.txt
  printf '#include <codebeaker/cb.h>\nint main(void) { return __cb_write_output(\"/dev/null\", json_object_new_int(1)); }\n' >t.c
  gcc -O1 -o t t.c -ljson-c -lm
  ./t
" || { echo "build-images: the C/C++ helpers do not build, or the C++ precompiled header is not used" >&2; exit 1; }
rm -rf "$root/tmp/cb"
chmod 0644 "$inc"/* "$root/usr/local/lib/libcodebeaker-cpp.a"
