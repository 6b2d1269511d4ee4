// Per-type reflection metadata, built lazily on first use and cached (nothing at load time).
using System;
using System.Collections;
using System.Collections.Generic;
using System.Reflection;
using System.Text.Json.Serialization;

namespace System.Text.Json
{
    internal enum MonoKind
    {
        Object,          // declared 'object': dispatch on the runtime type
        String, Bool, Char,
        SByte, Byte, Int16, UInt16, Int32, UInt32, Int64, UInt64,
        Single, Double, Decimal,
        Enum, Nullable,
        DateTime, DateTimeOffset, Guid, TimeSpan, Uri, Version,
        ByteArray,
        JsonElement, JsonDocument,
        Dictionary, Collection, Poco,
        Unsupported
    }

    internal sealed class MonoMember
    {
        internal string ClrName;
        internal string ExplicitName;          // from [JsonPropertyName], bypasses the naming policy
        internal Type MemberType;
        internal PropertyInfo Property;
        internal FieldInfo Field;
        internal bool CanRead;
        internal bool CanWrite;
        internal JsonIgnoreCondition? IgnoreCondition; // from [JsonIgnore(Condition=...)]
        private object _defaultValue;
        private bool _defaultComputed;

        internal object GetValue(object target)
        {
            return Property != null ? Property.GetValue(target, null) : Field.GetValue(target);
        }

        internal void SetValue(object target, object value)
        {
            if (Property != null) Property.SetValue(target, value, null); else Field.SetValue(target, value);
        }

        internal object DefaultValue
        {
            get
            {
                if (!_defaultComputed)
                {
                    _defaultValue = MemberType.IsValueType ? Activator.CreateInstance(MemberType) : null;
                    _defaultComputed = true;
                }
                return _defaultValue;
            }
        }

        internal string JsonName(JsonSerializerOptions options)
        {
            if (ExplicitName != null) return ExplicitName;
            JsonNamingPolicy policy = options.PropertyNamingPolicy;
            if (policy == null) return ClrName;
            string n = policy.ConvertName(ClrName);
            if (n == null) throw new InvalidOperationException("The JSON property name for '" + ClrName + "' cannot be null.");
            return n;
        }
    }

    internal sealed class MonoTypeInfo
    {
        internal Type Type;
        internal MonoKind Kind;
        internal Type ElementType;     // collection item / dictionary value / nullable or enum underlying type
        internal Type KeyType;         // dictionary key
        internal string UnsupportedReason;

        // Poco members, split by whether public fields are wanted (options.IncludeFields).
        private MonoMember[] _membersNoFields;
        private MonoMember[] _membersWithFields;

        private static readonly Dictionary<Type, MonoTypeInfo> s_cache = new Dictionary<Type, MonoTypeInfo>();

        internal static MonoTypeInfo Get(Type t)
        {
            lock (s_cache)
            {
                MonoTypeInfo info;
                if (!s_cache.TryGetValue(t, out info))
                {
                    info = Create(t);
                    s_cache[t] = info;
                }
                return info;
            }
        }

        private static MonoTypeInfo Create(Type t)
        {
            var info = new MonoTypeInfo { Type = t };
            info.Kind = Classify(t, info);
            return info;
        }

        private static MonoKind Classify(Type t, MonoTypeInfo info)
        {
            if (t == typeof(object)) return MonoKind.Object;
            if (t == typeof(string)) return MonoKind.String;
            if (t.IsEnum) { info.ElementType = Enum.GetUnderlyingType(t); return MonoKind.Enum; }
            if (t.IsPrimitive)
            {
                switch (Type.GetTypeCode(t))
                {
                    case TypeCode.Boolean: return MonoKind.Bool;
                    case TypeCode.Char: return MonoKind.Char;
                    case TypeCode.SByte: return MonoKind.SByte;
                    case TypeCode.Byte: return MonoKind.Byte;
                    case TypeCode.Int16: return MonoKind.Int16;
                    case TypeCode.UInt16: return MonoKind.UInt16;
                    case TypeCode.Int32: return MonoKind.Int32;
                    case TypeCode.UInt32: return MonoKind.UInt32;
                    case TypeCode.Int64: return MonoKind.Int64;
                    case TypeCode.UInt64: return MonoKind.UInt64;
                    case TypeCode.Single: return MonoKind.Single;
                    case TypeCode.Double: return MonoKind.Double;
                }
                info.UnsupportedReason = "Serialization and deserialization of '" + t.FullName + "' instances are not supported.";
                return MonoKind.Unsupported; // IntPtr, UIntPtr
            }
            if (t == typeof(decimal)) return MonoKind.Decimal;
            if (t.IsGenericType && t.GetGenericTypeDefinition() == typeof(Nullable<>))
            {
                info.ElementType = t.GetGenericArguments()[0];
                return MonoKind.Nullable;
            }
            if (t == typeof(DateTime)) return MonoKind.DateTime;
            if (t == typeof(DateTimeOffset)) return MonoKind.DateTimeOffset;
            if (t == typeof(Guid)) return MonoKind.Guid;
            if (t == typeof(TimeSpan)) return MonoKind.TimeSpan;
            if (t == typeof(Uri)) return MonoKind.Uri;
            if (t == typeof(Version)) return MonoKind.Version;
            if (t == typeof(byte[])) return MonoKind.ByteArray;
            if (t == typeof(JsonElement)) return MonoKind.JsonElement;
            if (t == typeof(JsonDocument)) return MonoKind.JsonDocument;
            if (t.IsPointer || t.IsByRef || typeof(Delegate).IsAssignableFrom(t) || typeof(MemberInfo).IsAssignableFrom(t)
                || typeof(System.Threading.Tasks.Task).IsAssignableFrom(t) || t.IsGenericParameter)
            {
                info.UnsupportedReason = "Serialization and deserialization of '" + t.FullName + "' instances are not supported.";
                return MonoKind.Unsupported;
            }
            if (t.IsArray)
            {
                if (t.GetArrayRank() != 1)
                {
                    info.UnsupportedReason = "The type '" + t.FullName + "' is not supported.";
                    return MonoKind.Unsupported;
                }
                info.ElementType = t.GetElementType();
                return MonoKind.Collection;
            }
            // Dictionaries: IDictionary<K,V>, IReadOnlyDictionary<K,V>, or the non-generic IDictionary.
            Type dict = FindGeneric(t, typeof(IDictionary<,>)) ?? FindGeneric(t, typeof(IReadOnlyDictionary<,>));
            if (dict != null)
            {
                Type[] args = dict.GetGenericArguments();
                info.KeyType = args[0];
                info.ElementType = args[1];
                return MonoKind.Dictionary;
            }
            if (typeof(IDictionary).IsAssignableFrom(t))
            {
                info.KeyType = typeof(object);
                info.ElementType = typeof(object);
                return MonoKind.Dictionary;
            }
            if (typeof(IEnumerable).IsAssignableFrom(t))
            {
                Type en = FindGeneric(t, typeof(IEnumerable<>));
                info.ElementType = en != null ? en.GetGenericArguments()[0] : typeof(object);
                return MonoKind.Collection;
            }
            return MonoKind.Poco;
        }

        internal static Type FindGeneric(Type t, Type genericDef)
        {
            if (t.IsGenericType && t.GetGenericTypeDefinition() == genericDef) return t;
            foreach (Type i in t.GetInterfaces())
                if (i.IsGenericType && i.GetGenericTypeDefinition() == genericDef) return i;
            return null;
        }

        internal MonoMember[] GetMembers(bool includeFields)
        {
            lock (this)
            {
                if (includeFields) return _membersWithFields ?? (_membersWithFields = BuildMembers(Type, true));
                return _membersNoFields ?? (_membersNoFields = BuildMembers(Type, false));
            }
        }

        private static MonoMember[] BuildMembers(Type type, bool includeFields)
        {
            // Like .NET (3.0 - 8): the type's own members in declaration order, then its base type's.
            var result = new List<MonoMember>();
            var seen = new HashSet<string>(StringComparer.Ordinal);
            var types = new List<Type>();
            if (type.IsInterface)
            {
                types.Add(type);
                types.AddRange(type.GetInterfaces());
            }
            else
            {
                for (Type c = type; c != null && c != typeof(object) && c != typeof(ValueType); c = c.BaseType) types.Add(c);
            }
            const BindingFlags flags = BindingFlags.Instance | BindingFlags.Public | BindingFlags.NonPublic | BindingFlags.DeclaredOnly;
            foreach (Type c in types)
            {
                // Properties before fields (as .NET does), each in declaration (metadata) order.
                var props = new List<MemberInfo>(c.GetProperties(flags));
                props.Sort((a, b) => a.MetadataToken.CompareTo(b.MetadataToken));
                var fields = new List<MemberInfo>(c.GetFields(flags));
                fields.Sort((a, b) => a.MetadataToken.CompareTo(b.MetadataToken));
                var members = props;
                members.AddRange(fields);
                foreach (MemberInfo mi in members)
                {
                    MonoMember m = MakeMember(mi, includeFields);
                    if (m == null) continue;
                    // A member redeclared in a derived type ('new' or override) hides the base one.
                    if (!seen.Add(mi.Name)) continue;
                    result.Add(m);
                }
            }
            return result.ToArray();
        }

        private static MonoMember MakeMember(MemberInfo mi, bool includeFields)
        {
            bool hasInclude = mi.IsDefined(typeof(JsonIncludeAttribute), true);
            var m = new MonoMember { ClrName = mi.Name };
            PropertyInfo p = mi as PropertyInfo;
            if (p != null)
            {
                if (p.GetIndexParameters().Length > 0) return null;
                MethodInfo getter = p.GetGetMethod(true);
                MethodInfo setter = p.GetSetMethod(true);
                bool publicGet = getter != null && getter.IsPublic;
                bool publicSet = setter != null && setter.IsPublic;
                if (!publicGet && !publicSet && !hasInclude) return null;
                if ((getter ?? setter).IsStatic) return null;
                m.Property = p;
                m.MemberType = p.PropertyType;
                m.CanRead = getter != null && (publicGet || hasInclude);
                m.CanWrite = setter != null && (publicSet || hasInclude);
            }
            else
            {
                FieldInfo f = (FieldInfo)mi;
                if (!f.IsPublic || f.IsStatic) return null;
                if (!includeFields && !hasInclude) return null;
                m.Field = f;
                m.MemberType = f.FieldType;
                m.CanRead = true;
                m.CanWrite = !f.IsInitOnly && !f.IsLiteral;
            }
            object[] ign = mi.GetCustomAttributes(typeof(JsonIgnoreAttribute), true);
            if (ign.Length > 0)
            {
                JsonIgnoreCondition c = ((JsonIgnoreAttribute)ign[0]).Condition;
                if (c == JsonIgnoreCondition.Always) return null;
                m.IgnoreCondition = c;
            }
            object[] names = mi.GetCustomAttributes(typeof(JsonPropertyNameAttribute), true);
            if (names.Length > 0) m.ExplicitName = ((JsonPropertyNameAttribute)names[0]).Name;
            return m;
        }
    }
}
