// JsonSerializer: the reading half. The input is parsed strictly into a JsonDocument tree first,
// then bound to the requested type. Type mismatches become JsonException with a JSON path.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;
using System.Reflection;
using System.Text.Json.Serialization;

namespace System.Text.Json
{
    public static partial class JsonSerializer
    {
        // ---- public API: reading ---------------------------------------------------------------

        public static TValue Deserialize<TValue>(string json, JsonSerializerOptions options = null)
        {
            return (TValue)ReadRoot(json, typeof(TValue), options);
        }

        public static object Deserialize(string json, Type returnType, JsonSerializerOptions options = null)
        {
            if (returnType == null) throw new ArgumentNullException("returnType");
            return ReadRoot(json, returnType, options);
        }

        public static TValue Deserialize<TValue>(this JsonElement element, JsonSerializerOptions options = null)
        {
            return (TValue)ReadElement(element, typeof(TValue), options);
        }

        public static object Deserialize(this JsonElement element, Type returnType, JsonSerializerOptions options = null)
        {
            if (returnType == null) throw new ArgumentNullException("returnType");
            return ReadElement(element, returnType, options);
        }

        public static TValue Deserialize<TValue>(this JsonDocument document, JsonSerializerOptions options = null)
        {
            if (document == null) throw new ArgumentNullException("document");
            return (TValue)ReadElement(document.RootElement, typeof(TValue), options);
        }

        private static object ReadRoot(string json, Type type, JsonSerializerOptions options)
        {
            if (json == null) throw new ArgumentNullException("json");
            JsonSerializerOptions o = OrDefault(options);
            MonoJsonNode root = MonoJsonParser.Parse(json, o.AllowTrailingCommas,
                o.ReadCommentHandling == JsonCommentHandling.Skip, o.EffectiveMaxDepth);
            var ctx = new ReadContext(new JsonDocument(json, root, false), o);
            return ctx.Read(root, type);
        }

        private static object ReadElement(JsonElement element, Type type, JsonSerializerOptions options)
        {
            MonoJsonNode n = element.Node;
            if (n == null) throw new InvalidOperationException("Operation is not valid due to the current state of the object.");
            element.Document.CheckNotDisposed();
            // Results must outlive the caller's document, so they hang off a never-disposed owner.
            var ctx = new ReadContext(new JsonDocument(element.Document.Source, n, false), OrDefault(options));
            return ctx.Read(n, type);
        }

        // ---- binding ---------------------------------------------------------------------------------

        private struct PathSegment
        {
            internal string Name;   // null for an array index
            internal int Index;
        }

        private sealed class ReadContext
        {
            private readonly JsonDocument _doc;
            private readonly JsonSerializerOptions _o;
            private readonly List<PathSegment> _path = new List<PathSegment>();
            private Dictionary<Type, Dictionary<string, MonoMember>> _lookups;

            internal ReadContext(JsonDocument doc, JsonSerializerOptions o)
            {
                _doc = doc;
                _o = o;
            }

            private string Path()
            {
                var sb = new System.Text.StringBuilder("$");
                foreach (PathSegment s in _path)
                {
                    if (s.Name == null) sb.Append('[').Append(s.Index.ToString(CultureInfo.InvariantCulture)).Append(']');
                    else if (IsSimpleName(s.Name)) sb.Append('.').Append(s.Name);
                    else sb.Append("['").Append(s.Name).Append("']");
                }
                return sb.ToString();
            }

            private static bool IsSimpleName(string name)
            {
                if (name.Length == 0) return false;
                foreach (char c in name)
                    if (c == '.' || c == '\'' || c == '[' || c == ']' || c == ' ' || c == '"' || c < 0x20) return false;
                return true;
            }

            private JsonException Fail(MonoJsonNode n, Type type, Exception inner)
            {
                long line, bytePos;
                MonoJsonParser.LineAndBytePosition(_doc.Source, n.Start, out line, out bytePos);
                string path = Path();
                return new JsonException("The JSON value could not be converted to " + type + ". Path: " + path +
                    " | LineNumber: " + line + " | BytePositionInLine: " + bytePos + ".", path, line, bytePos, inner);
            }

            private string Text(MonoJsonNode n)
            {
                return _doc.Source.Substring(n.Start, n.End - n.Start);
            }

            internal object Read(MonoJsonNode n, Type type)
            {
                MonoTypeInfo info = MonoTypeInfo.Get(type);
                if (n.Kind == JsonValueKind.Null)
                {
                    if (info.Kind == MonoKind.JsonElement) return new JsonElement(_doc, n);
                    if (type.IsValueType && info.Kind != MonoKind.Nullable) throw Fail(n, type, null);
                    return null;
                }
                CultureInfo inv = CultureInfo.InvariantCulture;
                switch (info.Kind)
                {
                    case MonoKind.Object:
                    case MonoKind.JsonElement:
                        return new JsonElement(_doc, n);
                    case MonoKind.JsonDocument:
                        return new JsonDocument(_doc.Source, n, true);
                    case MonoKind.Nullable:
                        return Read(n, info.ElementType);
                    case MonoKind.String:
                        return StringValue(n, type);
                    case MonoKind.Char:
                    {
                        string s = StringValue(n, type);
                        if (s.Length != 1) throw Fail(n, type, null);
                        return s[0];
                    }
                    case MonoKind.Bool:
                        if (n.Kind == JsonValueKind.True) return true;
                        if (n.Kind == JsonValueKind.False) return false;
                        throw Fail(n, type, null);
                    case MonoKind.SByte: case MonoKind.Int16: case MonoKind.Int32: case MonoKind.Int64:
                    {
                        long v;
                        if (n.Kind != JsonValueKind.Number || !MonoJsonNumbers.TryParseInt64(Text(n), out v)) throw Fail(n, type, null);
                        return SignedTo(info.Kind, v, n, type);
                    }
                    case MonoKind.Byte: case MonoKind.UInt16: case MonoKind.UInt32: case MonoKind.UInt64:
                    {
                        ulong v;
                        if (n.Kind != JsonValueKind.Number || !MonoJsonNumbers.TryParseUInt64(Text(n), out v)) throw Fail(n, type, null);
                        return UnsignedTo(info.Kind, v, n, type);
                    }
                    case MonoKind.Double:
                    {
                        double v;
                        if (n.Kind != JsonValueKind.Number || !MonoJsonNumbers.TryParseDouble(Text(n), out v)) throw Fail(n, type, null);
                        return v;
                    }
                    case MonoKind.Single:
                    {
                        float v;
                        if (n.Kind != JsonValueKind.Number || !MonoJsonNumbers.TryParseSingle(Text(n), out v)) throw Fail(n, type, null);
                        return v;
                    }
                    case MonoKind.Decimal:
                    {
                        decimal v;
                        if (n.Kind != JsonValueKind.Number || !MonoJsonNumbers.TryParseDecimal(Text(n), out v)) throw Fail(n, type, null);
                        return v;
                    }
                    case MonoKind.Enum:
                    {
                        // Numbers only: reading names needs JsonStringEnumConverter, which is not in this subset.
                        if (n.Kind != JsonValueKind.Number) throw Fail(n, type, null);
                        MonoKind uk = MonoTypeInfo.Get(info.ElementType).Kind;
                        object raw;
                        if (uk == MonoKind.Byte || uk == MonoKind.UInt16 || uk == MonoKind.UInt32 || uk == MonoKind.UInt64)
                        {
                            ulong v;
                            if (!MonoJsonNumbers.TryParseUInt64(Text(n), out v)) throw Fail(n, type, null);
                            raw = UnsignedTo(uk, v, n, type);
                        }
                        else
                        {
                            long v;
                            if (!MonoJsonNumbers.TryParseInt64(Text(n), out v)) throw Fail(n, type, null);
                            raw = SignedTo(uk, v, n, type);
                        }
                        return Enum.ToObject(type, raw);
                    }
                    case MonoKind.DateTime:
                    {
                        DateTime v;
                        if (!DateTime.TryParseExact(StringValue(n, type), s_dateFormats, inv, DateTimeStyles.RoundtripKind, out v)) throw Fail(n, type, null);
                        return v;
                    }
                    case MonoKind.DateTimeOffset:
                    {
                        DateTimeOffset v;
                        if (!DateTimeOffset.TryParseExact(StringValue(n, type), s_dateFormats, inv, DateTimeStyles.AssumeLocal, out v)) throw Fail(n, type, null);
                        return v;
                    }
                    case MonoKind.Guid:
                    {
                        Guid v;
                        if (!Guid.TryParseExact(StringValue(n, type), "D", out v)) throw Fail(n, type, null);
                        return v;
                    }
                    case MonoKind.TimeSpan:
                    {
                        TimeSpan v;
                        if (!TimeSpan.TryParseExact(StringValue(n, type), "c", inv, out v)) throw Fail(n, type, null);
                        return v;
                    }
                    case MonoKind.Uri:
                    {
                        Uri v;
                        if (!Uri.TryCreate(StringValue(n, type), UriKind.RelativeOrAbsolute, out v)) throw Fail(n, type, null);
                        return v;
                    }
                    case MonoKind.Version:
                    {
                        Version v;
                        if (!Version.TryParse(StringValue(n, type), out v)) throw Fail(n, type, null);
                        return v;
                    }
                    case MonoKind.ByteArray:
                    {
                        string s = StringValue(n, type);
                        try { return Convert.FromBase64String(s); }
                        catch (FormatException e) { throw Fail(n, type, e); }
                    }
                    case MonoKind.Dictionary: return ReadDictionary(n, info);
                    case MonoKind.Collection: return ReadCollection(n, info);
                    case MonoKind.Poco: return ReadPoco(n, info);
                    default:
                        throw new NotSupportedException(info.UnsupportedReason ?? ("The type '" + type + "' is not supported."));
                }
            }

            private string StringValue(MonoJsonNode n, Type type)
            {
                if (n.Kind != JsonValueKind.String) throw Fail(n, type, null);
                if (n.BadUtf16) throw Fail(n, type, new InvalidOperationException("Cannot read invalid UTF-16 JSON text as string. Invalid surrogate value."));
                return n.Str;
            }

            private object SignedTo(MonoKind k, long v, MonoJsonNode n, Type type)
            {
                switch (k)
                {
                    case MonoKind.SByte: if (v >= sbyte.MinValue && v <= sbyte.MaxValue) return (sbyte)v; break;
                    case MonoKind.Int16: if (v >= short.MinValue && v <= short.MaxValue) return (short)v; break;
                    case MonoKind.Int32: if (v >= int.MinValue && v <= int.MaxValue) return (int)v; break;
                    case MonoKind.Int64: return v;
                }
                throw Fail(n, type, null);
            }

            private object UnsignedTo(MonoKind k, ulong v, MonoJsonNode n, Type type)
            {
                switch (k)
                {
                    case MonoKind.Byte: if (v <= byte.MaxValue) return (byte)v; break;
                    case MonoKind.UInt16: if (v <= ushort.MaxValue) return (ushort)v; break;
                    case MonoKind.UInt32: if (v <= uint.MaxValue) return (uint)v; break;
                    case MonoKind.UInt64: return v;
                }
                throw Fail(n, type, null);
            }

            // ---- dictionaries ------------------------------------------------------------------

            private object ReadDictionary(MonoJsonNode n, MonoTypeInfo info)
            {
                if (n.Kind != JsonValueKind.Object) throw Fail(n, info.Type, null);
                Type t = info.Type;
                IDictionary dict;
                if (t.IsInterface || t.IsAbstract)
                {
                    Type keyType = info.KeyType == typeof(object) ? typeof(string) : info.KeyType;
                    Type concrete = typeof(Dictionary<,>).MakeGenericType(keyType, info.ElementType);
                    if (!t.IsAssignableFrom(concrete))
                        throw new NotSupportedException("The collection type '" + t + "' is abstract, an interface, or is read only, and could not be instantiated and populated.");
                    dict = (IDictionary)Activator.CreateInstance(concrete);
                }
                else
                {
                    if (!typeof(IDictionary).IsAssignableFrom(t) || t.GetConstructor(Type.EmptyTypes) == null)
                        throw new NotSupportedException("The collection type '" + t + "' is not supported.");
                    dict = (IDictionary)Activator.CreateInstance(t);
                }
                Type kt = info.KeyType == typeof(object) ? typeof(string) : info.KeyType;
                for (int i = 0; i < n.Items.Length; i++)
                {
                    _path.Add(new PathSegment { Name = n.Names[i] });
                    object key = ConvertKey(n.Names[i], kt, n.Items[i]);
                    dict[key] = Read(n.Items[i], info.ElementType); // later duplicates win, as in .NET
                    _path.RemoveAt(_path.Count - 1);
                }
                return dict;
            }

            private object ConvertKey(string name, Type kt, MonoJsonNode valueNode)
            {
                if (kt == typeof(string)) return name;
                CultureInfo inv = CultureInfo.InvariantCulture;
                if (kt.IsEnum)
                {
                    try { return Enum.Parse(kt, name); }
                    catch (ArgumentException e) { throw Fail(valueNode, kt, e); }
                }
                MonoKind k = MonoTypeInfo.Get(kt).Kind;
                switch (k)
                {
                    case MonoKind.SByte: case MonoKind.Int16: case MonoKind.Int32: case MonoKind.Int64:
                    {
                        long v;
                        if (!long.TryParse(name, NumberStyles.AllowLeadingSign, inv, out v)) throw Fail(valueNode, kt, null);
                        return SignedTo(k, v, valueNode, kt);
                    }
                    case MonoKind.Byte: case MonoKind.UInt16: case MonoKind.UInt32: case MonoKind.UInt64:
                    {
                        ulong v;
                        if (!ulong.TryParse(name, NumberStyles.None, inv, out v)) throw Fail(valueNode, kt, null);
                        return UnsignedTo(k, v, valueNode, kt);
                    }
                    case MonoKind.Guid:
                    {
                        Guid g;
                        if (!Guid.TryParseExact(name, "D", out g)) throw Fail(valueNode, kt, null);
                        return g;
                    }
                }
                throw new NotSupportedException("The type '" + kt + "' is not a supported dictionary key type.");
            }

            // ---- collections --------------------------------------------------------------------

            private object ReadCollection(MonoJsonNode n, MonoTypeInfo info)
            {
                if (n.Kind != JsonValueKind.Array) throw Fail(n, info.Type, null);
                Type t = info.Type;
                Type et = info.ElementType;
                MonoJsonNode[] items = n.Items;
                if (t.IsArray)
                {
                    Array arr = Array.CreateInstance(et, items.Length);
                    for (int i = 0; i < items.Length; i++) arr.SetValue(ReadItem(items[i], et, i), i);
                    return arr;
                }
                if (t.IsInterface || t.IsAbstract)
                {
                    Type listType = typeof(List<>).MakeGenericType(et);
                    Type concrete = t.IsAssignableFrom(listType) ? listType : null;
                    if (concrete == null)
                    {
                        Type setType = typeof(HashSet<>).MakeGenericType(et);
                        if (t.IsAssignableFrom(setType)) concrete = setType;
                    }
                    if (concrete == null)
                        throw new NotSupportedException("The collection type '" + t + "' is abstract, an interface, or is read only, and could not be instantiated and populated.");
                    t = concrete;
                }
                if (t.GetConstructor(Type.EmptyTypes) == null)
                    throw new NotSupportedException("The collection type '" + t + "' is not supported.");
                object instance = Activator.CreateInstance(t);
                IList list = instance as IList;
                if (list != null && !list.IsFixedSize && !list.IsReadOnly)
                {
                    for (int i = 0; i < items.Length; i++) list.Add(ReadItem(items[i], et, i));
                    return instance;
                }
                MethodInfo add = FindAdder(t, et);
                if (add == null)
                    throw new NotSupportedException("The collection type '" + t + "' is not supported.");
                var args = new object[1];
                for (int i = 0; i < items.Length; i++)
                {
                    args[0] = ReadItem(items[i], et, i);
                    add.Invoke(instance, args);
                }
                return instance;
            }

            private static MethodInfo FindAdder(Type t, Type et)
            {
                // Same choices as .NET: ICollection<T>.Add, else Queue-style Enqueue / Stack-style Push.
                Type coll = typeof(ICollection<>).MakeGenericType(et);
                if (coll.IsAssignableFrom(t)) return coll.GetMethod("Add");
                MethodInfo m = t.GetMethod("Enqueue", new[] { et }) ?? t.GetMethod("Push", new[] { et });
                if (m != null) return m;
                return t.GetMethod("Add", new[] { et });
            }

            private object ReadItem(MonoJsonNode item, Type et, int index)
            {
                _path.Add(new PathSegment { Index = index });
                object v = Read(item, et);
                _path.RemoveAt(_path.Count - 1);
                return v;
            }

            // ---- plain objects --------------------------------------------------------------------

            private Dictionary<string, MonoMember> Lookup(MonoTypeInfo info)
            {
                if (_lookups == null) _lookups = new Dictionary<Type, Dictionary<string, MonoMember>>();
                Dictionary<string, MonoMember> map;
                if (_lookups.TryGetValue(info.Type, out map)) return map;
                map = new Dictionary<string, MonoMember>(_o.PropertyNameCaseInsensitive ? StringComparer.OrdinalIgnoreCase : StringComparer.Ordinal);
                foreach (MonoMember m in info.GetMembers(_o.IncludeFields))
                {
                    string name = m.JsonName(_o);
                    if (map.ContainsKey(name))
                        throw new InvalidOperationException("The JSON property name for '" + info.Type + "." + m.ClrName + "' collides with another property.");
                    map[name] = m;
                }
                _lookups[info.Type] = map;
                return map;
            }

            private object ReadPoco(MonoJsonNode n, MonoTypeInfo info)
            {
                Type t = info.Type;
                if (t.IsInterface || t.IsAbstract)
                    throw new NotSupportedException("Deserialization of interface or abstract types is not supported. Type '" + t + "'.");
                if (n.Kind != JsonValueKind.Object) throw Fail(n, t, null);
                Dictionary<string, MonoMember> map = Lookup(info);
                ConstructorInfo ctor = ChooseConstructor(t);

                if (ctor == null || ctor.GetParameters().Length == 0)
                {
                    object obj = ctor == null ? Activator.CreateInstance(t) : ctor.Invoke(null);
                    for (int i = 0; i < n.Items.Length; i++)
                    {
                        MonoMember m;
                        if (!map.TryGetValue(n.Names[i], out m) || !m.CanWrite) continue; // unknown members are skipped
                        _path.Add(new PathSegment { Name = n.Names[i] });
                        m.SetValue(obj, Read(n.Items[i], m.MemberType));
                        _path.RemoveAt(_path.Count - 1);
                    }
                    return obj;
                }

                // Parameterized constructor: each parameter binds to the member with the same name (ignoring case).
                ParameterInfo[] ps = ctor.GetParameters();
                var paramMember = new MonoMember[ps.Length];
                MonoMember[] members = info.GetMembers(_o.IncludeFields);
                for (int p = 0; p < ps.Length; p++)
                {
                    foreach (MonoMember m in members)
                        if (string.Equals(m.ClrName, ps[p].Name, StringComparison.OrdinalIgnoreCase) && m.MemberType == ps[p].ParameterType) { paramMember[p] = m; break; }
                    if (paramMember[p] == null)
                        throw new InvalidOperationException("Each parameter in the deserialization constructor on type '" + t + "' must bind to an object property or field on deserialization. Each parameter name must match with a property or field on the object.");
                }
                var args = new object[ps.Length];
                var have = new bool[ps.Length];
                var later = new List<KeyValuePair<MonoMember, object>>();
                for (int i = 0; i < n.Items.Length; i++)
                {
                    MonoMember m;
                    if (!map.TryGetValue(n.Names[i], out m)) continue;
                    int p = Array.IndexOf(paramMember, m);
                    if (p < 0 && !m.CanWrite) continue;
                    _path.Add(new PathSegment { Name = n.Names[i] });
                    object v = Read(n.Items[i], m.MemberType);
                    _path.RemoveAt(_path.Count - 1);
                    if (p >= 0) { args[p] = v; have[p] = true; }
                    else later.Add(new KeyValuePair<MonoMember, object>(m, v));
                }
                for (int p = 0; p < ps.Length; p++)
                {
                    if (have[p]) continue;
                    if (ps[p].IsOptional && ps[p].DefaultValue != DBNull.Value) args[p] = ps[p].DefaultValue;
                    else args[p] = ps[p].ParameterType.IsValueType ? Activator.CreateInstance(ps[p].ParameterType) : null;
                }
                object result = ctor.Invoke(args);
                foreach (var kv in later) kv.Key.SetValue(result, kv.Value);
                return result;
            }

            private static ConstructorInfo ChooseConstructor(Type t)
            {
                ConstructorInfo[] all = t.GetConstructors(BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic);
                foreach (ConstructorInfo c in all)
                    if (c.IsDefined(typeof(JsonConstructorAttribute), false)) return c;
                ConstructorInfo parameterless = t.GetConstructor(Type.EmptyTypes);
                if (parameterless != null) return parameterless;
                if (t.IsValueType) return null; // default(T) via Activator
                ConstructorInfo[] pub = t.GetConstructors();
                if (pub.Length == 1) return pub[0];
                throw new NotSupportedException("Deserialization of types without a parameterless constructor, a singular parameterized constructor, or a parameterized constructor annotated with 'JsonConstructorAttribute' is not supported. Type '" + t + "'.");
            }
        }

        // ISO 8601 forms accepted by .NET's reader ('K' covers "", "Z" and offsets).
        private static readonly string[] s_dateFormats = {
            "yyyy'-'MM'-'dd",
            "yyyy'-'MM'-'dd'T'HH':'mmK",
            "yyyy'-'MM'-'dd'T'HH':'mm':'ssK",
            "yyyy'-'MM'-'dd'T'HH':'mm':'ss'.'FFFFFFFK",
        };
    }
}
