package codebeaker;

import java.io.IOException;
import java.io.InputStream;
import java.io.ByteArrayOutputStream;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;

/**
 * CodeBeaker's pre-started Java runner (call mode, `[run] kind = "prestart"`). JVM start-up
 * is the cost of a Java call, so the agent starts this ahead of the call: it boots the JVM,
 * loads and warms the JSON library and the class-loading path (from the class-data-sharing
 * archive), then blocks reading one line from stdin, the path of the compiled program's jar,
 * and runs that jar's Main-Class in a class loader of its own. The process is the call's:
 * System.exit(n) ends it with n; an uncaught exception is printed as `java` prints it and
 * exits 1; a return from main ends the process once the program's other non-daemon threads
 * have ended, as `java Main` does.
 */
public final class Launcher {
    /** A jar whose main does nothing, loaded before the call (extras.sh builds it). */
    static final String WARM_JAR = "/usr/lib/codebeaker/java/warm.jar";

    public static void main(String[] args) throws Exception {
        Program.streams();
        warm();
        // The program's path, then each argument base64-encoded after a tab. System.in is
        // the program's own stdin after the line (the same buffered stream).
        String line = readLine(System.in);
        if (line == null || line.isEmpty()) System.exit(2);
        String[] parts = line.split("\t", -1);
        String path = parts[0];
        String[] programArgs = new String[parts.length - 1];
        for (int i = 1; i < parts.length; i++) {
            programArgs[i - 1] = new String(java.util.Base64.getDecoder().decode(parts[i]), StandardCharsets.UTF_8);
        }
        Method main;
        try {
            main = new Program(path.trim()).mainMethod();
        } catch (Throwable e) {
            System.err.println("codebeaker: cannot load the program: " + e);
            Program.flush();
            Runtime.getRuntime().halt(1);
            return;
        }
        try {
            main.invoke(null, (Object) programArgs);
        } catch (Throwable e) {
            Program.uncaught(e);
            System.exit(1);
        }
        Program.flush();
        // As `java Main`: the JVM ends when the last non-daemon thread does (and runs the
        // shutdown hooks then). With none left, end it at once: an orderly JVM shutdown
        // costs a few milliseconds more.
        if (onlyThread()) {
            Runtime.getRuntime().halt(0);
        }
    }

    private static boolean onlyThread() {
        Thread me = Thread.currentThread();
        // The program's threads are in the main thread group unless it made groups of its
        // own (then the JVM is left to end as it does).
        ThreadGroup g = me.getThreadGroup();
        Thread[] ts = new Thread[g.activeCount() + 8];
        int n = g.enumerate(ts, true);
        for (int i = 0; i < n; i++) {
            if (ts[i] != me && !ts[i].isDaemon() && ts[i].isAlive()) return false;
        }
        return g.activeGroupCount() == 0;
    }

    /** One line of the stream, read a byte at a time (nothing beyond it is consumed). */
    static String readLine(InputStream in) throws IOException {
        ByteArrayOutputStream b = new ByteArrayOutputStream(256);
        int c;
        while ((c = in.read()) >= 0 && c != '\n') b.write(c);
        if (c < 0 && b.size() == 0) return null;
        return b.toString(StandardCharsets.UTF_8);
    }

    /** The JSON round trip every edge call makes, run once before the call. */
    static void warm() {
        // The class-loading path a call takes: a jar in a loader of its own, its main found.
        try {
            new Program(WARM_JAR).mainMethod().invoke(null, (Object) new String[0]);
        } catch (Throwable e) {
            // Only a warm-up.
        }
        Object v = Json.parse("{\"a\":[1,2.5,\"x\\u00e9\",true,null,12345678901],\"s\":\"t\\n\",\"o\":{}}");
        Json.stringify(v);
        Edge.asInt(Edge.get(v, "a", 0));
    }
}
