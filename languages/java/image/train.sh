#!/bin/sh
# Run inside the Java image's root tree at build time (extras.sh), as root, from /tmp/cbjava
# (src/, edge.java). Builds /usr/lib/codebeaker/java/:
#   codebeaker.jar   CodeBeaker's Java runtime (src/)
#   warm.jar         a program whose main does nothing: the launcher loads it before a call
#   compile.jsa      class-data-sharing archive of the compile driver (javac's classes)
#   run.jsa          ... of the pre-started launcher running an edge program
#   instance.jsa     ... of the resident runner
# The archives are dynamic AppCDS archives on top of the JDK's default one, each made by a
# training run with the flags of languages/java/language.toml (keep them in step). The JVM
# checks an archive against the JDK and codebeaker.jar (path, size, mtime) and ignores, with
# a warning, one that does not match: a stale archive costs start-up time, never correctness.
set -eu
lib=/usr/lib/codebeaker/java
cp=$lib/codebeaker.jar
log="-Xlog:disable -Xlog:all=warning:stderr"
run="java -XX:+UseSerialGC -XX:TieredStopAtLevel=1 -XX:-UsePerfData $log -cp $cp"
res="java -XX:+UseSerialGC -XX:-UsePerfData $log --add-opens=java.base/java.io=ALL-UNNAMED -cp $cp"
cd /tmp/cbjava
mkdir -p $lib classes ws
javac -nowarn -encoding UTF-8 -d classes $(find src -name '*.java')
jar --create --file $cp -C classes .
chmod 0644 $cp

cd ws
printf 'public class Warm {\n    public static void main(String[] args) {}\n}\n' >Warm.java
cat >Hello.java <<'JAVA'
import java.util.*;

public final class Hello {
    public static void main(String[] args) {
        List<String> xs = new ArrayList<>(List.of("b", "a"));
        Collections.sort(xs);
        System.out.println("Hello, " + String.join(",", xs));
    }
}
JAVA
cat >code <<'JAVA'
import java.util.List;
int x = (int) input_data.get("x");
List<Object> xs = asList(get(input_data, "o", "xs"));
result = Map.of("y", x + 1, "n", xs.size(), "s", asString(input_data.get("s")), "d", asDouble(xs.get(1)));
JAVA
awk 'FNR == NR { code = code $0 "\n"; next } $0 == "{{code}}" { printf "%s", code; next } { print }' code ../edge.java >Edge.java
printf '{"x": 41, "s": "h\\u00e9", "o": {"xs": [1, 2.5, null, true]}}\n' >input.json

# The compile driver, trained on the three kinds of program, archived on the last.
$run codebeaker.Compile Warm.java $lib/warm.jar
$run codebeaker.Compile Hello.java hello.jar
$run -XX:ArchiveClassesAtExit=$lib/compile.jsa codebeaker.Compile Edge.java edge.jar 2>&1 | grep -v '\[cds\]' >&2 || true

# The launcher, running the edge program (its input and output are /workspace's).
mkdir -p /workspace
cp input.json /workspace/input.json
echo /tmp/cbjava/ws/edge.jar | $run -XX:ArchiveClassesAtExit=$lib/run.jsa codebeaker.Launcher 2>&1 | grep -v '\[cds\]' >&2 || true
grep -q '"y":42' /workspace/output.json

# The resident runner: three edge calls.
cat input.json input.json input.json >calls
$res -Dcodebeaker.train=calls -XX:ArchiveClassesAtExit=$lib/instance.jsa codebeaker.Instance edge.jar edge 2>&1 | grep -v '\[cds\]' >&2 || true
rm -f /workspace/input.json /workspace/output.json

for f in codebeaker.jar warm.jar compile.jsa run.jsa instance.jsa; do
    test -s $lib/$f || { echo "java: $lib/$f was not made" >&2; exit 1; }
done
chmod 0644 $lib/*
# Smoke test with the archives.
echo /tmp/cbjava/ws/hello.jar | $run -XX:SharedArchiveFile=$lib/run.jsa -Xshare:on codebeaker.Launcher | grep -qx 'Hello, a,b'
