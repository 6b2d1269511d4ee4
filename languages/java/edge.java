/*codebeaker:edge*/ import java.io.*; import java.math.*; import java.nio.charset.StandardCharsets; import java.nio.file.*; import java.time.*; import java.util.*; import java.util.concurrent.*; import java.util.concurrent.atomic.*; import java.util.function.*; import java.util.regex.*; import java.util.stream.*; import codebeaker.Json; @SuppressWarnings({"unchecked", "rawtypes"}) public class Main extends codebeaker.Edge { public static Object __cbCall(Map<String, Object> input_data) throws Exception { Object result = UNSET; if (true) {
{{code}}
    }
    return result;
  }

  public static void main(String[] args) throws Exception {
    output(__cbCall(input()));
  }
}

/* CodeBeaker edge contract for Java (the first line is the header: line N of the user's code
 * is line N of the compiled file, in compiler messages and stack traces alike).
 *
 * The code is the body of a static method: `input_data` (a Map<String, Object>) is the parsed
 * input JSON object, and the code assigns `result` (an Object: don't declare it), which is
 * written as JSON. No assignment: no result. Example, with input {"x": 41, "user": {"name":
 * "Ada", "tags": ["a", "b"]}, "prices": [1.5, 2]}:
 *
 *     int x = (int) input_data.get("x");                      // JSON integers are Integer
 *     var user = asMap(input_data.get("user"));               // Map<String, Object>
 *     List<Object> tags = asList(user.get("tags"));           // List<Object>
 *     double total = 0;
 *     for (Object p : asList(input_data.get("prices"))) total += asDouble(p);
 *     result = Map.of("y", x + 1, "name", (String) user.get("name"), "tags", tags.size(),
 *                     "total", total, "deep", get(input_data, "user", "tags", 0));
 *
 * JSON values arrive as Jackson's readValue(text, Object.class) gives them: object =
 * LinkedHashMap<String, Object>, array = ArrayList<Object>, string = String, true/false =
 * Boolean, null = null, integer = Integer (Long, BigInteger when larger), other numbers =
 * Double. Casts such as `(int) input_data.get("x")`, `(String) ...`, `(List<Integer>) ...`,
 * `(Map<String, Object>) ...` work (unchecked warnings are off). The helpers asInt, asLong,
 * asDouble, asBigInteger, asBoolean, asString, asMap, asList, get(value, key-or-index...),
 * toJson and fromJson take any JSON value (asDouble(2) is 2.0). `result` may be any of those
 * values and also any Map, Collection, array (primitive too), record, enum, Optional, Number,
 * Character; anything else is an error on stderr ("codebeaker: result is not
 * JSON-serializable: ...") with exit code 1. The library is codebeaker.Json (parse,
 * stringify), CodeBeaker's own (no Jackson: it loads in a fraction of the time).
 *
 * Imported: java.util.*, java.util.function.*, java.util.stream.*, java.util.regex.*,
 * java.util.concurrent.* (and .atomic.*), java.io.*, java.nio.file.*, java.math.*, java.time.*,
 * StandardCharsets. More `import` lines may head the code: they are moved up here. The code
 * cannot declare methods (a statement body): use lambdas, or local records, classes and
 * interfaces. Checked exceptions may be thrown. Don't `return` from the code.
 *
 * A resident instance ("isolation": "program") runs this same program: each call is one call
 * of __cbCall, so local variables are fresh per call while static state (of the JDK's classes
 * or of your local classes) persists between calls; System.exit(n) ends the call with n.
 */
