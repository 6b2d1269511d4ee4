package codebeaker;

import java.io.FileOutputStream;
import java.io.IOException;
import java.io.PrintStream;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.nio.charset.StandardCharsets;
import java.nio.file.Files;
import java.nio.file.Paths;
import java.util.List;
import java.util.Map;

/**
 * The base class of an edge-contract program (languages/java/edge.java): its static
 * helpers are in scope in the user's code, unqualified.
 */
public class Edge {
    protected Edge() {}

    /** The value of `result` before the code assigns it: no output file. */
    public static final Object UNSET = new Object() {
        @Override public String toString() { return "(result not set)"; }
    };

    static final String INPUT = "/workspace/input.json";
    static final String OUTPUT = "/workspace/output.json";

    // --- The call-mode program (main of the template) -----------------------------------

    /** The parsed input.json: a JSON object. */
    @SuppressWarnings("unchecked")
    public static Map<String, Object> input() throws IOException {
        return inputOf(new String(Files.readAllBytes(Paths.get(INPUT)), StandardCharsets.UTF_8));
    }

    @SuppressWarnings("unchecked")
    public static Map<String, Object> inputOf(String text) {
        Object v = Json.parse(text);
        if (!(v instanceof Map)) {
            System.err.println("codebeaker: input is not a JSON object");
            System.exit(1);
        }
        return (Map<String, Object>) v;
    }

    /** Writes output.json for a result (nothing if it was not set). */
    public static void output(Object result) throws IOException {
        if (result == UNSET) return;
        String text = serialize(result);
        if (text == null) System.exit(1);
        try (FileOutputStream f = new FileOutputStream(OUTPUT)) {
            f.write(text.getBytes(StandardCharsets.UTF_8));
        }
    }

    /** The result's JSON, or null after a `codebeaker:` line on stderr. */
    public static String serialize(Object result) {
        try {
            return Json.stringify(result);
        } catch (Json.NotSerializable e) {
            System.err.println("codebeaker: result is not JSON-serializable: " + e.getMessage());
            return null;
        } catch (StackOverflowError e) {
            System.err.println("codebeaker: result is not JSON-serializable: nested too deeply");
            return null;
        }
    }

    // --- Helpers for the user's code ------------------------------------------------------

    /** A JSON number as an int (a double is truncated; a numeric string is parsed). */
    public static int asInt(Object v) {
        if (v instanceof Number) return ((Number) v).intValue();
        if (v instanceof String) return Integer.parseInt(((String) v).trim());
        throw notA("number", v);
    }

    public static long asLong(Object v) {
        if (v instanceof Number) return ((Number) v).longValue();
        if (v instanceof String) return Long.parseLong(((String) v).trim());
        throw notA("number", v);
    }

    public static double asDouble(Object v) {
        if (v instanceof Number) return ((Number) v).doubleValue();
        if (v instanceof String) return Double.parseDouble(((String) v).trim());
        throw notA("number", v);
    }

    public static BigInteger asBigInteger(Object v) {
        if (v instanceof BigInteger) return (BigInteger) v;
        if (v instanceof Integer || v instanceof Long) return BigInteger.valueOf(((Number) v).longValue());
        if (v instanceof Number) return new BigDecimal(v.toString()).toBigInteger();
        if (v instanceof String) return new BigInteger(((String) v).trim());
        throw notA("number", v);
    }

    public static boolean asBoolean(Object v) {
        if (v instanceof Boolean) return (Boolean) v;
        throw notA("boolean", v);
    }

    /** A string as is; anything else (null included) as its JSON text. */
    public static String asString(Object v) {
        if (v instanceof String) return (String) v;
        return Json.stringify(v);
    }

    @SuppressWarnings("unchecked")
    public static Map<String, Object> asMap(Object v) {
        if (v instanceof Map) return (Map<String, Object>) v;
        throw notA("JSON object (Map)", v);
    }

    @SuppressWarnings("unchecked")
    public static List<Object> asList(Object v) {
        if (v instanceof List) return (List<Object>) v;
        throw notA("JSON array (List)", v);
    }

    /**
     * The value at a path of keys (String) and indexes (Integer): get(input_data, "a", 0, "b")
     * is input_data.a[0].b in JavaScript. Null if any step is missing.
     */
    public static Object get(Object v, Object... path) {
        for (Object k : path) {
            if (v instanceof Map) v = ((Map<?, ?>) v).get(k instanceof String ? k : String.valueOf(k));
            else if (v instanceof List && k instanceof Integer) {
                List<?> l = (List<?>) v;
                int i = (Integer) k;
                v = i >= 0 && i < l.size() ? l.get(i) : null;
            } else return null;
        }
        return v;
    }

    /** JSON text of any value (Json.stringify). */
    public static String toJson(Object v) { return Json.stringify(v); }

    /** A JSON text's value (Json.parse). */
    public static Object fromJson(String text) { return Json.parse(text); }

    private static ClassCastException notA(String what, Object v) {
        return new ClassCastException("expected a " + what + ", got "
                + (v == null ? "null" : v.getClass().getSimpleName() + " " + Json.stringify(safe(v))));
    }

    private static Object safe(Object v) {
        try { Json.stringify(v); return v; } catch (RuntimeException e) { return String.valueOf(v); }
    }
}
