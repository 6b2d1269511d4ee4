package codebeaker;

import java.lang.reflect.Array;
import java.lang.reflect.RecordComponent;
import java.math.BigDecimal;
import java.math.BigInteger;
import java.util.ArrayList;
import java.util.Collection;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.Optional;

/**
 * CodeBeaker's JSON for Java: a small parser and serializer, so that a call loads a handful
 * of classes instead of a JSON library's hundreds.
 *
 * <p>Parsing gives plain Java values, as Jackson's {@code readValue(text, Object.class)}
 * does: an object is a {@code LinkedHashMap<String, Object>} (key order kept), an array an
 * {@code ArrayList<Object>}, a string a {@code String}, {@code true}/{@code false} a
 * {@code Boolean}, {@code null} {@code null}, an integer an {@code Integer} if it fits, else a
 * {@code Long}, else a {@code BigInteger}, and any other number a {@code Double}.
 *
 * <p>Serializing takes those and more: any {@code Map} (keys by {@code toString()}), any
 * {@code Iterable}, Java arrays (primitive ones too), {@code CharSequence}, {@code Character},
 * any {@code Number} (a non-finite double is an error), {@code Boolean}, an enum (its name),
 * a record (an object of its components), {@code Optional} (its value or null). Anything else
 * is a {@link NotSerializable} error naming the class.
 */
public final class Json {
    private Json() {}

    /** The value something cannot be serialized because of. */
    public static final class NotSerializable extends RuntimeException {
        NotSerializable(String message) { super(message); }
    }

    public static final class ParseError extends RuntimeException {
        ParseError(String message) { super(message); }
    }

    // --- Parsing -------------------------------------------------------------------------

    public static Object parse(String text) {
        Parser p = new Parser(text);
        p.ws();
        Object v = p.value(0);
        p.ws();
        if (p.i != p.s.length()) throw p.error("unexpected data after the value");
        return v;
    }

    private static final class Parser {
        final String s;
        int i;

        Parser(String s) { this.s = s; }

        ParseError error(String what) {
            return new ParseError(what + " at offset " + i);
        }

        void ws() {
            while (i < s.length()) {
                char c = s.charAt(i);
                if (c == ' ' || c == '\n' || c == '\r' || c == '\t') i++;
                else break;
            }
        }

        Object value(int depth) {
            if (depth > 10000) throw error("nested too deeply");
            if (i >= s.length()) throw error("unexpected end of input");
            char c = s.charAt(i);
            switch (c) {
                case '{': {
                    i++;
                    Map<String, Object> m = new LinkedHashMap<>();
                    ws();
                    if (i < s.length() && s.charAt(i) == '}') { i++; return m; }
                    while (true) {
                        ws();
                        if (i >= s.length() || s.charAt(i) != '"') throw error("expected a string key");
                        String k = string();
                        ws();
                        if (i >= s.length() || s.charAt(i) != ':') throw error("expected ':'");
                        i++;
                        ws();
                        m.put(k, value(depth + 1));
                        ws();
                        if (i >= s.length()) throw error("unexpected end of input");
                        c = s.charAt(i++);
                        if (c == '}') return m;
                        if (c != ',') { i--; throw error("expected ',' or '}'"); }
                    }
                }
                case '[': {
                    i++;
                    List<Object> l = new ArrayList<>();
                    ws();
                    if (i < s.length() && s.charAt(i) == ']') { i++; return l; }
                    while (true) {
                        ws();
                        l.add(value(depth + 1));
                        ws();
                        if (i >= s.length()) throw error("unexpected end of input");
                        c = s.charAt(i++);
                        if (c == ']') return l;
                        if (c != ',') { i--; throw error("expected ',' or ']'"); }
                    }
                }
                case '"':
                    return string();
                case 't': return word("true", Boolean.TRUE);
                case 'f': return word("false", Boolean.FALSE);
                case 'n': return word("null", null);
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) return number();
                    throw error("unexpected character '" + c + "'");
            }
        }

        Object word(String w, Object v) {
            if (!s.startsWith(w, i)) throw error("unexpected word");
            i += w.length();
            return v;
        }

        String string() {
            i++; // the opening quote
            int start = i;
            // Fast path: no escapes.
            while (i < s.length()) {
                char c = s.charAt(i);
                if (c == '"') { String r = s.substring(start, i); i++; return r; }
                if (c == '\\') break;
                if (c < 0x20) throw error("control character in a string");
                i++;
            }
            StringBuilder b = new StringBuilder(s.length() - start);
            b.append(s, start, i);
            while (i < s.length()) {
                char c = s.charAt(i++);
                if (c == '"') return b.toString();
                if (c < 0x20) { i--; throw error("control character in a string"); }
                if (c != '\\') { b.append(c); continue; }
                if (i >= s.length()) break;
                char e = s.charAt(i++);
                switch (e) {
                    case '"': b.append('"'); break;
                    case '\\': b.append('\\'); break;
                    case '/': b.append('/'); break;
                    case 'b': b.append('\b'); break;
                    case 'f': b.append('\f'); break;
                    case 'n': b.append('\n'); break;
                    case 'r': b.append('\r'); break;
                    case 't': b.append('\t'); break;
                    case 'u':
                        if (i + 4 > s.length()) throw error("bad \\u escape");
                        try {
                            b.append((char) Integer.parseInt(s.substring(i, i + 4), 16));
                        } catch (NumberFormatException x) {
                            throw error("bad \\u escape");
                        }
                        i += 4;
                        break;
                    default: i--; throw error("bad escape");
                }
            }
            throw error("unterminated string");
        }

        Object number() {
            int start = i;
            if (s.charAt(i) == '-') i++;
            boolean integral = true;
            int digits = i;
            while (i < s.length() && Character.isDigit(s.charAt(i)) && s.charAt(i) < 128) i++;
            if (i == digits) throw error("bad number");
            if (i < s.length() && s.charAt(i) == '.') {
                integral = false;
                i++;
                int f = i;
                while (i < s.length() && s.charAt(i) >= '0' && s.charAt(i) <= '9') i++;
                if (i == f) throw error("bad number");
            }
            if (i < s.length() && (s.charAt(i) == 'e' || s.charAt(i) == 'E')) {
                integral = false;
                i++;
                if (i < s.length() && (s.charAt(i) == '+' || s.charAt(i) == '-')) i++;
                int f = i;
                while (i < s.length() && s.charAt(i) >= '0' && s.charAt(i) <= '9') i++;
                if (i == f) throw error("bad number");
            }
            String t = s.substring(start, i);
            if (!integral) return Double.parseDouble(t);
            int n = t.length() - (t.charAt(0) == '-' ? 1 : 0);
            if (n <= 9) return Integer.parseInt(t);
            if (n <= 18) {
                long v = Long.parseLong(t);
                if (v >= Integer.MIN_VALUE && v <= Integer.MAX_VALUE) return (int) v;
                return v;
            }
            BigInteger big = new BigInteger(t);
            if (big.bitLength() < 64) return big.longValue();
            return big;
        }
    }

    // --- Serializing ---------------------------------------------------------------------

    public static String stringify(Object value) {
        StringBuilder b = new StringBuilder();
        write(b, value, 0);
        return b.toString();
    }

    private static void write(StringBuilder b, Object v, int depth) {
        if (depth > 1000) throw new NotSerializable("nested deeper than 1000 levels (a cycle?)");
        if (v == null) { b.append("null"); return; }
        if (v instanceof CharSequence) { quote(b, v.toString()); return; }
        if (v instanceof Boolean) { b.append(((Boolean) v).booleanValue()); return; }
        if (v instanceof Integer || v instanceof Long || v instanceof Short || v instanceof Byte
                || v instanceof BigInteger) {
            b.append(v.toString());
            return;
        }
        if (v instanceof Double || v instanceof Float) {
            double d = ((Number) v).doubleValue();
            if (Double.isNaN(d) || Double.isInfinite(d))
                throw new NotSerializable("the number " + d + " has no JSON form");
            b.append(v.toString());
            return;
        }
        if (v instanceof BigDecimal) { b.append(((BigDecimal) v).toString()); return; }
        if (v instanceof Number) {
            // AtomicInteger, LongAdder, ...: by their double value if not integral.
            Number n = (Number) v;
            if (n.doubleValue() == n.longValue()) b.append(n.longValue());
            else write(b, n.doubleValue(), depth);
            return;
        }
        if (v instanceof Character) { quote(b, v.toString()); return; }
        if (v instanceof Map) {
            b.append('{');
            boolean first = true;
            for (Map.Entry<?, ?> e : ((Map<?, ?>) v).entrySet()) {
                if (!first) b.append(',');
                first = false;
                quote(b, String.valueOf(e.getKey()));
                b.append(':');
                write(b, e.getValue(), depth + 1);
            }
            b.append('}');
            return;
        }
        if (v instanceof Iterable) {
            b.append('[');
            boolean first = true;
            for (Object x : (Iterable<?>) v) {
                if (!first) b.append(',');
                first = false;
                write(b, x, depth + 1);
            }
            b.append(']');
            return;
        }
        Class<?> c = v.getClass();
        if (c.isArray()) {
            b.append('[');
            int n = Array.getLength(v);
            for (int k = 0; k < n; k++) {
                if (k > 0) b.append(',');
                write(b, Array.get(v, k), depth + 1);
            }
            b.append(']');
            return;
        }
        if (v instanceof Enum) { quote(b, ((Enum<?>) v).name()); return; }
        if (v instanceof Optional) { write(b, ((Optional<?>) v).orElse(null), depth + 1); return; }
        if (c.isRecord()) {
            b.append('{');
            boolean first = true;
            for (RecordComponent rc : c.getRecordComponents()) {
                if (!first) b.append(',');
                first = false;
                quote(b, rc.getName());
                b.append(':');
                Object x;
                try {
                    var m = rc.getAccessor();
                    m.setAccessible(true);
                    x = m.invoke(v);
                } catch (ReflectiveOperationException | RuntimeException e) {
                    throw new NotSerializable("cannot read record component " + rc.getName() + " of " + c.getName() + ": " + e);
                }
                write(b, x, depth + 1);
            }
            b.append('}');
            return;
        }
        throw new NotSerializable("a " + c.getName() + " has no JSON form (use a Map, List, array, String, number, boolean, record or null)");
    }

    private static final char[] HEX = "0123456789abcdef".toCharArray();

    private static void quote(StringBuilder b, String s) {
        b.append('"');
        int n = s.length();
        for (int k = 0; k < n; k++) {
            char c = s.charAt(k);
            switch (c) {
                case '"': b.append("\\\""); break;
                case '\\': b.append("\\\\"); break;
                case '\n': b.append("\\n"); break;
                case '\r': b.append("\\r"); break;
                case '\t': b.append("\\t"); break;
                default:
                    if (c < 0x20 || (Character.isSurrogate(c) && !validSurrogate(s, k))) {
                        b.append("\\u").append(HEX[c >> 12]).append(HEX[(c >> 8) & 15])
                         .append(HEX[(c >> 4) & 15]).append(HEX[c & 15]);
                    } else {
                        b.append(c);
                    }
            }
        }
        b.append('"');
    }

    /** A surrogate that is half of a proper pair (a lone one is written escaped). */
    private static boolean validSurrogate(String s, int k) {
        char c = s.charAt(k);
        if (Character.isHighSurrogate(c)) return k + 1 < s.length() && Character.isLowSurrogate(s.charAt(k + 1));
        return k > 0 && Character.isHighSurrogate(s.charAt(k - 1));
    }
}
