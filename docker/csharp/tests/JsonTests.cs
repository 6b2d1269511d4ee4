// Self-checking tests for the System.Text.Json subset. The last line printed is
// "N passed, M failed"; the exit code is 0 only when nothing failed.
using System;
using System.Collections.Generic;
using System.Globalization;
using System.Linq;
using System.Text.Json;
using System.Text.Json.Serialization;

public class Poco
{
    public int Id { get; set; }
    public string Name { get; set; }
    public List<int> Scores { get; set; }
    public Poco Child { get; set; }
    public double? Ratio { get; set; }
}

public class Renamed
{
    [JsonPropertyName("full_name")] public string FullName { get; set; }
    [JsonIgnore] public string Secret { get; set; }
    public int FirstValue { get; set; }
    public string Nothing { get; set; }
}

public class WithFields
{
    public int A = 1;
    public string B = "b";
    public int P { get; set; }
}

public class Base { public int BaseProp { get; set; } }
public class Derived : Base { public int DerivedProp { get; set; } }

public class ImmutablePoint
{
    public ImmutablePoint(int x, int y) { X = x; Y = y; }
    public int X { get; private set; }
    public int Y { get; private set; }
}

public enum Color { Red = 0, Green = 1, Blue = 7 }

public class Node { public int V { get; set; } public Node Next { get; set; } }

public static class JsonTests
{
    static int passed, failed;

    static void Check(string name, bool ok, string detail = null)
    {
        if (ok) { passed++; return; }
        failed++;
        Console.WriteLine("FAIL " + name + (detail != null ? ": " + detail : ""));
    }

    static void Eq<T>(string name, T expected, T actual)
    {
        bool ok = EqualityComparer<T>.Default.Equals(expected, actual);
        Check(name, ok, "expected <" + expected + "> actual <" + actual + ">");
    }

    static void Throws<TEx>(string name, Action a) where TEx : Exception
    {
        try { a(); }
        catch (TEx) { passed++; return; }
        catch (Exception e) { failed++; Console.WriteLine("FAIL " + name + ": expected " + typeof(TEx).Name + " actual " + e.GetType().Name + ": " + e.Message); return; }
        failed++;
        Console.WriteLine("FAIL " + name + ": expected " + typeof(TEx).Name + ", nothing thrown");
    }

    static void Run(string name, Action a)
    {
        try { a(); }
        catch (Exception e) { failed++; Console.WriteLine("FAIL " + name + ": unexpected " + e.GetType().Name + ": " + e.Message); }
    }

    static JsonElement Parse(string s) { return JsonDocument.Parse(s).RootElement; }

    public static int Main()
    {
        Run("client program shape", ClientShape);
        Run("numbers", Numbers);
        Run("nesting", Nesting);
        Run("unicode", Unicode);
        Run("escaping", Escaping);
        Run("anonymous", Anonymous);
        Run("collections", Collections);
        Run("deserialize", DeserializeTests);
        Run("raw text", RawAndToString);
        Run("enumerate", Enumerate);
        Run("invalid", Invalid);
        Run("options", OptionsTests);
        Run("doubles", Doubles);
        Run("misc", Misc);
        Console.WriteLine(passed + " passed, " + failed + " failed");
        return failed == 0 ? 0 : 1;
    }

    static void ClientShape()
    {
        var inputJson = "{\"value\": 21}";
        var input_data = JsonSerializer.Deserialize<JsonElement>(inputJson);
        var value = input_data.GetProperty("value").GetInt32();
        var result = new { output = value * 2 };
        Eq("client output", "{\"output\":42}", JsonSerializer.Serialize(result));
    }

    static void Numbers()
    {
        Eq("int", 42, Parse("42").GetInt32());
        Eq("negative int", -17, Parse("-17").GetInt32());
        Eq("int max", int.MaxValue, Parse("2147483647").GetInt32());
        Eq("int min", int.MinValue, Parse("-2147483648").GetInt32());
        Eq("-0 int", 0, Parse("-0").GetInt32());
        Throws<FormatException>("int overflow", () => Parse("2147483648").GetInt32());
        Throws<FormatException>("21.0 not int", () => Parse("21.0").GetInt32());
        Throws<FormatException>("1e2 not int", () => Parse("1e2").GetInt32());
        Throws<InvalidOperationException>("GetInt32 on string", () => Parse("\"5\"").GetInt32());
        int iv;
        Check("TryGetInt32 overflow false", !Parse("3000000000").TryGetInt32(out iv));
        Check("TryGetInt32 ok", Parse("7").TryGetInt32(out iv) && iv == 7);
        Eq("int64 big", 9007199254740993L, Parse("9007199254740993").GetInt64());
        Eq("int64 max", long.MaxValue, Parse("9223372036854775807").GetInt64());
        Throws<FormatException>("int64 overflow", () => Parse("9223372036854775808").GetInt64());
        Eq("uint64 max", ulong.MaxValue, Parse("18446744073709551615").GetUInt64());
        Throws<FormatException>("uint32 negative", () => Parse("-1").GetUInt32());
        Eq("byte", (byte)255, Parse("255").GetByte());
        Throws<FormatException>("byte overflow", () => Parse("256").GetByte());
        Eq("int16", (short)-300, Parse("-300").GetInt16());
        Eq("decimal", 1.50m, Parse("1.50").GetDecimal());
        Eq("decimal keeps scale", "1.50", Parse("1.50").GetDecimal().ToString(CultureInfo.InvariantCulture));
        Eq("decimal big", 79228162514264337593543950335m, Parse("79228162514264337593543950335").GetDecimal());
        Eq("decimal exponent", 100m, Parse("1e2").GetDecimal());
        Throws<FormatException>("decimal overflow", () => Parse("1e40").GetDecimal());
        Eq("double", 3.25, Parse("3.25").GetDouble());
        Eq("double exp", 1.5e-7, Parse("1.5E-7").GetDouble());
        Eq("double exp+", 2e300, Parse("2e+300").GetDouble());
        Eq("double from int", 21.0, Parse("21").GetDouble());
        Throws<FormatException>("double overflow", () => Parse("1e400").GetDouble());
        Eq("double underflow to 0", 0.0, Parse("1e-400").GetDouble());
        Eq("double 0.1", 0.1, Parse("0.1").GetDouble());
        Eq("double correctly rounded (halfway+)", 1.0000000000000002, Parse("1.00000000000000011102230246251565404236316680908203126").GetDouble());
        Eq("double correctly rounded (halfway)", 1.0, Parse("1.00000000000000011102230246251565404236316680908203125").GetDouble());
        Eq("double min subnormal", double.Epsilon, Parse("5e-324").GetDouble());
        Eq("double max", double.MaxValue, Parse("1.7976931348623157e308").GetDouble());
        Eq("2^53+1 rounds to even", 9007199254740992.0, Parse("9007199254740993").GetDouble());
        Eq("single", 0.1f, Parse("0.1").GetSingle());
        Throws<FormatException>("single overflow", () => Parse("1e39").GetSingle());
        double dv;
        Check("TryGetDouble", Parse("-2.5").TryGetDouble(out dv) && dv == -2.5);
        decimal mv;
        Check("TryGetDecimal", Parse("12.345").TryGetDecimal(out mv) && mv == 12.345m);
        long lv;
        Check("TryGetInt64 fraction false", !Parse("1.5").TryGetInt64(out lv));
    }

    static void Nesting()
    {
        var root = Parse("{\"a\":[{\"b\":{\"c\":[1,2,{\"d\":\"deep\"}]}},{\"b\":null}],\"n\":{}}");
        Eq("deep get", "deep", root.GetProperty("a")[0].GetProperty("b").GetProperty("c")[2].GetProperty("d").GetString());
        Eq("null kind", JsonValueKind.Null, root.GetProperty("a")[1].GetProperty("b").ValueKind);
        Eq("array length", 2, root.GetProperty("a").GetArrayLength());
        Eq("empty object kind", JsonValueKind.Object, root.GetProperty("n").ValueKind);
        Throws<KeyNotFoundException>("missing property", () => root.GetProperty("zzz"));
        Throws<InvalidOperationException>("GetProperty on array", () => root.GetProperty("a").GetProperty("x"));
        Throws<IndexOutOfRangeException>("index out of range", () => { var x = root.GetProperty("a")[5]; });
        Throws<InvalidOperationException>("GetArrayLength on object", () => root.GetArrayLength());
        JsonElement found;
        Check("TryGetProperty hit", root.TryGetProperty("n", out found) && found.ValueKind == JsonValueKind.Object);
        Check("TryGetProperty miss", !root.TryGetProperty("nope", out found) && found.ValueKind == JsonValueKind.Undefined);
        Eq("duplicate last wins", 2, Parse("{\"k\":1,\"k\":2}").GetProperty("k").GetInt32());
        Eq("case sensitive property", false, Parse("{\"Key\":1}").TryGetProperty("key", out found));
        Eq("bool true", true, Parse("true").GetBoolean());
        Eq("bool false", false, Parse(" false ").GetBoolean());
        Throws<InvalidOperationException>("GetBoolean on number", () => Parse("1").GetBoolean());
        Eq("GetString null", null, Parse("null").GetString());
        Throws<InvalidOperationException>("GetString on number", () => Parse("1").GetString());
        var nested = new { outer = new object[] { new { x = 1 }, new[] { new { y = "z" } } } };
        Eq("nested serialize", "{\"outer\":[{\"x\":1},[{\"y\":\"z\"}]]}", JsonSerializer.Serialize(nested));
        string deep64 = new string('[', 64) + new string(']', 64);
        Eq("depth 64 ok", JsonValueKind.Array, Parse(deep64).ValueKind);
    }

    static void Unicode()
    {
        Eq("non-ascii passthrough", "héllo wörld ✓", Parse("\"héllo wörld ✓\"").GetString());
        Eq("\\u escape", "é", Parse("\"\\u00e9\"").GetString());
        Eq("\\u escape upper", "é", Parse("\"\\u00E9\"").GetString());
        Eq("surrogate pair escape", "😀", Parse("\"\\ud83d\\ude00\"").GetString());
        Eq("raw emoji", "😀", Parse("\"😀\"").GetString());
        Eq("simple escapes", "a\"b\\c/d\b\f\n\r\t", Parse("\"a\\\"b\\\\c\\/d\\b\\f\\n\\r\\t\"").GetString());
        Throws<InvalidOperationException>("lone surrogate GetString", () => Parse("\"\\ud800\"").GetString());
        Eq("serialize non-ascii", "\"h\\u00E9llo\"", JsonSerializer.Serialize("héllo"));
        Eq("serialize emoji", "\"\\uD83D\\uDE00\"", JsonSerializer.Serialize("😀"));
        Eq("serialize CJK", "\"\\u4E2D\\u6587\"", JsonSerializer.Serialize("中文"));
        string original = "Zoë 😀 中文 \"q\" \\ \n";
        Eq("round trip", original, JsonSerializer.Deserialize<string>(JsonSerializer.Serialize(original)));
        Eq("unicode property name", 1, Parse("{\"clé\":1}").GetProperty("clé").GetInt32());
        Eq("escaped property name", 2, Parse("{\"a\\u0062\":2}").GetProperty("ab").GetInt32());
    }

    static void Escaping()
    {
        Eq("quote", "\"a\\u0022b\"", JsonSerializer.Serialize("a\"b"));
        Eq("backslash", "\"a\\\\b\"", JsonSerializer.Serialize("a\\b"));
        Eq("control short", "\"\\b\\f\\n\\r\\t\"", JsonSerializer.Serialize("\b\f\n\r\t"));
        Eq("control u", "\"\\u0000\\u001F\\u007F\"", JsonSerializer.Serialize("\u0000\u001f\u007f"));
        Eq("html", "\"\\u003C\\u003E\\u0026\\u0027\\u002B\\u0060\"", JsonSerializer.Serialize("<>&'+`"));
        Eq("safe ascii", "\"a-z A_Z 0.9/~!@#$%^*()[]{}|=?:;,\"", JsonSerializer.Serialize("a-z A_Z 0.9/~!@#$%^*()[]{}|=?:;,"));
        Eq("property name escaped", "{\"a\\u003Cb\":1}", JsonSerializer.Serialize(new Dictionary<string, int> { { "a<b", 1 } }));
        Eq("char", "\"x\"", JsonSerializer.Serialize('x'));
        Eq("null string", "null", JsonSerializer.Serialize<string>(null));
    }

    static void Anonymous()
    {
        var v = new { output = 42, name = "x", list = new[] { 1, 2 }, nested = new { a = true } };
        Eq("anonymous exact", "{\"output\":42,\"name\":\"x\",\"list\":[1,2],\"nested\":{\"a\":true}}", JsonSerializer.Serialize(v));
        Eq("anonymous as object", "{\"output\":42,\"name\":\"x\",\"list\":[1,2],\"nested\":{\"a\":true}}", JsonSerializer.Serialize((object)v));
        Eq("anonymous nulls", "{\"s\":null,\"n\":null}", JsonSerializer.Serialize(new { s = (string)null, n = (int?)null }));
        Eq("nullable with value", "{\"n\":5}", JsonSerializer.Serialize(new { n = (int?)5 }));
        Eq("all ints", "[1,2,3,4,5,6,7,-8]", JsonSerializer.Serialize(new object[] { (byte)1, (sbyte)2, (short)3, (ushort)4, 5u, 6L, 7UL, -8 }));
        Eq("bools", "[true,false]", JsonSerializer.Serialize(new[] { true, false }));
        Eq("decimal", "[1.50,-0.001,100]", JsonSerializer.Serialize(new[] { 1.50m, -0.001m, 100m }));
        Eq("enum as number", "{\"c\":7}", JsonSerializer.Serialize(new { c = Color.Blue }));
        Eq("value tuple has no properties", "{}", JsonSerializer.Serialize((1, 2)));
        Eq("derived declared", "{\"DerivedProp\":2,\"BaseProp\":1}", JsonSerializer.Serialize(new Derived { BaseProp = 1, DerivedProp = 2 }));
        Eq("declared base only", "{\"BaseProp\":1}", JsonSerializer.Serialize<Base>(new Derived { BaseProp = 1, DerivedProp = 2 }));
        Eq("object runtime type", "{\"DerivedProp\":2,\"BaseProp\":1}", JsonSerializer.Serialize<object>(new Derived { BaseProp = 1, DerivedProp = 2 }));
    }

    static void Collections()
    {
        var d = new Dictionary<string, int> { { "a", 1 }, { "b", 2 } };
        Eq("dictionary", "{\"a\":1,\"b\":2}", JsonSerializer.Serialize(d));
        Eq("dictionary int keys", "{\"1\":\"x\",\"-2\":\"y\"}", JsonSerializer.Serialize(new Dictionary<int, string> { { 1, "x" }, { -2, "y" } }));
        Eq("list", "[\"x\",\"y\"]", JsonSerializer.Serialize(new List<string> { "x", "y" }));
        Eq("empty list", "[]", JsonSerializer.Serialize(new List<int>()));
        Eq("empty dict", "{}", JsonSerializer.Serialize(new Dictionary<string, object>()));
        Eq("linq enumerable", "[2,4,6]", JsonSerializer.Serialize(new[] { 1, 2, 3 }.Select(x => x * 2)));
        Eq("dict of lists", "{\"k\":[1,2]}", JsonSerializer.Serialize(new Dictionary<string, List<int>> { { "k", new List<int> { 1, 2 } } }));
        Eq("list of dicts", "[{\"a\":null}]", JsonSerializer.Serialize(new List<Dictionary<string, object>> { new Dictionary<string, object> { { "a", null } } }));
        Eq("byte array base64", "\"AQID\"", JsonSerializer.Serialize(new byte[] { 1, 2, 3 }));
        Eq("hashset", "[5]", JsonSerializer.Serialize(new HashSet<int> { 5 }));
        Eq("camel case does not touch keys", "{\"Key\":1}", JsonSerializer.Serialize(new Dictionary<string, int> { { "Key", 1 } }, new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.CamelCase }));
    }

    static void DeserializeTests()
    {
        var d = JsonSerializer.Deserialize<Dictionary<string, int>>("{\"a\":1,\"b\":-2}");
        Eq("dict count", 2, d.Count);
        Eq("dict b", -2, d["b"]);
        var l = JsonSerializer.Deserialize<List<string>>("[\"x\",null,\"z\"]");
        Eq("list count", 3, l.Count);
        Eq("list null item", null, l[1]);
        Eq("int root", 42, JsonSerializer.Deserialize<int>(" 42 "));
        Eq("long root", 1L << 40, JsonSerializer.Deserialize<long>("1099511627776"));
        Eq("double root", 2.5, JsonSerializer.Deserialize<double>("2.5"));
        Eq("decimal root", 0.1m, JsonSerializer.Deserialize<decimal>("0.1"));
        Eq("bool root", true, JsonSerializer.Deserialize<bool>("true"));
        Eq("string root", "hi", JsonSerializer.Deserialize<string>("\"hi\""));
        Eq("string null", null, JsonSerializer.Deserialize<string>("null"));
        Eq("nullable null", null, JsonSerializer.Deserialize<int?>("null"));
        Eq("nullable value", 3, JsonSerializer.Deserialize<int?>("3"));
        Eq("array", 6, JsonSerializer.Deserialize<int[]>("[1,2,3]").Sum());
        Eq("ienumerable", 3, JsonSerializer.Deserialize<IEnumerable<int>>("[1,1,1]").Count());
        Eq("ireadonlylist", 2, JsonSerializer.Deserialize<IReadOnlyList<double>>("[1,2]").Count);
        Eq("ilist", 1, JsonSerializer.Deserialize<IList<string>>("[\"a\"]").Count);
        Eq("icollection", 9, JsonSerializer.Deserialize<ICollection<int>>("[9]").First());
        Eq("ireadonlydictionary", 5, JsonSerializer.Deserialize<IReadOnlyDictionary<string, int>>("{\"x\":5}")["x"]);
        Eq("idictionary", 6, JsonSerializer.Deserialize<IDictionary<string, int>>("{\"x\":6}")["x"]);
        Eq("nested generic", 4, JsonSerializer.Deserialize<Dictionary<string, List<int[]>>>("{\"a\":[[1],[3]]}")["a"].Sum(x => x[0]));
        Eq("dict object values are JsonElement", JsonValueKind.Array, ((JsonElement)JsonSerializer.Deserialize<Dictionary<string, object>>("{\"a\":[1]}")["a"]).ValueKind);
        Eq("object root is JsonElement", typeof(JsonElement), JsonSerializer.Deserialize<object>("{\"a\":1}").GetType());
        Eq("object null", null, JsonSerializer.Deserialize<object>("null"));
        Eq("enum from number", Color.Blue, JsonSerializer.Deserialize<Color>("7"));
        Eq("byte[] from base64", 3, JsonSerializer.Deserialize<byte[]>("\"AQID\"").Length);
        Eq("non-generic Deserialize", 5, (int)JsonSerializer.Deserialize("5", typeof(int)));

        var p = JsonSerializer.Deserialize<Poco>("{\"Id\":7,\"Name\":\"n\",\"Scores\":[1,2,3],\"Child\":{\"Id\":8},\"Ratio\":null,\"Unknown\":{\"x\":[1]}}");
        Eq("poco id", 7, p.Id);
        Eq("poco name", "n", p.Name);
        Eq("poco list", 6, p.Scores.Sum());
        Eq("poco child", 8, p.Child.Id);
        Eq("poco child name default", null, p.Child.Name);
        Eq("poco nullable", null, p.Ratio);
        var pc = JsonSerializer.Deserialize<Poco>("{\"id\":7}");
        Eq("poco case sensitive by default", 0, pc.Id);
        var pi = JsonSerializer.Deserialize<Poco>("{\"id\":7,\"NAME\":\"q\"}", new JsonSerializerOptions { PropertyNameCaseInsensitive = true });
        Eq("poco case insensitive", 7, pi.Id);
        Eq("poco case insensitive name", "q", pi.Name);
        var r = JsonSerializer.Deserialize<Renamed>("{\"full_name\":\"Ann\",\"Secret\":\"s\",\"FirstValue\":3}");
        Eq("JsonPropertyName read", "Ann", r.FullName);
        Eq("JsonIgnore read", null, r.Secret);
        var ip = JsonSerializer.Deserialize<ImmutablePoint>("{\"X\":1,\"Y\":2}");
        Eq("ctor binding", 3, ip.X + ip.Y);
        Eq("poco round trip", "{\"Id\":1,\"Name\":\"a\",\"Scores\":[1],\"Child\":null,\"Ratio\":0.5}",
            JsonSerializer.Serialize(JsonSerializer.Deserialize<Poco>("{\"Id\":1,\"Name\":\"a\",\"Scores\":[1],\"Ratio\":0.5}")));

        Throws<JsonException>("string into int", () => JsonSerializer.Deserialize<int>("\"5\""));
        Throws<JsonException>("float into int", () => JsonSerializer.Deserialize<int>("5.0"));
        Throws<JsonException>("overflow into int", () => JsonSerializer.Deserialize<int>("3000000000"));
        Throws<JsonException>("null into int", () => JsonSerializer.Deserialize<int>("null"));
        Throws<JsonException>("number into string", () => JsonSerializer.Deserialize<string>("5"));
        Throws<JsonException>("object into list", () => JsonSerializer.Deserialize<List<int>>("{}"));
        Throws<JsonException>("enum from name", () => JsonSerializer.Deserialize<Color>("\"Red\""));
        Throws<JsonException>("invalid json to Deserialize", () => JsonSerializer.Deserialize<int>("[1,]"));
        Throws<JsonException>("empty input", () => JsonSerializer.Deserialize<int>(""));
        Throws<NotSupportedException>("interface poco", () => JsonSerializer.Deserialize<IDisposable>("{}"));
        try
        {
            JsonSerializer.Deserialize<Poco>("{\"Scores\":[1,\"x\"]}");
            Check("path message", false, "nothing thrown");
        }
        catch (JsonException e)
        {
            Check("path message", e.Message.Contains("$.Scores[1]") && e.Message.Contains("System.Int32"), e.Message);
            Eq("path property", "$.Scores[1]", e.Path);
        }
        var el = JsonSerializer.Deserialize<JsonElement>("{\"xs\":[1,2,3]}");
        Eq("element Deserialize<T>", 6, el.GetProperty("xs").Deserialize<List<int>>().Sum());
    }

    static void RawAndToString()
    {
        string src = "{ \"a\" : [ 1 , 2.50 ] , \"s\" : \"x\\ty\" , \"n\" : null , \"t\" : true }";
        var root = Parse(src);
        Eq("raw array", "[ 1 , 2.50 ]", root.GetProperty("a").GetRawText());
        Eq("raw number", "2.50", root.GetProperty("a")[1].GetRawText());
        Eq("raw string", "\"x\\ty\"", root.GetProperty("s").GetRawText());
        Eq("raw root", src, root.GetRawText());
        Eq("ToString string", "x\ty", root.GetProperty("s").ToString());
        Eq("ToString null", "", root.GetProperty("n").ToString());
        Eq("ToString true", "True", root.GetProperty("t").ToString());
        Eq("ToString false", "False", Parse("false").ToString());
        Eq("ToString number", "2.50", root.GetProperty("a")[1].ToString());
        Eq("ToString array", "[ 1 , 2.50 ]", root.GetProperty("a").ToString());
        Eq("ToString default", "", default(JsonElement).ToString());
        Eq("property ToString", "\"a\" : [ 1 , 2.50 ]", root.EnumerateObject().First().ToString());
        Eq("element reserialized", "{\"a\":[1,2.50],\"s\":\"x\\ty\",\"n\":null,\"t\":true}", JsonSerializer.Serialize(root));
        var doc = JsonDocument.Parse("[1]");
        var clone = doc.RootElement.Clone();
        doc.Dispose();
        Eq("clone survives dispose", 1, clone[0].GetInt32());
        Throws<ObjectDisposedException>("disposed document", () => { var k = doc.RootElement; });
        using (var d2 = JsonDocument.Parse("{\"q\":1}"))
            Eq("document serialize", "{\"q\":1}", JsonSerializer.Serialize(d2));
        Check("ValueEquals", Parse("\"abc\"").ValueEquals("abc"));
    }

    static void Enumerate()
    {
        var input_data = Parse("{\"xs\":[1,2,3,4],\"o\":{\"a\":1,\"b\":\"two\",\"c\":[3]}}");
        Eq("linq sum", 10, input_data.GetProperty("xs").EnumerateArray().Select(x => x.GetInt32()).Sum());
        int s = 0;
        foreach (var x in input_data.GetProperty("xs").EnumerateArray()) s += x.GetInt32();
        Eq("foreach sum", 10, s);
        Eq("linq where count", 2, input_data.GetProperty("xs").EnumerateArray().Count(x => x.GetInt32() % 2 == 0));
        Eq("linq tolist", 4, input_data.GetProperty("xs").EnumerateArray().ToList().Count);
        var names = new List<string>();
        foreach (JsonProperty p in input_data.GetProperty("o").EnumerateObject()) names.Add(p.Name + "=" + p.Value.ValueKind);
        Eq("enumerate object", "a=Number,b=String,c=Array", string.Join(",", names));
        Eq("object linq", "b", input_data.GetProperty("o").EnumerateObject().Where(p => p.Value.ValueKind == JsonValueKind.String).Select(p => p.Name).Single());
        Check("NameEquals", input_data.GetProperty("o").EnumerateObject().First().NameEquals("a"));
        var e = input_data.GetProperty("xs").EnumerateArray();
        Eq("enumerator reusable", 4, e.Count() + 0 * e.Count());
        Throws<InvalidOperationException>("EnumerateArray on object", () => input_data.EnumerateArray());
        Throws<InvalidOperationException>("EnumerateObject on array", () => input_data.GetProperty("xs").EnumerateObject());
    }

    static void Invalid()
    {
        string[] bad = {
            "[1,2,]", "{\"a\":1,}", "// c\n1", "/* c */ 1", "1 2", "{} {}", "\"abc", "", "   ",
            "{'a':1}", "{a:1}", "[01]", "1.", ".5", "+1", "-", "1e", "tru", "nul", "NaN", "Infinity",
            "[1 2]", "{\"a\" 1}", "{\"a\":}", "[", "]", "\"a\nb\"", "\"\\x\"", "\"\\u12G4\"", "[1,,2]", "\u00a01",
        };
        foreach (string b in bad)
            Throws<JsonException>("invalid " + b.Replace("\n", "\\n"), () => JsonDocument.Parse(b));
        string deep65 = new string('[', 65) + new string(']', 65);
        Throws<JsonException>("depth 65", () => JsonDocument.Parse(deep65));
        Throws<JsonException>("depth 65 objects", () => JsonDocument.Parse(string.Concat(Enumerable.Repeat("{\"a\":", 65)) + "1" + new string('}', 65)));
        try { JsonDocument.Parse("[1,\n 2 x]"); Check("error position", false, "nothing thrown"); }
        catch (JsonException e)
        {
            Check("error position", e.Message.Contains("LineNumber: 1") && e.LineNumber == 1 && e.BytePositionInLine == 3, e.Message);
        }
        Throws<ArgumentNullException>("null input", () => JsonDocument.Parse((string)null));
        Eq("whitespace around", 1, JsonDocument.Parse(" \t\r\n1\n ").RootElement.GetInt32());
        var opts = new JsonDocumentOptions { AllowTrailingCommas = true, CommentHandling = JsonCommentHandling.Skip };
        Eq("options allow trailing comma + comments", 2, JsonDocument.Parse("/*x*/[1,2,]// y", opts).RootElement.GetArrayLength());
    }

    static void OptionsTests()
    {
        var o = new JsonSerializerOptions { WriteIndented = true };
        string expected = "{\n  \"a\": 1,\n  \"b\": [\n    1,\n    2\n  ],\n  \"c\": {},\n  \"d\": [],\n  \"e\": {\n    \"f\": null\n  }\n}".Replace("\n", Environment.NewLine);
        Eq("indented", expected, JsonSerializer.Serialize(new { a = 1, b = new[] { 1, 2 }, c = new { }, d = new int[0], e = new { f = (string)null } }, o));
        Eq("indented scalar", "5", JsonSerializer.Serialize(5, o));
        var camel = new JsonSerializerOptions { PropertyNamingPolicy = JsonNamingPolicy.CamelCase };
        Eq("camel", "{\"firstName\":\"a\",\"id\":1,\"urlValue\":2,\"x\":3,\"already\":4}", JsonSerializer.Serialize(new { FirstName = "a", ID = 1, URLValue = 2, X = 3, already = 4 }, camel));
        Eq("camel ConvertName", "ioStream", JsonNamingPolicy.CamelCase.ConvertName("IOStream"));
        Eq("camel read", 5, JsonSerializer.Deserialize<Poco>("{\"id\":5}", camel).Id);
        Eq("attributes write", "{\"full_name\":\"A\",\"FirstValue\":0,\"Nothing\":null}", JsonSerializer.Serialize(new Renamed { FullName = "A", Secret = "s" }));
        Eq("attribute name beats policy", "{\"full_name\":\"A\",\"firstValue\":0,\"nothing\":null}", JsonSerializer.Serialize(new Renamed { FullName = "A" }, camel));
        Eq("fields ignored by default", "{\"P\":0}", JsonSerializer.Serialize(new WithFields()));
        Eq("IncludeFields", "{\"P\":0,\"A\":1,\"B\":\"b\"}", JsonSerializer.Serialize(new WithFields(), new JsonSerializerOptions { IncludeFields = true }));
        Eq("WhenWritingNull", "{\"full_name\":\"A\",\"FirstValue\":0}", JsonSerializer.Serialize(new Renamed { FullName = "A" }, new JsonSerializerOptions { DefaultIgnoreCondition = JsonIgnoreCondition.WhenWritingNull }));
        Eq("serializer trailing comma option", 2, JsonSerializer.Deserialize<int[]>("[1,2,]", new JsonSerializerOptions { AllowTrailingCommas = true }).Length);
        var cyc = new Node { V = 1 };
        cyc.Next = cyc;
        Throws<JsonException>("cycle", () => JsonSerializer.Serialize(cyc));
    }

    static void Doubles()
    {
        Eq("1.0", "1", JsonSerializer.Serialize(1.0));
        Eq("0.1", "0.1", JsonSerializer.Serialize(0.1));
        Eq("0.1+0.2", "0.30000000000000004", JsonSerializer.Serialize(0.1 + 0.2));
        Eq("1/3", "0.3333333333333333", JsonSerializer.Serialize(1.0 / 3));
        Eq("2/3", "0.6666666666666666", JsonSerializer.Serialize(2.0 / 3));
        Eq("1e300", "1E+300", JsonSerializer.Serialize(1e300));
        Eq("1e16", "10000000000000000", JsonSerializer.Serialize(1e16));
        Eq("1e17", "1E+17", JsonSerializer.Serialize(1e17));
        Eq("123456789012345680000", "1.2345678901234568E+20", JsonSerializer.Serialize(123456789012345678901.0));
        Eq("1e-7", "1E-07", JsonSerializer.Serialize(1e-7));
        Eq("0.0001", "0.0001", JsonSerializer.Serialize(0.0001));
        Eq("0.00001", "1E-05", JsonSerializer.Serialize(0.00001));
        Eq("1.5e-5", "1.5E-05", JsonSerializer.Serialize(1.5e-5));
        Eq("-2.5", "-2.5", JsonSerializer.Serialize(-2.5));
        Eq("-0.0", "-0", JsonSerializer.Serialize(-0.0));
        Eq("5e-324", "5E-324", JsonSerializer.Serialize(double.Epsilon));
        Eq("max", "1.7976931348623157E+308", JsonSerializer.Serialize(double.MaxValue));
        Eq("2^53", "9007199254740992", JsonSerializer.Serialize(9007199254740992.0));
        Eq("100.5", "100.5", JsonSerializer.Serialize(100.5));
        Eq("float 0.1", "0.1", JsonSerializer.Serialize(0.1f));
        Eq("float 1/3", "0.33333334", JsonSerializer.Serialize(1f / 3));
        Eq("float max", "3.4028235E+38", JsonSerializer.Serialize(float.MaxValue));
        Eq("float 16777216", "16777216", JsonSerializer.Serialize(16777216f));
        Eq("float 1e10", "1E+10", JsonSerializer.Serialize(1e10f));
        Throws<ArgumentException>("NaN throws", () => JsonSerializer.Serialize(double.NaN));
        Throws<ArgumentException>("Infinity throws", () => JsonSerializer.Serialize(double.PositiveInfinity));
        Throws<ArgumentException>("float NaN throws", () => JsonSerializer.Serialize(float.NaN));
        // Shortest output must read back to the identical double.
        var rng = new Random(12345);
        int bad = 0;
        string firstBad = null;
        for (int i = 0; i < 20000; i++)
        {
            long bits = ((long)rng.Next() << 33) ^ ((long)rng.Next() << 2) ^ rng.Next(4);
            double d = BitConverter.Int64BitsToDouble(bits);
            if (double.IsNaN(d) || double.IsInfinity(d)) continue;
            string s = JsonSerializer.Serialize(d);
            double back = JsonSerializer.Deserialize<double>(s);
            if (BitConverter.DoubleToInt64Bits(back) != bits && !(d == 0 && back == 0)) { bad++; if (firstBad == null) firstBad = s; }
        }
        Check("random double round trip", bad == 0, bad + " mismatches, first " + firstBad);
        int badF = 0;
        for (int i = 0; i < 5000; i++)
        {
            float f = BitConverter.ToSingle(BitConverter.GetBytes(rng.Next()), 0);
            if (float.IsNaN(f) || float.IsInfinity(f)) continue;
            float back = JsonSerializer.Deserialize<float>(JsonSerializer.Serialize(f));
            if (back != f) badF++;
        }
        Check("random float round trip", badF == 0, badF + " mismatches");
    }

    static void Misc()
    {
        Eq("DateTime utc", "\"2020-01-02T03:04:05Z\"", JsonSerializer.Serialize(new DateTime(2020, 1, 2, 3, 4, 5, DateTimeKind.Utc)));
        Eq("DateTime fraction", "\"2020-01-02T03:04:05.5\"", JsonSerializer.Serialize(new DateTime(2020, 1, 2, 3, 4, 5, 500)));
        Eq("DateTimeOffset", "\"2020-01-02T03:04:05+02:00\"", JsonSerializer.Serialize(new DateTimeOffset(2020, 1, 2, 3, 4, 5, TimeSpan.FromHours(2))));
        Eq("Guid", "\"00000000-0000-0000-0000-000000000000\"", JsonSerializer.Serialize(Guid.Empty));
        Eq("DateTime read", new DateTime(2020, 1, 2, 3, 4, 5, DateTimeKind.Utc), JsonSerializer.Deserialize<DateTime>("\"2020-01-02T03:04:05Z\""));
        Eq("DateTime read kind", DateTimeKind.Utc, JsonSerializer.Deserialize<DateTime>("\"2020-01-02T03:04:05Z\"").Kind);
        Eq("null root", "null", JsonSerializer.Serialize<object>(null));
        Eq("serialize int", "42", JsonSerializer.Serialize(42));
        Eq("serialize string", "\"s\"", JsonSerializer.Serialize("s"));
        Eq("serialize JsonElement string", "\"\\u003C\"", JsonSerializer.Serialize(Parse("\"<\"")));
        Eq("Serialize with Type", "{\"BaseProp\":1}", JsonSerializer.Serialize(new Derived { BaseProp = 1 }, typeof(Base)));
        Throws<NotSupportedException>("serialize Type unsupported", () => JsonSerializer.Serialize(typeof(int)));
        Throws<NotSupportedException>("multi-dim array unsupported", () => JsonSerializer.Serialize(new int[1, 1]));
        // Culture must not leak into numbers.
        var saved = System.Threading.Thread.CurrentThread.CurrentCulture;
        try
        {
            System.Threading.Thread.CurrentThread.CurrentCulture = new CultureInfo("de-DE");
            Eq("culture invariant write", "{\"d\":1.5,\"m\":2.5}", JsonSerializer.Serialize(new { d = 1.5, m = 2.5m }));
            Eq("culture invariant read", 1.5, Parse("1.5").GetDouble());
        }
        finally { System.Threading.Thread.CurrentThread.CurrentCulture = saved; }
    }
}
