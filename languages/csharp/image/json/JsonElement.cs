// JsonElement, JsonProperty and the two enumerators.
// Number getters follow .NET's Utf8Parser rules: integer getters accept only an optional '-'
// and digits (so "21.0" and "1e2" are FormatException), floating getters reject non-finite results.
using System;
using System.Collections;
using System.Collections.Generic;
using System.Globalization;

namespace System.Text.Json
{
    public struct JsonElement
    {
        private readonly JsonDocument _doc;
        private readonly MonoJsonNode _node;

        internal JsonElement(JsonDocument doc, MonoJsonNode node)
        {
            _doc = doc;
            _node = node;
        }

        internal MonoJsonNode Node { get { return _node; } }
        internal JsonDocument Document { get { return _doc; } }

        public JsonValueKind ValueKind
        {
            get
            {
                if (_node == null) return JsonValueKind.Undefined;
                _doc.CheckNotDisposed();
                return _node.Kind;
            }
        }

        // ---- checks -------------------------------------------------------------------------

        private MonoJsonNode Checked()
        {
            if (_node == null) throw new InvalidOperationException("Operation is not valid due to the current state of the object.");
            _doc.CheckNotDisposed();
            return _node;
        }

        private MonoJsonNode Require(JsonValueKind kind)
        {
            MonoJsonNode n = Checked();
            if (n.Kind != kind) throw KindMismatch(kind, n.Kind);
            return n;
        }

        private static InvalidOperationException KindMismatch(JsonValueKind expected, JsonValueKind actual)
        {
            return new InvalidOperationException("The requested operation requires an element of type '" + expected + "', but the target element has type '" + actual + "'.");
        }

        private string NumberText()
        {
            MonoJsonNode n = Require(JsonValueKind.Number);
            return _doc.Source.Substring(n.Start, n.End - n.Start);
        }

        // ---- objects --------------------------------------------------------------------------

        public JsonElement GetProperty(string propertyName)
        {
            if (propertyName == null) throw new ArgumentNullException("propertyName");
            JsonElement value;
            if (TryGetProperty(propertyName, out value)) return value;
            throw new KeyNotFoundException("The given key '" + propertyName + "' was not present in the dictionary.");
        }

        public bool TryGetProperty(string propertyName, out JsonElement value)
        {
            if (propertyName == null) throw new ArgumentNullException("propertyName");
            MonoJsonNode n = Require(JsonValueKind.Object);
            // Search backwards: with duplicate names the last one wins, as in .NET.
            string[] names = n.Names;
            for (int i = names.Length - 1; i >= 0; i--)
            {
                if (string.Equals(names[i], propertyName, StringComparison.Ordinal))
                {
                    value = new JsonElement(_doc, n.Items[i]);
                    return true;
                }
            }
            value = default(JsonElement);
            return false;
        }

        public ObjectEnumerator EnumerateObject()
        {
            MonoJsonNode n = Require(JsonValueKind.Object);
            return new ObjectEnumerator(_doc, n);
        }

        // ---- arrays ---------------------------------------------------------------------------

        public int GetArrayLength()
        {
            return Require(JsonValueKind.Array).Items.Length;
        }

        public JsonElement this[int index]
        {
            get
            {
                MonoJsonNode n = Require(JsonValueKind.Array);
                if ((uint)index >= (uint)n.Items.Length) throw new IndexOutOfRangeException();
                return new JsonElement(_doc, n.Items[index]);
            }
        }

        public ArrayEnumerator EnumerateArray()
        {
            MonoJsonNode n = Require(JsonValueKind.Array);
            return new ArrayEnumerator(_doc, n);
        }

        // ---- strings and booleans ----------------------------------------------------------

        public string GetString()
        {
            MonoJsonNode n = Checked();
            if (n.Kind == JsonValueKind.Null) return null;
            if (n.Kind != JsonValueKind.String) throw KindMismatch(JsonValueKind.String, n.Kind);
            if (n.BadUtf16) throw new InvalidOperationException("Cannot read invalid UTF-16 JSON text as string. Invalid surrogate value.");
            return n.Str;
        }

        public bool ValueEquals(string text)
        {
            MonoJsonNode n = Checked();
            if (n.Kind == JsonValueKind.Null) return text == null;
            if (n.Kind != JsonValueKind.String) throw KindMismatch(JsonValueKind.String, n.Kind);
            return text != null && string.Equals(n.Str, text, StringComparison.Ordinal);
        }

        public bool GetBoolean()
        {
            MonoJsonNode n = Checked();
            if (n.Kind == JsonValueKind.True) return true;
            if (n.Kind == JsonValueKind.False) return false;
            throw new InvalidOperationException("The requested operation requires an element of type 'Boolean', but the target element has type '" + n.Kind + "'.");
        }

        // ---- numbers ----------------------------------------------------------------------------

        private static FormatException NotFit()
        {
            return new FormatException("One of the identified items was in an invalid format.");
        }

        public bool TryGetInt64(out long value) { return MonoJsonNumbers.TryParseInt64(NumberText(), out value); }
        public bool TryGetUInt64(out ulong value) { return MonoJsonNumbers.TryParseUInt64(NumberText(), out value); }

        public bool TryGetInt32(out int value)
        {
            long v;
            if (TryGetInt64(out v) && v >= int.MinValue && v <= int.MaxValue) { value = (int)v; return true; }
            value = 0; return false;
        }
        public bool TryGetInt16(out short value)
        {
            long v;
            if (TryGetInt64(out v) && v >= short.MinValue && v <= short.MaxValue) { value = (short)v; return true; }
            value = 0; return false;
        }
        public bool TryGetSByte(out sbyte value)
        {
            long v;
            if (TryGetInt64(out v) && v >= sbyte.MinValue && v <= sbyte.MaxValue) { value = (sbyte)v; return true; }
            value = 0; return false;
        }
        public bool TryGetUInt32(out uint value)
        {
            ulong v;
            if (TryGetUInt64(out v) && v <= uint.MaxValue) { value = (uint)v; return true; }
            value = 0; return false;
        }
        public bool TryGetUInt16(out ushort value)
        {
            ulong v;
            if (TryGetUInt64(out v) && v <= ushort.MaxValue) { value = (ushort)v; return true; }
            value = 0; return false;
        }
        public bool TryGetByte(out byte value)
        {
            ulong v;
            if (TryGetUInt64(out v) && v <= byte.MaxValue) { value = (byte)v; return true; }
            value = 0; return false;
        }
        public bool TryGetDouble(out double value) { return MonoJsonNumbers.TryParseDouble(NumberText(), out value); }
        public bool TryGetSingle(out float value) { return MonoJsonNumbers.TryParseSingle(NumberText(), out value); }
        public bool TryGetDecimal(out decimal value) { return MonoJsonNumbers.TryParseDecimal(NumberText(), out value); }

        public long GetInt64() { long v; if (!TryGetInt64(out v)) throw NotFit(); return v; }
        public ulong GetUInt64() { ulong v; if (!TryGetUInt64(out v)) throw NotFit(); return v; }
        public int GetInt32() { int v; if (!TryGetInt32(out v)) throw NotFit(); return v; }
        public uint GetUInt32() { uint v; if (!TryGetUInt32(out v)) throw NotFit(); return v; }
        public short GetInt16() { short v; if (!TryGetInt16(out v)) throw NotFit(); return v; }
        public ushort GetUInt16() { ushort v; if (!TryGetUInt16(out v)) throw NotFit(); return v; }
        public byte GetByte() { byte v; if (!TryGetByte(out v)) throw NotFit(); return v; }
        public sbyte GetSByte() { sbyte v; if (!TryGetSByte(out v)) throw NotFit(); return v; }
        public double GetDouble() { double v; if (!TryGetDouble(out v)) throw NotFit(); return v; }
        public float GetSingle() { float v; if (!TryGetSingle(out v)) throw NotFit(); return v; }
        public decimal GetDecimal() { decimal v; if (!TryGetDecimal(out v)) throw NotFit(); return v; }

        // ---- text -------------------------------------------------------------------------------

        public string GetRawText()
        {
            MonoJsonNode n = Checked();
            return _doc.Source.Substring(n.Start, n.End - n.Start);
        }

        public JsonElement Clone()
        {
            MonoJsonNode n = Checked();
            // Nodes are immutable, so a clone only needs an owner that can never be disposed.
            return new JsonElement(new JsonDocument(_doc.Source, n, false), n);
        }

        public override string ToString()
        {
            if (_node == null) return string.Empty;
            _doc.CheckNotDisposed();
            switch (_node.Kind)
            {
                case JsonValueKind.Null: return string.Empty;
                case JsonValueKind.True: return bool.TrueString;
                case JsonValueKind.False: return bool.FalseString;
                case JsonValueKind.String: return GetString();
                default: return GetRawText();
            }
        }

        // ---- enumerators ---------------------------------------------------------------------------

        public struct ArrayEnumerator : IEnumerable<JsonElement>, IEnumerator<JsonElement>
        {
            private readonly JsonDocument _doc;
            private readonly MonoJsonNode _node;
            private int _index;

            internal ArrayEnumerator(JsonDocument doc, MonoJsonNode node)
            {
                _doc = doc; _node = node; _index = -1;
            }

            public JsonElement Current
            {
                get
                {
                    if (_node == null || _index < 0 || _index >= _node.Items.Length) return default(JsonElement);
                    return new JsonElement(_doc, _node.Items[_index]);
                }
            }

            public ArrayEnumerator GetEnumerator()
            {
                ArrayEnumerator e = this;
                e._index = -1;
                return e;
            }

            IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }
            IEnumerator<JsonElement> IEnumerable<JsonElement>.GetEnumerator() { return GetEnumerator(); }

            public void Dispose() { _index = _node == null ? -1 : _node.Items.Length; }
            public void Reset() { _index = -1; }
            object IEnumerator.Current { get { return Current; } }

            public bool MoveNext()
            {
                if (_node == null) return false;
                _doc.CheckNotDisposed();
                if (_index < _node.Items.Length) _index++;
                return _index < _node.Items.Length;
            }
        }

        public struct ObjectEnumerator : IEnumerable<JsonProperty>, IEnumerator<JsonProperty>
        {
            private readonly JsonDocument _doc;
            private readonly MonoJsonNode _node;
            private int _index;

            internal ObjectEnumerator(JsonDocument doc, MonoJsonNode node)
            {
                _doc = doc; _node = node; _index = -1;
            }

            public JsonProperty Current
            {
                get
                {
                    if (_node == null || _index < 0 || _index >= _node.Items.Length) return default(JsonProperty);
                    return new JsonProperty(_doc, _node, _index);
                }
            }

            public ObjectEnumerator GetEnumerator()
            {
                ObjectEnumerator e = this;
                e._index = -1;
                return e;
            }

            IEnumerator IEnumerable.GetEnumerator() { return GetEnumerator(); }
            IEnumerator<JsonProperty> IEnumerable<JsonProperty>.GetEnumerator() { return GetEnumerator(); }

            public void Dispose() { _index = _node == null ? -1 : _node.Items.Length; }
            public void Reset() { _index = -1; }
            object IEnumerator.Current { get { return Current; } }

            public bool MoveNext()
            {
                if (_node == null) return false;
                _doc.CheckNotDisposed();
                if (_index < _node.Items.Length) _index++;
                return _index < _node.Items.Length;
            }
        }
    }

    public struct JsonProperty
    {
        private readonly JsonDocument _doc;
        private readonly MonoJsonNode _parent;
        private readonly int _index;

        internal JsonProperty(JsonDocument doc, MonoJsonNode parent, int index)
        {
            _doc = doc; _parent = parent; _index = index;
        }

        public string Name
        {
            get { return _parent == null ? null : _parent.Names[_index]; }
        }

        public JsonElement Value
        {
            get { return _parent == null ? default(JsonElement) : new JsonElement(_doc, _parent.Items[_index]); }
        }

        public bool NameEquals(string text)
        {
            return _parent != null && string.Equals(_parent.Names[_index], text, StringComparison.Ordinal);
        }

        /// <summary>Like .NET: the raw text from the name's opening quote to the end of the value.</summary>
        public override string ToString()
        {
            if (_parent == null) return string.Empty;
            _doc.CheckNotDisposed();
            int start = _parent.NameStarts[_index];
            return _doc.Source.Substring(start, _parent.Items[_index].End - start);
        }
    }
}
