// Public option, enum, exception and attribute types of the System.Text.Json subset.
// Only members that are actually honoured exist here: a program that uses anything else
// must fail to compile rather than silently behave differently from .NET.
using System;

namespace System.Text.Json
{
    public enum JsonValueKind : byte
    {
        Undefined = 0, Object = 1, Array = 2, String = 3, Number = 4, True = 5, False = 6, Null = 7
    }

    public enum JsonCommentHandling : byte
    {
        Disallow = 0, Skip = 1, Allow = 2
    }

    public class JsonException : Exception
    {
        public JsonException() : base() { }
        public JsonException(string message) : base(message) { }
        public JsonException(string message, Exception innerException) : base(message, innerException) { }
        public JsonException(string message, string path, long? lineNumber, long? bytePositionInLine)
            : this(message, path, lineNumber, bytePositionInLine, null) { }
        public JsonException(string message, string path, long? lineNumber, long? bytePositionInLine, Exception innerException)
            : base(message, innerException)
        {
            Path = path;
            LineNumber = lineNumber;
            BytePositionInLine = bytePositionInLine;
        }

        public long? LineNumber { get; private set; }
        public long? BytePositionInLine { get; private set; }
        public string Path { get; private set; }
    }

    public struct JsonDocumentOptions
    {
        private int _maxDepth;
        private JsonCommentHandling _commentHandling;

        public bool AllowTrailingCommas { get; set; }

        public JsonCommentHandling CommentHandling
        {
            get { return _commentHandling; }
            set
            {
                // Same contract as .NET: a JsonDocument has no place to store comments.
                if (value == JsonCommentHandling.Allow)
                    throw new ArgumentOutOfRangeException("value", "Comments cannot be stored in a JsonDocument, only the Skip and Disallow comment handling modes are supported.");
                if ((byte)value > 2) throw new ArgumentOutOfRangeException("value");
                _commentHandling = value;
            }
        }

        /// <summary>0 means the default of 64.</summary>
        public int MaxDepth
        {
            get { return _maxDepth; }
            set
            {
                if (value < 0) throw new ArgumentOutOfRangeException("value", "Max depth must be positive.");
                _maxDepth = value;
            }
        }
    }

    public sealed class JsonSerializerOptions
    {
        private int _maxDepth;
        private JsonCommentHandling _readCommentHandling;
        private System.Text.Json.Serialization.JsonIgnoreCondition _defaultIgnoreCondition;

        public JsonSerializerOptions() { }

        public JsonSerializerOptions(JsonSerializerOptions options)
        {
            if (options == null) throw new ArgumentNullException("options");
            WriteIndented = options.WriteIndented;
            PropertyNamingPolicy = options.PropertyNamingPolicy;
            PropertyNameCaseInsensitive = options.PropertyNameCaseInsensitive;
            IncludeFields = options.IncludeFields;
            AllowTrailingCommas = options.AllowTrailingCommas;
            _readCommentHandling = options._readCommentHandling;
            _maxDepth = options._maxDepth;
            _defaultIgnoreCondition = options._defaultIgnoreCondition;
        }

        public bool WriteIndented { get; set; }
        public JsonNamingPolicy PropertyNamingPolicy { get; set; }
        public bool PropertyNameCaseInsensitive { get; set; }
        public bool IncludeFields { get; set; }
        public bool AllowTrailingCommas { get; set; }

        public JsonCommentHandling ReadCommentHandling
        {
            get { return _readCommentHandling; }
            set
            {
                // .NET: the serializer can only skip comments, never surface them.
                if ((byte)value > 1) throw new ArgumentOutOfRangeException("value", "JsonCommentHandling.Allow is not supported by JsonSerializer.");
                _readCommentHandling = value;
            }
        }

        /// <summary>0 means the default of 64.</summary>
        public int MaxDepth
        {
            get { return _maxDepth; }
            set
            {
                if (value < 0) throw new ArgumentOutOfRangeException("value", "Max depth must be positive.");
                _maxDepth = value;
            }
        }

        public System.Text.Json.Serialization.JsonIgnoreCondition DefaultIgnoreCondition
        {
            get { return _defaultIgnoreCondition; }
            set
            {
                // .NET rejects Always here (it would ignore every property).
                if (value == System.Text.Json.Serialization.JsonIgnoreCondition.Always)
                    throw new ArgumentException("The value cannot be 'JsonIgnoreCondition.Always'.", "value");
                _defaultIgnoreCondition = value;
            }
        }

        internal int EffectiveMaxDepth { get { return _maxDepth == 0 ? 64 : _maxDepth; } }
    }

    public abstract class JsonNamingPolicy
    {
        protected JsonNamingPolicy() { }

        // Lazily created so that loading the assembly costs nothing.
        private static JsonNamingPolicy s_camelCase;
        public static JsonNamingPolicy CamelCase
        {
            get { return s_camelCase ?? (s_camelCase = new JsonCamelCaseNamingPolicy()); }
        }

        public abstract string ConvertName(string name);
    }

    internal sealed class JsonCamelCaseNamingPolicy : JsonNamingPolicy
    {
        // Port of .NET's algorithm: lower-case the leading run of upper-case letters,
        // keeping the last one of the run if it starts the next word ("URLValue" -> "urlValue").
        public override string ConvertName(string name)
        {
            if (string.IsNullOrEmpty(name) || !char.IsUpper(name[0])) return name;
            char[] chars = name.ToCharArray();
            for (int i = 0; i < chars.Length; i++)
            {
                if (i == 1 && !char.IsUpper(chars[i])) break;
                bool hasNext = i + 1 < chars.Length;
                if (i > 0 && hasNext && !char.IsUpper(chars[i + 1]))
                {
                    if (chars[i + 1] == ' ') chars[i] = char.ToLowerInvariant(chars[i]);
                    break;
                }
                chars[i] = char.ToLowerInvariant(chars[i]);
            }
            return new string(chars);
        }
    }
}

namespace System.Text.Json.Serialization
{
    public enum JsonIgnoreCondition
    {
        Never = 0, Always = 1, WhenWritingDefault = 2, WhenWritingNull = 3
    }

    public abstract class JsonAttribute : Attribute
    {
        protected JsonAttribute() { }
    }

    [AttributeUsage(AttributeTargets.Property | AttributeTargets.Field, AllowMultiple = false)]
    public sealed class JsonPropertyNameAttribute : JsonAttribute
    {
        public JsonPropertyNameAttribute(string name) { Name = name; }
        public string Name { get; private set; }
    }

    [AttributeUsage(AttributeTargets.Property | AttributeTargets.Field, AllowMultiple = false)]
    public sealed class JsonIgnoreAttribute : JsonAttribute
    {
        public JsonIgnoreAttribute() { Condition = JsonIgnoreCondition.Always; }
        public JsonIgnoreCondition Condition { get; set; }
    }

    /// <summary>Includes a public field (or a property with a non-public accessor).</summary>
    [AttributeUsage(AttributeTargets.Property | AttributeTargets.Field, AllowMultiple = false)]
    public sealed class JsonIncludeAttribute : JsonAttribute
    {
        public JsonIncludeAttribute() { }
    }

    /// <summary>Selects the constructor used for deserialization.</summary>
    [AttributeUsage(AttributeTargets.Constructor, AllowMultiple = false)]
    public sealed class JsonConstructorAttribute : JsonAttribute
    {
        public JsonConstructorAttribute() { }
    }
}
