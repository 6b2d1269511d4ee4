// JsonDocument and its strict RFC 8259 parser.
// The whole input is parsed eagerly into a small node tree that keeps offsets into the
// source string, so GetRawText() can return the exact original slice.
using System;
using System.Collections.Generic;
using System.IO;

namespace System.Text.Json
{
    public sealed class JsonDocument : IDisposable
    {
        internal readonly string Source;
        private readonly MonoJsonNode _root;
        private readonly bool _isDisposable;
        private bool _disposed;

        internal JsonDocument(string source, MonoJsonNode root, bool isDisposable)
        {
            Source = source;
            _root = root;
            _isDisposable = isDisposable;
        }

        public static JsonDocument Parse(string json, JsonDocumentOptions options = default(JsonDocumentOptions))
        {
            if (json == null) throw new ArgumentNullException("json");
            MonoJsonNode root = MonoJsonParser.Parse(json, options.AllowTrailingCommas,
                options.CommentHandling == JsonCommentHandling.Skip, options.MaxDepth == 0 ? 64 : options.MaxDepth);
            return new JsonDocument(json, root, true);
        }

        public static JsonDocument Parse(Stream utf8Json, JsonDocumentOptions options = default(JsonDocumentOptions))
        {
            if (utf8Json == null) throw new ArgumentNullException("utf8Json");
            string text;
            // Strict decoder: invalid UTF-8 is an error in .NET too, never silently replaced.
            using (var reader = new StreamReader(utf8Json, new UTF8Encoding(false, true), false))
                text = reader.ReadToEnd();
            if (text.Length > 0 && text[0] == '\uFEFF') text = text.Substring(1); // .NET skips a UTF-8 BOM
            return Parse(text, options);
        }

        public JsonElement RootElement
        {
            get
            {
                CheckNotDisposed();
                return new JsonElement(this, _root);
            }
        }

        public void Dispose()
        {
            // Documents made by Clone() / Deserialize are never disposed, like .NET's.
            if (_isDisposable) _disposed = true;
        }

        internal void CheckNotDisposed()
        {
            if (_disposed) throw new ObjectDisposedException("JsonDocument");
        }
    }

    internal sealed class MonoJsonNode
    {
        internal JsonValueKind Kind;
        internal int Start;        // offset of the first char of the value in the source
        internal int End;          // offset just past the value
        internal string Str;       // unescaped value (String kind only)
        internal bool BadUtf16;    // string contained a lone surrogate escape
        internal MonoJsonNode[] Items;   // array items, or object property values
        internal string[] Names;         // object property names (unescaped)
        internal int[] NameStarts;       // offset of each property name's opening quote
    }

    internal sealed class MonoJsonParser
    {
        private readonly string _s;
        private readonly bool _allowTrailingCommas;
        private readonly bool _skipComments;
        private readonly int _maxDepth;
        private int _pos;
        private int _depth;
        private readonly List<MonoJsonNode> _scratchNodes = new List<MonoJsonNode>();
        private readonly List<string> _scratchNames = new List<string>();
        private readonly List<int> _scratchStarts = new List<int>();
        private StringBuilder _sb;

        private static readonly MonoJsonNode[] s_emptyNodes = new MonoJsonNode[0];
        private static readonly string[] s_emptyNames = new string[0];
        private static readonly int[] s_emptyInts = new int[0];

        private MonoJsonParser(string s, bool allowTrailingCommas, bool skipComments, int maxDepth)
        {
            _s = s;
            _allowTrailingCommas = allowTrailingCommas;
            _skipComments = skipComments;
            _maxDepth = maxDepth;
        }

        internal static MonoJsonNode Parse(string s, bool allowTrailingCommas, bool skipComments, int maxDepth)
        {
            var p = new MonoJsonParser(s, allowTrailingCommas, skipComments, maxDepth);
            p.SkipWhitespace();
            if (p._pos >= s.Length)
                throw p.Error("The input does not contain any JSON tokens. Expected the input to start with a valid JSON token, while isFinalBlock is true.", p._pos);
            MonoJsonNode root = p.ParseValue();
            p.SkipWhitespace();
            if (p._pos < s.Length)
                throw p.Error("'" + Show(s[p._pos]) + "' is invalid after a single JSON value. Expected end of data.", p._pos);
            return root;
        }

        // ---- errors -------------------------------------------------------------------

        internal static string Show(char c)
        {
            if (c < 0x20 || c == 0x7F) return "0x" + ((int)c).ToString("X2");
            return c.ToString();
        }

        private JsonException Error(string message, int pos)
        {
            long line, bytePos;
            LineAndBytePosition(_s, pos, out line, out bytePos);
            return new JsonException(message + " LineNumber: " + line + " | BytePositionInLine: " + bytePos + ".",
                null, line, bytePos);
        }

        /// <summary>0-based line and UTF-8 byte offset within that line, as .NET reports them.</summary>
        internal static void LineAndBytePosition(string s, int pos, out long line, out long bytePos)
        {
            line = 0; bytePos = 0;
            if (pos > s.Length) pos = s.Length;
            for (int i = 0; i < pos; i++)
            {
                char c = s[i];
                if (c == '\n') { line++; bytePos = 0; }
                else if (c < 0x80) bytePos++;
                else if (c < 0x800) bytePos += 2;
                else if (char.IsHighSurrogate(c) && i + 1 < pos && char.IsLowSurrogate(s[i + 1])) { bytePos += 4; i++; }
                else bytePos += 3;
            }
        }

        // ---- lexical helpers -------------------------------------------------------------

        private void SkipWhitespace()
        {
            string s = _s;
            while (_pos < s.Length)
            {
                char c = s[_pos];
                if (c == ' ' || c == '\t' || c == '\n' || c == '\r') { _pos++; continue; }
                if (c == '/' && _skipComments) { SkipComment(); continue; }
                break;
            }
        }

        private void SkipComment()
        {
            int start = _pos;
            if (_pos + 1 < _s.Length && _s[_pos + 1] == '/')
            {
                _pos += 2;
                while (_pos < _s.Length && _s[_pos] != '\n' && _s[_pos] != '\r') _pos++;
                return;
            }
            if (_pos + 1 < _s.Length && _s[_pos + 1] == '*')
            {
                int end = _s.IndexOf("*/", _pos + 2, StringComparison.Ordinal);
                if (end < 0) throw Error("Expected end of comment, but instead reached end of data.", start);
                _pos = end + 2;
                return;
            }
            throw Error("'/' is invalid after '/' at the beginning of the comment.", start);
        }

        // ---- values --------------------------------------------------------------------

        private MonoJsonNode ParseValue()
        {
            if (_pos >= _s.Length) throw Error("Expected start of a JSON value, but instead reached end of data.", _pos);
            char c = _s[_pos];
            switch (c)
            {
                case '{': return ParseObject();
                case '[': return ParseArray();
                case '"':
                {
                    var n = new MonoJsonNode { Kind = JsonValueKind.String, Start = _pos };
                    bool bad;
                    n.Str = ParseString(out bad);
                    n.BadUtf16 = bad;
                    n.End = _pos;
                    return n;
                }
                case 't': return ParseLiteral("true", JsonValueKind.True);
                case 'f': return ParseLiteral("false", JsonValueKind.False);
                case 'n': return ParseLiteral("null", JsonValueKind.Null);
                default:
                    if (c == '-' || (c >= '0' && c <= '9')) return ParseNumber();
                    throw Error("'" + Show(c) + "' is an invalid start of a value.", _pos);
            }
        }

        private MonoJsonNode ParseLiteral(string literal, JsonValueKind kind)
        {
            int start = _pos;
            for (int i = 0; i < literal.Length; i++)
            {
                if (start + i >= _s.Length || _s[start + i] != literal[i])
                    throw Error("'" + (start + i < _s.Length ? Show(_s[start + i]) : "") + "' is an invalid JSON literal. Expected the literal '" + literal + "'.", start + i);
            }
            _pos = start + literal.Length;
            return new MonoJsonNode { Kind = kind, Start = start, End = _pos };
        }

        private MonoJsonNode ParseNumber()
        {
            // Grammar: -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
            string s = _s;
            int start = _pos;
            int i = _pos;
            if (s[i] == '-') i++;
            if (i >= s.Length) throw Error("Expected a digit ('0'-'9'), but instead reached end of data.", i);
            if (s[i] == '0')
            {
                i++;
            }
            else if (s[i] >= '1' && s[i] <= '9')
            {
                while (i < s.Length && s[i] >= '0' && s[i] <= '9') i++;
            }
            else throw Error("'" + Show(s[i]) + "' is invalid within a number, immediately after a sign character ('+' or '-'). Expected a digit ('0'-'9').", i);

            if (i < s.Length && s[i] == '.')
            {
                i++;
                if (i >= s.Length) throw Error("Expected a digit ('0'-'9'), but instead reached end of data.", i);
                if (s[i] < '0' || s[i] > '9') throw Error("'" + Show(s[i]) + "' is invalid within a number, immediately after a decimal point ('.'). Expected a digit ('0'-'9').", i);
                while (i < s.Length && s[i] >= '0' && s[i] <= '9') i++;
            }
            if (i < s.Length && (s[i] == 'e' || s[i] == 'E'))
            {
                i++;
                if (i < s.Length && (s[i] == '+' || s[i] == '-')) i++;
                if (i >= s.Length) throw Error("Expected a digit ('0'-'9'), but instead reached end of data.", i);
                if (s[i] < '0' || s[i] > '9') throw Error("'" + Show(s[i]) + "' is invalid within a number, immediately after an exponent ('e' or 'E'). Expected a digit ('0'-'9').", i);
                while (i < s.Length && s[i] >= '0' && s[i] <= '9') i++;
            }
            // A number must be followed by a delimiter, not e.g. "01" or "1x".
            if (i < s.Length)
            {
                char c = s[i];
                if (!(c == ',' || c == '}' || c == ']' || c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '/'))
                    throw Error("'" + Show(c) + "' is an invalid end of a number. Expected a delimiter.", i);
            }
            _pos = i;
            return new MonoJsonNode { Kind = JsonValueKind.Number, Start = start, End = i };
        }

        private string ParseString(out bool badUtf16)
        {
            // _pos is at the opening quote.
            string s = _s;
            int start = _pos;
            int i = _pos + 1;
            badUtf16 = false;
            // Fast path: no escapes.
            while (i < s.Length)
            {
                char c = s[i];
                if (c == '"')
                {
                    _pos = i + 1;
                    return s.Substring(start + 1, i - start - 1);
                }
                if (c == '\\') break;
                if (c < 0x20) throw Error("'" + Show(c) + "' is invalid within a JSON string. The string should be correctly escaped.", i);
                i++;
            }
            if (i >= s.Length) throw Error("Expected end of string, but instead reached end of data.", s.Length);

            if (_sb == null) _sb = new StringBuilder();
            StringBuilder sb = _sb;
            sb.Length = 0;
            sb.Append(s, start + 1, i - start - 1);
            while (true)
            {
                if (i >= s.Length) throw Error("Expected end of string, but instead reached end of data.", s.Length);
                char c = s[i];
                if (c == '"') { _pos = i + 1; break; }
                if (c < 0x20) throw Error("'" + Show(c) + "' is invalid within a JSON string. The string should be correctly escaped.", i);
                if (c != '\\') { sb.Append(c); i++; continue; }
                i++;
                if (i >= s.Length) throw Error("Expected end of string, but instead reached end of data.", s.Length);
                char e = s[i];
                switch (e)
                {
                    case '"': sb.Append('"'); i++; break;
                    case '\\': sb.Append('\\'); i++; break;
                    case '/': sb.Append('/'); i++; break;
                    case 'b': sb.Append('\b'); i++; break;
                    case 'f': sb.Append('\f'); i++; break;
                    case 'n': sb.Append('\n'); i++; break;
                    case 'r': sb.Append('\r'); i++; break;
                    case 't': sb.Append('\t'); i++; break;
                    case 'u':
                    {
                        int v = 0;
                        for (int k = 1; k <= 4; k++)
                        {
                            if (i + k >= s.Length) throw Error("Expected end of string, but instead reached end of data.", s.Length);
                            int h = HexValue(s[i + k]);
                            if (h < 0) throw Error("'" + Show(s[i + k]) + "' is not a hex digit following '\\u' within a JSON string. The string should be correctly escaped.", i + k);
                            v = (v << 4) | h;
                        }
                        sb.Append((char)v);
                        i += 5;
                        break;
                    }
                    default:
                        throw Error("'" + Show(e) + "' is an invalid escapable character within a JSON string. The string should be correctly escaped.", i);
                }
            }
            string result = sb.ToString();
            // Escapes may produce unpaired surrogates; .NET refuses to return those from GetString().
            for (int k = 0; k < result.Length; k++)
            {
                char c = result[k];
                if (char.IsHighSurrogate(c))
                {
                    if (k + 1 < result.Length && char.IsLowSurrogate(result[k + 1])) { k++; continue; }
                    badUtf16 = true; break;
                }
                if (char.IsLowSurrogate(c)) { badUtf16 = true; break; }
            }
            return result;
        }

        private static int HexValue(char c)
        {
            if (c >= '0' && c <= '9') return c - '0';
            if (c >= 'a' && c <= 'f') return c - 'a' + 10;
            if (c >= 'A' && c <= 'F') return c - 'A' + 10;
            return -1;
        }

        private void EnterContainer(string what)
        {
            _depth++;
            if (_depth > _maxDepth)
                throw Error("The maximum configured depth of " + _maxDepth + " has been exceeded. Cannot read next JSON " + what + ".", _pos);
        }

        private MonoJsonNode ParseArray()
        {
            var node = new MonoJsonNode { Kind = JsonValueKind.Array, Start = _pos };
            EnterContainer("array");
            _pos++; // '['
            int scratchBase = _scratchNodes.Count;
            SkipWhitespace();
            if (_pos < _s.Length && _s[_pos] == ']')
            {
                _pos++;
            }
            else
            {
                while (true)
                {
                    SkipWhitespace();
                    _scratchNodes.Add(ParseValue());
                    SkipWhitespace();
                    if (_pos >= _s.Length) throw Error("Expected either ',' or ']', but instead reached end of data.", _pos);
                    char c = _s[_pos];
                    if (c == ']') { _pos++; break; }
                    if (c != ',') throw Error("'" + Show(c) + "' is invalid after a value. Expected either ',', '}', or ']'.", _pos);
                    _pos++;
                    SkipWhitespace();
                    if (_pos < _s.Length && _s[_pos] == ']')
                    {
                        if (!_allowTrailingCommas)
                            throw Error("The JSON array contains a trailing comma at the end which is not supported in this mode. Change the reader options.", _pos);
                        _pos++;
                        break;
                    }
                }
            }
            node.Items = TakeNodes(scratchBase);
            node.End = _pos;
            _depth--;
            return node;
        }

        private MonoJsonNode ParseObject()
        {
            var node = new MonoJsonNode { Kind = JsonValueKind.Object, Start = _pos };
            EnterContainer("object");
            _pos++; // '{'
            int scratchBase = _scratchNodes.Count;
            int nameBase = _scratchNames.Count;
            SkipWhitespace();
            if (_pos < _s.Length && _s[_pos] == '}')
            {
                _pos++;
            }
            else
            {
                while (true)
                {
                    SkipWhitespace();
                    if (_pos >= _s.Length) throw Error("Expected start of a property name or value, but instead reached end of data.", _pos);
                    if (_s[_pos] != '"') throw Error("'" + Show(_s[_pos]) + "' is an invalid start of a property name. Expected a '\"'.", _pos);
                    int nameStart = _pos;
                    bool bad;
                    string name = ParseString(out bad);
                    SkipWhitespace();
                    if (_pos >= _s.Length) throw Error("Expected a ':' after a property name, but instead reached end of data.", _pos);
                    if (_s[_pos] != ':') throw Error("'" + Show(_s[_pos]) + "' is invalid after a property name. Expected a ':'.", _pos);
                    _pos++;
                    SkipWhitespace();
                    MonoJsonNode value = ParseValue();
                    _scratchNames.Add(name);
                    _scratchStarts.Add(nameStart);
                    _scratchNodes.Add(value);
                    SkipWhitespace();
                    if (_pos >= _s.Length) throw Error("Expected either ',' or '}', but instead reached end of data.", _pos);
                    char c = _s[_pos];
                    if (c == '}') { _pos++; break; }
                    if (c != ',') throw Error("'" + Show(c) + "' is invalid after a value. Expected either ',', '}', or ']'.", _pos);
                    _pos++;
                    SkipWhitespace();
                    if (_pos < _s.Length && _s[_pos] == '}')
                    {
                        if (!_allowTrailingCommas)
                            throw Error("The JSON object contains a trailing comma at the end which is not supported in this mode. Change the reader options.", _pos);
                        _pos++;
                        break;
                    }
                }
            }
            node.Items = TakeNodes(scratchBase);
            int count = _scratchNames.Count - nameBase;
            if (count == 0)
            {
                node.Names = s_emptyNames;
                node.NameStarts = s_emptyInts;
            }
            else
            {
                node.Names = new string[count];
                node.NameStarts = new int[count];
                _scratchNames.CopyTo(nameBase, node.Names, 0, count);
                _scratchStarts.CopyTo(nameBase, node.NameStarts, 0, count);
                _scratchNames.RemoveRange(nameBase, count);
                _scratchStarts.RemoveRange(nameBase, count);
            }
            node.End = _pos;
            _depth--;
            return node;
        }

        // Children are collected on a shared stack so that each container allocates one exact-size array.
        private MonoJsonNode[] TakeNodes(int scratchBase)
        {
            int count = _scratchNodes.Count - scratchBase;
            if (count == 0) return s_emptyNodes;
            var arr = new MonoJsonNode[count];
            _scratchNodes.CopyTo(scratchBase, arr, 0, count);
            _scratchNodes.RemoveRange(scratchBase, count);
            return arr;
        }
    }
}
