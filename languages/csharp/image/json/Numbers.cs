// Number parsing and formatting.
// Mono 6.8's double.Parse is not always correctly rounded and its "R" format is the old
// .NET Framework one (e.g. 1/3 -> "0.33333333333333331"), so both directions are done here
// exactly with BigInteger, producing .NET Core 3.0+ output (shortest round-trip digits).
using System;
using System.Globalization;
using System.Numerics;
using System.Text;

namespace System.Text.Json
{
    internal static class MonoJsonNumbers
    {
        // ---- integers -------------------------------------------------------------------------

        private static bool IsPlainInteger(string s)
        {
            // JSON grammar already holds; reject fraction and exponent forms like .NET's Utf8Parser.
            for (int i = 0; i < s.Length; i++)
            {
                char c = s[i];
                if (c == '.' || c == 'e' || c == 'E') return false;
            }
            return true;
        }

        internal static bool TryParseInt64(string s, out long value)
        {
            if (IsPlainInteger(s) && long.TryParse(s, NumberStyles.AllowLeadingSign, CultureInfo.InvariantCulture, out value))
                return true;
            value = 0; return false;
        }

        internal static bool TryParseUInt64(string s, out ulong value)
        {
            if (IsPlainInteger(s))
            {
                if (s == "-0") { value = 0; return true; }
                if (s[0] != '-' && ulong.TryParse(s, NumberStyles.None, CultureInfo.InvariantCulture, out value))
                    return true;
            }
            value = 0; return false;
        }

        internal static bool TryParseDecimal(string s, out decimal value)
        {
            try
            {
                value = decimal.Parse(s, NumberStyles.Float, CultureInfo.InvariantCulture);
                return true;
            }
            catch (OverflowException) { }
            catch (FormatException) { }
            value = 0; return false;
        }

        // ---- floating point parsing ------------------------------------------------------------------

        private static readonly double[] s_pow10 = {
            1e0, 1e1, 1e2, 1e3, 1e4, 1e5, 1e6, 1e7, 1e8, 1e9, 1e10, 1e11, 1e12, 1e13, 1e14, 1e15,
            1e16, 1e17, 1e18, 1e19, 1e20, 1e21, 1e22 };

        internal static bool TryParseDouble(string s, out double value)
        {
            value = ParseBinary(s, 53, -1074, 2046);
            if (double.IsInfinity(value)) { value = 0; return false; } // .NET: non-finite is a failure
            return true;
        }

        internal static bool TryParseSingle(string s, out float value)
        {
            double d = ParseBinary(s, 24, -149, 254); // exact float value, widened losslessly
            value = (float)d;
            if (float.IsInfinity(value)) { value = 0; return false; }
            return true;
        }

        /// <summary>
        /// Correctly rounded (round-half-even) conversion of a valid JSON number to a binary
        /// float with <paramref name="precision"/> mantissa bits; returns the value as a double
        /// (exact for float precision too).
        /// </summary>
        private static double ParseBinary(string s, int precision, int minExp, int maxBiased)
        {
            int i = 0;
            bool negative = false;
            if (s[0] == '-') { negative = true; i = 1; }
            var digits = new StringBuilder(s.Length);
            int exp10 = 0;
            bool seenPoint = false;
            for (; i < s.Length; i++)
            {
                char c = s[i];
                if (c >= '0' && c <= '9')
                {
                    if (digits.Length == 0 && c == '0') { if (seenPoint) exp10--; continue; }
                    digits.Append(c);
                    if (seenPoint) exp10--;
                }
                else if (c == '.') seenPoint = true;
                else break; // 'e' / 'E'
            }
            if (i < s.Length)
            {
                // Exponent; clamp absurd values (they only decide between 0 and infinity).
                i++;
                bool expNeg = false;
                if (s[i] == '+') i++; else if (s[i] == '-') { expNeg = true; i++; }
                long e = 0;
                for (; i < s.Length; i++) { if (e < 100000000) e = e * 10 + (s[i] - '0'); }
                exp10 = (int)Math.Max(-200000000L, Math.Min(200000000L, exp10 + (expNeg ? -e : e)));
            }
            // Strip trailing zeros.
            int n = digits.Length;
            while (n > 0 && digits[n - 1] == '0') { n--; exp10++; }
            if (n == 0) return negative ? -0.0 : 0.0;

            double result;
            if (n <= 15 && exp10 >= -22 && exp10 <= 22 && precision == 53)
            {
                // Clinger's fast path: both operands exact, one IEEE rounding.
                long m = long.Parse(digits.ToString(0, n), CultureInfo.InvariantCulture);
                result = exp10 >= 0 ? m * s_pow10[exp10] : m / s_pow10[-exp10];
                return negative ? -result : result;
            }
            if (n + exp10 > 311) return negative ? double.NegativeInfinity : double.PositiveInfinity;
            if (n + exp10 < -326) return negative ? -0.0 : 0.0;

            BigInteger num = BigInteger.Parse(digits.ToString(0, n), CultureInfo.InvariantCulture);
            BigInteger den = BigInteger.One;
            if (exp10 > 0) num *= BigInteger.Pow(10, exp10);
            else if (exp10 < 0) den = BigInteger.Pow(10, -exp10);

            // Find shift s so that q = floor(num * 2^s / den) has precision+1 bits.
            int shift = precision + 1 - (BitLength(num) - BitLength(den));
            BigInteger q, rem;
            DivShift(num, den, shift, out q, out rem);
            BigInteger lowQ = BigInteger.One << precision;
            if (q >= (lowQ << 1)) { shift--; DivShift(num, den, shift, out q, out rem); }
            else if (q < lowQ) { shift++; DivShift(num, den, shift, out q, out rem); }
            int e2 = 1 - shift; // exponent of the mantissa's last bit after dropping the round bit
            if (e2 < minExp)
            {
                // Subnormal: fix the exponent and let the mantissa lose bits.
                shift = 1 - minExp;
                DivShift(num, den, shift, out q, out rem);
                e2 = minExp;
            }
            bool roundBit = !q.IsEven;
            bool sticky = !rem.IsZero;
            ulong mant = (ulong)(q >> 1);
            if (roundBit && (sticky || (mant & 1) != 0)) mant++;
            if (mant == (1UL << precision)) { mant >>= 1; e2++; }

            if (precision == 53)
            {
                long bits;
                if (mant >= (1UL << 52))
                {
                    long biased = e2 + 1075;
                    if (biased > maxBiased) return negative ? double.NegativeInfinity : double.PositiveInfinity;
                    bits = (biased << 52) | (long)(mant - (1UL << 52));
                }
                else bits = (long)mant; // subnormal
                result = BitConverter.Int64BitsToDouble(bits);
            }
            else
            {
                // Float: mant < 2^24 and e2 >= -149, so mant * 2^e2 is exact in a double.
                long biased = e2 + 150;
                if (mant >= (1UL << 23) && biased > maxBiased) return negative ? double.NegativeInfinity : double.PositiveInfinity;
                result = (double)mant * Math.Pow(2, e2);
            }
            return negative ? -result : result;
        }

        private static void DivShift(BigInteger num, BigInteger den, int shift, out BigInteger q, out BigInteger rem)
        {
            if (shift >= 0) q = BigInteger.DivRem(num << shift, den, out rem);
            else q = BigInteger.DivRem(num, den << -shift, out rem);
        }

        private static int BitLength(BigInteger v)
        {
            // v > 0. Byte-array based because Mono 6.8's BigInteger lacks GetBitLength.
            byte[] bytes = v.ToByteArray();
            int top = bytes.Length - 1;
            while (top > 0 && bytes[top] == 0) top--;
            int bits = top * 8;
            int b = bytes[top];
            while (b != 0) { bits++; b >>= 1; }
            return bits;
        }

        // ---- floating point formatting ------------------------------------------------------------------

        internal static string FormatDouble(double d)
        {
            if (double.IsNaN(d) || double.IsInfinity(d))
                throw new ArgumentException(".NET number values such as positive and negative infinity cannot be written as valid JSON. To make it work when using 'JsonSerializer', consider specifying 'JsonNumberHandling.AllowNamedFloatingPointLiterals' (see https://docs.microsoft.com/dotnet/api/system.text.json.serialization.jsonnumberhandling).");
            long bits = BitConverter.DoubleToInt64Bits(d);
            bool negative = bits < 0;
            if (d == 0) return negative ? "-0" : "0";
            // Integers below 2^53: their own digits (trailing zeros dropped) are the shortest form.
            if (Math.Abs(d) < 9007199254740992.0 && Math.Floor(d) == d)
            {
                string digits = ((long)Math.Abs(d)).ToString(CultureInfo.InvariantCulture);
                int scale = digits.Length;
                int len = digits.Length;
                while (len > 1 && digits[len - 1] == '0') len--;
                return Compose(negative, digits.Substring(0, len), scale, 17);
            }
            string fast = ShortDecimal(Math.Abs(d));
            if (fast != null) return negative ? "-" + fast : fast;
            return FormatDoubleExact(d);
        }

        /// <summary>
        /// Cheap path for values such as 2.5 or 0.001234: if m / 10^k == |d| for an integer m of at
        /// most 15 digits, that decimal is the shortest round-trip form (15-digit decimals map to
        /// distinct doubles, and m / 10^k is a single correctly rounded division of exact operands).
        /// </summary>
        private static string ShortDecimal(double a)
        {
            if (!(a >= 1e-5 && a < 1e15)) return null;
            for (int k = 1; k <= 22; k++)
            {
                double p = s_pow10[k];
                double m = Math.Round(a * p);
                if (m >= 1e15) return null;
                if (m / p == a)
                {
                    string ms = ((long)m).ToString(CultureInfo.InvariantCulture);
                    int len = ms.Length;
                    while (len > 1 && ms[len - 1] == '0') len--;
                    return Compose(false, ms.Substring(0, len), ms.Length - k, 17);
                }
            }
            return null;
        }

        internal static string FormatDoubleExact(double d)
        {
            long bits = BitConverter.DoubleToInt64Bits(d);
            bool negative = bits < 0;
            if (d == 0) return negative ? "-0" : "0";
            int biased = (int)((bits >> 52) & 0x7FF);
            ulong frac = (ulong)bits & 0xFFFFFFFFFFFFFUL;
            ulong f; int e;
            if (biased == 0) { f = frac; e = -1074; }
            else { f = frac | (1UL << 52); e = biased - 1075; }
            bool lowerGapHalved = biased > 1 && frac == 0;
            int k;
            string ds = Shortest(f, e, lowerGapHalved, out k);
            return Compose(negative, ds, k, 17);
        }

        internal static string FormatSingle(float v)
        {
            if (float.IsNaN(v) || float.IsInfinity(v))
                throw new ArgumentException(".NET number values such as positive and negative infinity cannot be written as valid JSON. To make it work when using 'JsonSerializer', consider specifying 'JsonNumberHandling.AllowNamedFloatingPointLiterals' (see https://docs.microsoft.com/dotnet/api/system.text.json.serialization.jsonnumberhandling).");
            int bits = BitConverter.ToInt32(BitConverter.GetBytes(v), 0);
            bool negative = bits < 0;
            if (v == 0) return negative ? "-0" : "0";
            int biased = (bits >> 23) & 0xFF;
            ulong frac = (ulong)(bits & 0x7FFFFF);
            ulong f; int e;
            if (biased == 0) { f = frac; e = -149; }
            else { f = frac | (1UL << 23); e = biased - 150; }
            bool lowerGapHalved = biased > 1 && frac == 0;
            int k;
            string ds = Shortest(f, e, lowerGapHalved, out k);
            return Compose(negative, ds, k, 9);
        }

        /// <summary>
        /// Burger and Dybvig's free-format algorithm: the shortest digit string that reads back
        /// as f*2^e under round-half-even, choosing the closest one when several qualify.
        /// Returns digits D and k such that the value is 0.D * 10^k.
        /// </summary>
        private static string Shortest(ulong f, int e, bool lowerGapHalved, out int k)
        {
            bool inclusive = (f & 1) == 0; // round-half-even reading accepts the exact boundaries
            BigInteger r, s, mPlus, mMinus;
            if (e >= 0)
            {
                BigInteger be = BigInteger.One << e;
                if (!lowerGapHalved) { r = new BigInteger(f) * be * 2; s = 2; mPlus = be; mMinus = be; }
                else { r = new BigInteger(f) * be * 4; s = 4; mPlus = be * 2; mMinus = be; }
            }
            else
            {
                if (!lowerGapHalved) { r = new BigInteger(f) * 2; s = BigInteger.One << (1 - e); mPlus = 1; mMinus = 1; }
                else { r = new BigInteger(f) * 4; s = BigInteger.One << (2 - e); mPlus = 2; mMinus = 1; }
            }
            // Estimate k = ceil(log10(value)), then correct it exactly.
            double approx = (double)f * Math.Pow(2, e);
            k = (int)Math.Ceiling(Math.Log10(approx) - 1e-10);
            if (k >= 0) s *= BigInteger.Pow(10, k);
            else
            {
                BigInteger p = BigInteger.Pow(10, -k);
                r *= p; mPlus *= p; mMinus *= p;
            }
            // high = r + mPlus must satisfy high < s (or <= when exclusive) i.e. the first digit is < 10.
            while (inclusive ? (r + mPlus >= s) : (r + mPlus > s)) { s *= 10; k++; }
            while (inclusive ? ((r + mPlus) * 10 < s) : ((r + mPlus) * 10 <= s)) { r *= 10; mPlus *= 10; mMinus *= 10; k--; }

            var sb = new StringBuilder(20);
            while (true)
            {
                r *= 10; mPlus *= 10; mMinus *= 10;
                BigInteger rem;
                int digit = (int)BigInteger.DivRem(r, s, out rem);
                r = rem;
                bool low = inclusive ? r <= mMinus : r < mMinus;
                bool high = inclusive ? r + mPlus >= s : r + mPlus > s;
                if (!low && !high) { sb.Append((char)('0' + digit)); continue; }
                if (low && high)
                {
                    int cmp = (r * 2).CompareTo(s);
                    if (cmp > 0 || (cmp == 0 && (digit & 1) == 1)) digit++;
                }
                else if (high) digit++;
                sb.Append((char)('0' + digit));
                break;
            }
            return sb.ToString();
        }

        /// <summary>Lays out digits like .NET Core's "G" with shortest precision.</summary>
        private static string Compose(bool negative, string digits, int scale, int minMaxDigits)
        {
            var sb = new StringBuilder(digits.Length + 8);
            if (negative) sb.Append('-');
            int nMax = Math.Max(digits.Length, minMaxDigits);
            if (scale > nMax || scale < -3)
            {
                sb.Append(digits[0]);
                if (digits.Length > 1) { sb.Append('.'); sb.Append(digits, 1, digits.Length - 1); }
                int exp = scale - 1;
                sb.Append('E');
                sb.Append(exp < 0 ? '-' : '+');
                int a = Math.Abs(exp);
                if (a < 10) sb.Append('0');
                sb.Append(a.ToString(CultureInfo.InvariantCulture));
            }
            else if (scale <= 0)
            {
                sb.Append("0.");
                sb.Append('0', -scale);
                sb.Append(digits);
            }
            else if (digits.Length <= scale)
            {
                sb.Append(digits);
                sb.Append('0', scale - digits.Length);
            }
            else
            {
                sb.Append(digits, 0, scale);
                sb.Append('.');
                sb.Append(digits, scale, digits.Length - scale);
            }
            return sb.ToString();
        }
    }
}
