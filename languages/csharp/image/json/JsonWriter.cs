// Text output for the serializer: compact or indented layout and .NET's default escaping
// (JavaScriptEncoder.Default: everything outside printable ASCII, plus the HTML-sensitive
// characters " & ' + < > ` , is written as an upper-case \uXXXX escape).
using System;
using System.Text;

namespace System.Text.Json
{
    internal sealed class MonoJsonWriter
    {
        private readonly StringBuilder _sb = new StringBuilder(256);
        private readonly bool _indented;
        private readonly string _newLine;
        private int _indent;
        // One flag per open container: whether it already has a member (so a ',' is needed).
        private bool _hasItem;
        private readonly System.Collections.Generic.Stack<bool> _stack = new System.Collections.Generic.Stack<bool>();
        private bool _afterName;

        internal MonoJsonWriter(bool indented)
        {
            _indented = indented;
            _newLine = Environment.NewLine; // .NET's JsonWriterOptions default
        }

        public override string ToString() { return _sb.ToString(); }

        private void BeforeValue()
        {
            if (_afterName) { _afterName = false; return; }
            if (_stack.Count == 0) return;
            if (_hasItem) _sb.Append(',');
            if (_indented) NewLineAndIndent();
            _hasItem = true;
        }

        private void NewLineAndIndent()
        {
            _sb.Append(_newLine);
            _sb.Append(' ', _indent * 2);
        }

        internal void WriteStartObject() { WriteStart('{'); }
        internal void WriteStartArray() { WriteStart('['); }
        internal void WriteEndObject() { WriteEnd('}'); }
        internal void WriteEndArray() { WriteEnd(']'); }

        private void WriteStart(char c)
        {
            BeforeValue();
            _sb.Append(c);
            _stack.Push(_hasItem);
            _hasItem = false;
            _indent++;
        }

        private void WriteEnd(char c)
        {
            _indent--;
            // Empty containers stay on one line ("[]", "{}") like .NET.
            if (_indented && _hasItem) NewLineAndIndent();
            _sb.Append(c);
            _hasItem = _stack.Pop();
        }

        internal void WritePropertyName(string name, bool raw = false)
        {
            BeforeValue();
            if (raw) _sb.Append('"').Append(name).Append('"'); else WriteQuoted(name);
            _sb.Append(_indented ? ": " : ":");
            _afterName = true;
        }

        internal void WriteNull() { BeforeValue(); _sb.Append("null"); }
        internal void WriteBool(bool v) { BeforeValue(); _sb.Append(v ? "true" : "false"); }
        internal void WriteString(string v) { BeforeValue(); WriteQuoted(v); }

        /// <summary>
        /// For text that needs no escaping by construction; .NET formats dates straight to
        /// UTF-8 without the encoder, so e.g. the '+' of an offset stays literal.
        /// </summary>
        internal void WriteRawString(string v) { BeforeValue(); _sb.Append('"').Append(v).Append('"'); }

        /// <summary>Writes already-formatted number text.</summary>
        internal void WriteRawNumber(string text) { BeforeValue(); _sb.Append(text); }

        private static readonly char[] s_hex = "0123456789ABCDEF".ToCharArray();

        private static bool NeedsEscape(char c)
        {
            if (c < 0x20 || c > 0x7E) return true;
            switch (c)
            {
                case '"': case '\\': case '&': case '\'': case '+': case '<': case '>': case '`':
                    return true;
            }
            return false;
        }

        private void WriteQuoted(string s)
        {
            StringBuilder sb = _sb;
            sb.Append('"');
            int runStart = 0;
            for (int i = 0; i < s.Length; i++)
            {
                char c = s[i];
                if (!NeedsEscape(c)) continue;
                if (i > runStart) sb.Append(s, runStart, i - runStart);
                runStart = i + 1;
                switch (c)
                {
                    case '\n': sb.Append("\\n"); continue;
                    case '\r': sb.Append("\\r"); continue;
                    case '\t': sb.Append("\\t"); continue;
                    case '\b': sb.Append("\\b"); continue;
                    case '\f': sb.Append("\\f"); continue;
                    case '\\': sb.Append("\\\\"); continue;
                }
                if (char.IsHighSurrogate(c) && i + 1 < s.Length && char.IsLowSurrogate(s[i + 1]))
                {
                    AppendU(sb, c);
                    AppendU(sb, s[i + 1]);
                    i++;
                    runStart = i + 1;
                    continue;
                }
                // Lone surrogates cannot be encoded; .NET writes U+FFFD for them.
                if (char.IsSurrogate(c)) c = '\uFFFD';
                AppendU(sb, c);
            }
            if (runStart < s.Length) sb.Append(s, runStart, s.Length - runStart);
            sb.Append('"');
        }

        private static void AppendU(StringBuilder sb, char c)
        {
            sb.Append('\\').Append('u')
              .Append(s_hex[(c >> 12) & 0xF]).Append(s_hex[(c >> 8) & 0xF])
              .Append(s_hex[(c >> 4) & 0xF]).Append(s_hex[c & 0xF]);
        }
    }
}
