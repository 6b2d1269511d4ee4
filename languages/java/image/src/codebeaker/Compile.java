package codebeaker;

import java.io.ByteArrayOutputStream;
import java.io.File;
import java.io.FileOutputStream;
import java.io.IOException;
import java.io.OutputStream;
import java.io.PrintWriter;
import java.lang.reflect.Method;
import java.lang.reflect.Modifier;
import java.net.URL;
import java.net.URLClassLoader;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Path;
import java.nio.file.Paths;
import java.util.ArrayList;
import java.util.Comparator;
import java.util.List;
import java.util.jar.Attributes;
import java.util.jar.JarEntry;
import java.util.jar.JarOutputStream;
import java.util.jar.Manifest;
import java.util.regex.Matcher;
import java.util.regex.Pattern;
import java.util.stream.Stream;
import javax.tools.JavaCompiler;
import javax.tools.ToolProvider;

/**
 * The Java compile step: `Compile SOURCE ARTIFACT` compiles one source file with javac (in this
 * JVM: one start-up, not javac's and jar's) and writes ARTIFACT, a jar whose Main-Class is the
 * program's class with `main`.
 *
 * <p>javac wants a file named after its public class: the source is copied to
 * /tmp/…/NAME.java, NAME the first public top-level class (or interface, enum, record);
 * without one, the file is Main.java and the main class is the top-level class declaring
 * `public static void main(String[])`. An edge-contract source (line 1 starts with
 * `/*codebeaker:edge* /`) has the user's `import` lines moved onto line 1 and line 2 (the
 * user's first line) joined to line 1, so user line N is line N of the file.
 */
public final class Compile {
    static final String EDGE_MARK = "/*codebeaker:edge*/";
    static final Pattern IMPORT = Pattern.compile("^\\s*import\\s+(static\\s+)?[\\p{L}\\p{N}_$.]+(\\s*\\.\\s*\\*)?\\s*;\\s*$");
    static final Pattern PUBLIC_TYPE = Pattern.compile(
            "\\bpublic\\s+(?:(?:final|abstract|static|strictfp|sealed|non-sealed)\\s+)*(?:class|interface|enum|record|@interface)\\s+([\\p{L}_$][\\p{L}\\p{N}_$]*)");
    static final Pattern LIB = Pattern.compile("[^:]+");

    public static void main(String[] args) throws Exception {
        if (args.length != 2) {
            System.err.println("usage: Compile SOURCE ARTIFACT");
            System.exit(2);
        }
        System.exit(compile(Paths.get(args[0]), Paths.get(args[1])));
    }

    static int compile(Path sourcePath, Path artifact) throws Exception {
        String source = new String(Files.readAllBytes(sourcePath), StandardCharsets.UTF_8);
        if (source.startsWith(EDGE_MARK)) source = edge(source);
        String publicName = publicType(source);
        String fileName = (publicName != null ? publicName : "Main") + ".java";

        Path work = Files.createTempDirectory("cb-javac-");
        try {
            Path src = work.resolve(fileName);
            Files.write(src, source.getBytes(StandardCharsets.UTF_8));
            Path classes = Files.createDirectory(work.resolve("classes"));
            String cp = System.getProperty("java.class.path");
            JavaCompiler javac = ToolProvider.getSystemJavaCompiler();
            // Relative file name in messages ("Main.java:3: error: ..."), as `javac Main.java`.
            ByteArrayOutputStream msgs = new ByteArrayOutputStream();
            int rc = javac.run(null, msgs, msgs,
                    "-d", classes.toString(), "-cp", cp, "-encoding", "UTF-8",
                    "-g", "-proc:none", "-implicit:none", "-nowarn", "-Xlint:none", "-XDuseUnsharedTable=true",
                    "-sourcepath", "", src.toString());
            String text = msgs.toString(StandardCharsets.UTF_8).replace(work.toString() + File.separator, "");
            System.err.print(text);
            System.err.flush();
            if (rc != 0) return 1;
            String mainClass = mainClass(classes, publicName);
            if (mainClass == null) {
                System.err.println(fileName + ": error: no class declares public static void main(String[] args)");
                return 1;
            }
            writeJar(classes, mainClass, artifact);
            return 0;
        } finally {
            try (Stream<Path> s = Files.walk(work)) {
                s.sorted(Comparator.reverseOrder()).forEach(p -> p.toFile().delete());
            }
        }
    }

    /** The edge template's source with the user's imports on line 1, lines 1 and 2 joined. */
    static String edge(String source) {
        String[] lines = source.split("\n", -1);
        StringBuilder imports = new StringBuilder();
        for (int i = 1; i < lines.length; i++) {
            if (IMPORT.matcher(lines[i]).matches()) {
                imports.append(lines[i].trim()).append(' ');
                lines[i] = "";
            }
        }
        StringBuilder out = new StringBuilder(source.length() + imports.length());
        out.append(EDGE_MARK).append(' ').append(imports)
           .append(lines[0].substring(EDGE_MARK.length()).trim());
        if (lines.length > 1) out.append(' ').append(lines[1]);
        for (int i = 2; i < lines.length; i++) out.append('\n').append(lines[i]);
        return out.toString();
    }

    /** The first public top-level-looking type outside comments, strings and text blocks. */
    static String publicType(String source) {
        Matcher m = PUBLIC_TYPE.matcher(blank(source));
        return m.find() ? m.group(1) : null;
    }

    /** The source with comments and literals blanked (lengths kept). */
    static String blank(String s) {
        StringBuilder b = new StringBuilder(s);
        int n = s.length(), i = 0;
        while (i < n) {
            char c = s.charAt(i);
            if (c == '/' && i + 1 < n && s.charAt(i + 1) == '/') {
                while (i < n && s.charAt(i) != '\n') b.setCharAt(i++, ' ');
            } else if (c == '/' && i + 1 < n && s.charAt(i + 1) == '*') {
                int end = s.indexOf("*/", i + 2);
                end = end < 0 ? n : end + 2;
                while (i < end) b.setCharAt(i++, ' ');
            } else if (c == '"' && s.startsWith("\"\"\"", i)) {
                int end = s.indexOf("\"\"\"", i + 3);
                end = end < 0 ? n : end + 3;
                while (i < end) b.setCharAt(i++, ' ');
            } else if (c == '"' || c == '\'') {
                b.setCharAt(i++, ' ');
                while (i < n && s.charAt(i) != c && s.charAt(i) != '\n') {
                    if (s.charAt(i) == '\\' && i + 1 < n) b.setCharAt(i++, ' ');
                    b.setCharAt(i++, ' ');
                }
                if (i < n) b.setCharAt(i++, ' ');
            } else {
                i++;
            }
        }
        return b.toString();
    }

    /** The public class if it has main; else the first top-level class (by name) that does. */
    static String mainClass(Path classes, String publicName) throws IOException {
        List<String> candidates = new ArrayList<>();
        if (publicName != null) candidates.add(publicName);
        try (Stream<Path> s = Files.list(classes)) {
            s.map(p -> p.getFileName().toString())
             .filter(f -> f.endsWith(".class") && !f.contains("$"))
             .map(f -> f.substring(0, f.length() - 6))
             .sorted()
             .forEach(candidates::add);
        }
        try (URLClassLoader l = new URLClassLoader(new URL[] {classes.toUri().toURL()},
                Compile.class.getClassLoader())) {
            for (String name : candidates) {
                try {
                    Class<?> c = Class.forName(name, false, l);
                    Method m = c.getMethod("main", String[].class);
                    if (Modifier.isStatic(m.getModifiers()) && m.getReturnType() == void.class) return name;
                } catch (ReflectiveOperationException | LinkageError e) {
                    // not this one
                }
            }
        }
        return null;
    }

    static void writeJar(Path classes, String mainClass, Path artifact) throws IOException {
        Manifest mf = new Manifest();
        mf.getMainAttributes().put(Attributes.Name.MANIFEST_VERSION, "1.0");
        mf.getMainAttributes().put(Attributes.Name.MAIN_CLASS, mainClass);
        List<Path> files = new ArrayList<>();
        try (Stream<Path> s = Files.walk(classes)) {
            s.filter(Files::isRegularFile).sorted().forEach(files::add);
        }
        try (OutputStream f = new FileOutputStream(artifact.toFile());
             JarOutputStream jar = new JarOutputStream(f, mf)) {
            for (Path p : files) {
                JarEntry e = new JarEntry(classes.relativize(p).toString().replace(File.separatorChar, '/'));
                e.setTime(0);
                jar.putNextEntry(e);
                jar.write(Files.readAllBytes(p));
                jar.closeEntry();
            }
        }
    }
}
