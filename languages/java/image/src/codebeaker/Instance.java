package codebeaker;

import java.io.ByteArrayOutputStream;
import java.io.FileDescriptor;
import java.io.FileInputStream;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.InputStream;
import java.lang.invoke.MethodHandle;
import java.lang.invoke.MethodHandles;
import java.lang.invoke.MethodType;
import java.lang.reflect.Constructor;
import java.lang.reflect.Method;
import java.nio.charset.StandardCharsets;
import java.util.HashSet;
import java.util.Map;
import java.util.Set;
import java.util.concurrent.ForkJoinPool;

/**
 * CodeBeaker's resident Java runner ("isolation": "program"; protocol: agent/src/instance.rs).
 * `Instance JAR MODE`, started by `sh -c 'exec 3<&0 </dev/null; exec java ...'`: the control
 * socket is fd 3 (the JVM closes fds above 2 in every child it starts) and stdin is /dev/null.
 *
 * <p>The jar is loaded once. Edge mode: per input line, the template's static
 * `__cbCall(input_data)` is called, so the code's local variables are fresh on every call
 * while static state persists; its `result` is answered as JSON. Plain mode: the program's
 * `main` is called per input line. An uncaught exception ends the call with exit code 1,
 * printed as `java` prints it, and the instance lives on; System.exit(n) ends the call with n
 * and the process (the agent starts a fresh one). A thread the call started that is still
 * alive after it (or a task still running in the common fork-join pool) is `leaked`.
 */
public final class Instance {
    private static InputStream ctlIn;
    private static FileOutputStream ctlOut;
    private static byte[] buf = new byte[1 << 16];
    private static int start, end;

    public static void main(String[] args) throws Throwable {
        if (args.length != 2) {
            System.err.println("usage: Instance JAR edge|plain");
            System.exit(2);
        }
        boolean plain = args[1].equals("plain");
        String train = System.getProperty("codebeaker.train");
        if (train != null) {
            // The image build's class-data-sharing training run: the calls come from a file.
            ctlIn = new FileInputStream(train);
            ctlOut = new FileOutputStream("/dev/null");
        } else {
            FileDescriptor ctl = descriptor(3);
            ctlIn = new FileInputStream(ctl);
            ctlOut = new FileOutputStream(ctl);
        }
        Program.streams();
        Launcher.warm();

        Program program;
        MethodHandle call;
        try {
            program = new Program(args[0]);
            MethodHandles.Lookup lookup = MethodHandles.publicLookup();
            if (plain) {
                Method m = program.mainMethod();
                call = MethodHandles.lookup().unreflect(m).asType(MethodType.methodType(void.class, String[].class));
            } else {
                Method m = program.main.getMethod("__cbCall", Map.class);
                call = lookup.unreflect(m);
            }
            // Initialise the class now: its static initialisers are not a call's.
            Class.forName(program.main.getName(), true, program.loader);
        } catch (NoSuchMethodException e) {
            System.err.println("codebeaker: the program was not built from the Java edge template (no __cbCall)");
            Program.flush();
            Runtime.getRuntime().halt(1);
            return;
        } catch (Throwable e) {
            Program.uncaught(e);
            Program.flush();
            Runtime.getRuntime().halt(1);
            return;
        }
        Set<Thread> known = threads();
        knownCount = Thread.activeCount();
        String[] noArgs = new String[0];
        send("ready\n".getBytes(StandardCharsets.US_ASCII), null);
        while (true) {
            String line = readLine();
            if (line == null) Runtime.getRuntime().halt(0);
            int exit = 0;
            byte[] payload = null;
            try {
                if (plain) {
                    call.invokeExact(noArgs);
                } else {
                    Object input = Json.parse(line);
                    if (!(input instanceof Map)) {
                        System.err.println("codebeaker: input is not a JSON object");
                        exit = 1;
                    } else {
                        Object result = call.invoke((Map<?, ?>) input);
                        if (result != Edge.UNSET) {
                            String text = Edge.serialize(result);
                            if (text == null) exit = 1;
                            else payload = text.getBytes(StandardCharsets.UTF_8);
                        }
                    }
                }
            } catch (Throwable e) {
                Program.uncaught(e);
                exit = 1;
                payload = null;
            }
            Program.flush();
            int leaked = leaked(known) ? 1 : 0;
            String head = "done " + exit + " " + (payload == null ? -1 : payload.length) + " " + leaked + "\n";
            send(head.getBytes(StandardCharsets.US_ASCII), payload);
        }
    }

    /** A FileDescriptor for a raw fd (needs --add-opens java.base/java.io=ALL-UNNAMED). */
    private static FileDescriptor descriptor(int fd) throws Exception {
        Constructor<FileDescriptor> c = FileDescriptor.class.getDeclaredConstructor(int.class);
        c.setAccessible(true);
        return c.newInstance(fd);
    }

    private static String readLine() throws IOException {
        int scanned = start;
        while (true) {
            for (int i = scanned; i < end; i++) {
                if (buf[i] == '\n') {
                    String s = new String(buf, start, i - start, StandardCharsets.UTF_8);
                    start = i + 1;
                    return s;
                }
            }
            if (start > 0) {
                System.arraycopy(buf, start, buf, 0, end - start);
                end -= start;
                start = 0;
            }
            scanned = end;
            if (end == buf.length) buf = java.util.Arrays.copyOf(buf, buf.length * 2);
            int n = ctlIn.read(buf, end, buf.length - end);
            if (n <= 0) return null;
            end += n;
        }
    }

    private static void send(byte[] head, byte[] payload) {
        try {
            if (payload == null || payload.length < (1 << 16)) {
                byte[] all = head;
                if (payload != null) {
                    all = new byte[head.length + payload.length];
                    System.arraycopy(head, 0, all, 0, head.length);
                    System.arraycopy(payload, 0, all, head.length, payload.length);
                }
                ctlOut.write(all);
            } else {
                ctlOut.write(head);
                ctlOut.write(payload);
            }
        } catch (IOException e) {
            // The agent is gone: nothing is left to answer.
            Runtime.getRuntime().halt(0);
        }
    }

    private static Set<Thread> threads() {
        return new HashSet<>(Thread.getAllStackTraces().keySet());
    }

    /**
     * Whether the call left a thread running: a live thread that was not there before (the
     * JVM's own and the idle workers of the common fork-join pool, which parallel streams
     * start, excepted), or a task still running in that pool. A thread on its way out is
     * given a moment.
     */
    private static boolean leaked(Set<Thread> known) {
        for (int i = 0; i < 20; i++) {
            if (!foreign(known)) return false;
            try { Thread.sleep(1); } catch (InterruptedException e) { return true; }
        }
        return true;
    }

    private static int knownCount;

    private static boolean foreign(Set<Thread> known) {
        if (!ForkJoinPool.commonPool().isQuiescent()) return true;
        // The cheap check first: the count of the main thread group's threads.
        if (Thread.activeCount() <= knownCount) return false;
        // Thread.activeCount() is the cheap check: the main group's threads.
        for (Thread t : Thread.getAllStackTraces().keySet()) {
            if (known.contains(t) || !t.isAlive()) continue;
            if (t instanceof java.util.concurrent.ForkJoinWorkerThread
                    && ((java.util.concurrent.ForkJoinWorkerThread) t).getPool() == ForkJoinPool.commonPool()) continue;
            ThreadGroup g = t.getThreadGroup();
            if (g != null && g.getName().equals("system") && t.getName().startsWith("Common-Cleaner")) continue;
            return true;
        }
        return false;
    }
}
