// JsonSerializer: public entry points and the writing half.
// Serialization is driven by the declared type, like .NET: only members of the declared type
// are written, and only values declared as 'object' are serialized by their runtime type.
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
        private static JsonSerializerOptions s_defaultOptions;

        private static JsonSerializerOptions OrDefault(JsonSerializerOptions options)
        {
            return options ?? s_defaultOptions ?? (s_defaultOptions = new JsonSerializerOptions());
        }

        // ---- public API: writing -----------------------------------------------------------------

        public static string Serialize<TValue>(TValue value, JsonSerializerOptions options = null)
        {
            return WriteRoot(value, typeof(TValue), options);
        }

        public static string Serialize(object value, Type inputType, JsonSerializerOptions options = null)
        {
            if (inputType == null) throw new ArgumentNullException("inputType");
            if (value != null && !inputType.IsInstanceOfType(value))
                throw new ArgumentException("The specified type " + inputType + " is not assignable from the object type " + value.GetType() + ".", "inputType");
            return WriteRoot(value, inputType, options);
        }

        private static string WriteRoot(object value, Type declared, JsonSerializerOptions options)
        {
            JsonSerializerOptions o = OrDefault(options);
            var w = new MonoJsonWriter(o.WriteIndented);
            WriteValue(w, value, declared, o, 0);
            return w.ToString();
        }

        // ---- writing ---------------------------------------------------------------------------------------

        private static void CheckDepth(int depth, JsonSerializerOptions o)
        {
            if (depth >= o.EffectiveMaxDepth)
                throw new JsonException("A possible object cycle was detected. This can either be due to a cycle or if the object depth is larger than the maximum allowed depth of " + o.EffectiveMaxDepth + ". Consider using ReferenceHandler.Preserve on JsonSerializerOptions to support cycles.");
        }

        private static void WriteValue(MonoJsonWriter w, object value, Type declared, JsonSerializerOptions o, int depth)
        {
            if (value == null) { w.WriteNull(); return; }
            MonoTypeInfo info = MonoTypeInfo.Get(declared);
            if (info.Kind == MonoKind.Object || info.Kind == MonoKind.Nullable)
            {
                Type rt = value.GetType();
                if (rt == typeof(object))
                {
                    // A bare 'new object()' is an empty object in .NET.
                    CheckDepth(depth, o);
                    w.WriteStartObject(); w.WriteEndObject();
                    return;
                }
                info = MonoTypeInfo.Get(rt);
            }
            CultureInfo inv = CultureInfo.InvariantCulture;
            switch (info.Kind)
            {
                case MonoKind.String: w.WriteString((string)value); return;
                case MonoKind.Bool: w.WriteBool((bool)value); return;
                case MonoKind.Char: w.WriteString(((char)value).ToString()); return;
                case MonoKind.SByte: case MonoKind.Byte: case MonoKind.Int16: case MonoKind.UInt16:
                case MonoKind.Int32: case MonoKind.UInt32: case MonoKind.Int64: case MonoKind.UInt64:
                case MonoKind.Decimal:
                    w.WriteRawNumber(((IFormattable)value).ToString(null, inv)); return;
                case MonoKind.Double: w.WriteRawNumber(MonoJsonNumbers.FormatDouble((double)value)); return;
                case MonoKind.Single: w.WriteRawNumber(MonoJsonNumbers.FormatSingle((float)value)); return;
                case MonoKind.Enum:
                    // Without a JsonStringEnumConverter (not part of this subset) enums are numbers.
                    w.WriteRawNumber(((IFormattable)Convert.ChangeType(value, info.ElementType, inv)).ToString(null, inv)); return;
                case MonoKind.DateTime: w.WriteRawString(TrimIsoFraction(((DateTime)value).ToString("O", inv))); return;
                case MonoKind.DateTimeOffset: w.WriteRawString(TrimIsoFraction(((DateTimeOffset)value).ToString("O", inv))); return;
                case MonoKind.Guid: w.WriteString(((Guid)value).ToString("D")); return;
                case MonoKind.TimeSpan: w.WriteString(((TimeSpan)value).ToString("c", inv)); return;
                case MonoKind.Uri: w.WriteString(((Uri)value).OriginalString); return;
                case MonoKind.Version: w.WriteString(value.ToString()); return;
                case MonoKind.ByteArray: w.WriteString(Convert.ToBase64String((byte[])value)); return;
                case MonoKind.JsonElement: WriteElement(w, (JsonElement)value, o, depth); return;
                case MonoKind.JsonDocument: WriteElement(w, ((JsonDocument)value).RootElement, o, depth); return;
                case MonoKind.Dictionary: WriteDictionary(w, value, info, o, depth); return;
                case MonoKind.Collection:
                {
                    CheckDepth(depth, o);
                    w.WriteStartArray();
                    foreach (object item in (IEnumerable)value) WriteValue(w, item, info.ElementType, o, depth + 1);
                    w.WriteEndArray();
                    return;
                }
                case MonoKind.Poco: WritePoco(w, value, info, o, depth); return;
                default:
                    throw new NotSupportedException(info.UnsupportedReason ?? ("The type '" + info.Type + "' is not supported."));
            }
        }

        /// <summary>"O" format with the 7-digit fraction trimmed of trailing zeros, as .NET writes dates.</summary>
        private static string TrimIsoFraction(string s)
        {
            if (s.Length >= 27 && s[19] == '.')
            {
                int cut = 27;
                while (cut > 20 && s[cut - 1] == '0') cut--;
                if (cut == 20) cut = 19;
                return s.Substring(0, cut) + s.Substring(27);
            }
            return s;
        }

        internal static string DictionaryKey(object key)
        {
            if (key == null) throw new ArgumentNullException("key");
            string s = key as string;
            if (s != null) return s;
            if (key is Enum) return key.ToString(); // .NET writes enum keys by name
            MonoTypeInfo ki = MonoTypeInfo.Get(key.GetType());
            CultureInfo inv = CultureInfo.InvariantCulture;
            switch (ki.Kind)
            {
                case MonoKind.SByte: case MonoKind.Byte: case MonoKind.Int16: case MonoKind.UInt16:
                case MonoKind.Int32: case MonoKind.UInt32: case MonoKind.Int64: case MonoKind.UInt64:
                case MonoKind.Decimal:
                    return ((IFormattable)key).ToString(null, inv);
                case MonoKind.Double: return MonoJsonNumbers.FormatDouble((double)key);
                case MonoKind.Single: return MonoJsonNumbers.FormatSingle((float)key);
                case MonoKind.Char: return key.ToString();
                case MonoKind.Guid: return ((Guid)key).ToString("D");
                case MonoKind.DateTime: return TrimIsoFraction(((DateTime)key).ToString("O", inv));
                case MonoKind.DateTimeOffset: return TrimIsoFraction(((DateTimeOffset)key).ToString("O", inv));
            }
            throw new NotSupportedException("The type '" + key.GetType() + "' is not a supported dictionary key type.");
        }

        private static bool IsDateKey(object key)
        {
            return key is DateTime || key is DateTimeOffset;
        }

        private static void WriteDictionary(MonoJsonWriter w, object value, MonoTypeInfo info, JsonSerializerOptions o, int depth)
        {
            CheckDepth(depth, o);
            w.WriteStartObject();
            IDictionary nd = value as IDictionary;
            if (nd != null)
            {
                IDictionaryEnumerator e = nd.GetEnumerator();
                while (e.MoveNext())
                {
                    w.WritePropertyName(DictionaryKey(e.Key), IsDateKey(e.Key));
                    WriteValue(w, e.Value, info.ElementType, o, depth + 1);
                }
            }
            else
            {
                // Generic-only dictionary: items are boxed KeyValuePair<K,V>.
                PropertyInfo kp = null, vp = null;
                foreach (object item in (IEnumerable)value)
                {
                    if (kp == null)
                    {
                        kp = item.GetType().GetProperty("Key");
                        vp = item.GetType().GetProperty("Value");
                    }
                    object key = kp.GetValue(item, null);
                    w.WritePropertyName(DictionaryKey(key), IsDateKey(key));
                    WriteValue(w, vp.GetValue(item, null), info.ElementType, o, depth + 1);
                }
            }
            w.WriteEndObject();
        }

        private static void WritePoco(MonoJsonWriter w, object value, MonoTypeInfo info, JsonSerializerOptions o, int depth)
        {
            CheckDepth(depth, o);
            w.WriteStartObject();
            foreach (MonoMember m in info.GetMembers(o.IncludeFields))
            {
                if (!m.CanRead) continue;
                object v = m.GetValue(value);
                JsonIgnoreCondition cond = m.IgnoreCondition ?? o.DefaultIgnoreCondition;
                if (cond == JsonIgnoreCondition.WhenWritingNull && v == null) continue;
                if (cond == JsonIgnoreCondition.WhenWritingDefault && (v == null || (m.MemberType.IsValueType && v.Equals(m.DefaultValue)))) continue;
                w.WritePropertyName(m.JsonName(o));
                WriteValue(w, v, m.MemberType, o, depth + 1);
            }
            w.WriteEndObject();
        }

        private static void WriteElement(MonoJsonWriter w, JsonElement e, JsonSerializerOptions o, int depth)
        {
            MonoJsonNode n = e.Node;
            if (n == null) throw new InvalidOperationException("Operation is not valid due to the current state of the object.");
            e.Document.CheckNotDisposed();
            WriteNode(w, e.Document, n, o, depth);
        }

        // Re-emits a parsed value: numbers keep their original text, strings are re-escaped.
        private static void WriteNode(MonoJsonWriter w, JsonDocument doc, MonoJsonNode n, JsonSerializerOptions o, int depth)
        {
            switch (n.Kind)
            {
                case JsonValueKind.Null: w.WriteNull(); return;
                case JsonValueKind.True: w.WriteBool(true); return;
                case JsonValueKind.False: w.WriteBool(false); return;
                case JsonValueKind.Number: w.WriteRawNumber(doc.Source.Substring(n.Start, n.End - n.Start)); return;
                case JsonValueKind.String: w.WriteString(n.Str); return;
                case JsonValueKind.Array:
                    CheckDepth(depth, o);
                    w.WriteStartArray();
                    foreach (MonoJsonNode c in n.Items) WriteNode(w, doc, c, o, depth + 1);
                    w.WriteEndArray();
                    return;
                case JsonValueKind.Object:
                    CheckDepth(depth, o);
                    w.WriteStartObject();
                    for (int i = 0; i < n.Items.Length; i++)
                    {
                        w.WritePropertyName(n.Names[i]);
                        WriteNode(w, doc, n.Items[i], o, depth + 1);
                    }
                    w.WriteEndObject();
                    return;
            }
        }
    }
}
