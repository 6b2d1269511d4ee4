package codebeaker;

import java.io.BufferedOutputStream;
import java.io.FileDescriptor;
import java.io.FileOutputStream;
import java.io.PrintStream;
import java.lang.reflect.InvocationTargetException;
import java.lang.reflect.Method;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.List;
import java.util.jar.JarFile;

/** A compiled program jar loaded in a class loader of its own; shared by Launcher and Instance. */
final class Program {
    final Class<?> main;
    final ClassLoader loader;

    Program(String jar) throws Exception {
        String name;
        try (JarFile j = new JarFile(jar)) {
            name = j.getManifest().getMainAttributes().getValue("Main-Class");
        }
        if (name == null) throw new IllegalStateException(jar + " has no Main-Class");
        loader = new URLClassLoader(new URL[] {Paths.get(jar).toUri().toURL()}, Program.class.getClassLoader());
        main = Class.forName(name, false, loader);
    }

    Method mainMethod() throws NoSuchMethodException {
        Method m = main.getMethod("main", String[].class);
        m.setAccessible(true);
        return m;
    }

    /**
     * System.out and System.err as `java Main` has them, with a larger buffer for stdout (it
     * is flushed at each println there; here at exit, at System.exit and after each call).
     */
    static void streams() {
        System.setOut(new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.out), 1 << 16), false, StandardCharsets.UTF_8));
        System.setErr(new PrintStream(new BufferedOutputStream(new FileOutputStream(FileDescriptor.err), 1 << 13), true, StandardCharsets.UTF_8));
        Runtime.getRuntime().addShutdownHook(new Flusher());
    }

    /** (A class, not a lambda: a lambda's first use spins classes, milliseconds of it.) */
    private static final class Flusher extends Thread {
        Flusher() { super("codebeaker-flush"); }
        @Override public void run() { flush(); }
    }

    static void flush() {
        System.out.flush();
        System.err.flush();
    }

    /**
     * An exception out of the program, printed as the JVM prints an uncaught one, without the
     * frames of this runner and of reflection below the program's method.
     */
    static void uncaught(Throwable e) {
        if (e instanceof InvocationTargetException && e.getCause() != null) e = e.getCause();
        trim(e);
        System.out.flush();
        System.err.print("Exception in thread \"main\" ");
        e.printStackTrace(System.err);
        System.err.flush();
    }

    private static void trim(Throwable e) {
        java.util.Set<Throwable> seen = java.util.Collections.newSetFromMap(new java.util.IdentityHashMap<>());
        trim(e, seen);
    }

    private static void trim(Throwable e, java.util.Set<Throwable> seen) {
        if (e == null || !seen.add(e)) return;
        trimOne(e);
        trim(e.getCause(), seen);
        for (Throwable s : e.getSuppressed()) trim(s, seen);
    }

    private static void trimOne(Throwable e) {
        StackTraceElement[] st = e.getStackTrace();
        int end = st.length;
        for (int i = 0; i < st.length; i++) {
            String c = st[i].getClassName();
            if (c.startsWith("jdk.internal.reflect.") || c.startsWith("java.lang.reflect.Method")
                    || c.startsWith("java.lang.invoke.") || c.startsWith("codebeaker.")) {
                end = i;
                break;
            }
        }
        if (end < st.length) {
            List<StackTraceElement> keep = new ArrayList<>(List.of(st).subList(0, end));
            e.setStackTrace(keep.toArray(new StackTraceElement[0]));
        }
    }
}
