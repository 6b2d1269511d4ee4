// CodeBeaker C# runner. Mono start-up and JIT warm-up cost ~100 ms, so the agent starts
// this ahead of time. It warms the JSON library the wrapper uses (CodeBeaker's
// System.Text.Json subset), then waits for one line on stdin (the compiled program's
// path), loads that assembly and calls its Main. Started as `Launcher.exe PROGRAM MODE` it
// is instead the resident runner of "isolation": "program" (CodeBeakerInstance below).
using System;
using System.IO;
using System.Reflection;
using System.Runtime.CompilerServices;
using System.Runtime.InteropServices;
using System.Text;
using System.Text.Json;
using System.Threading;

public static class CodeBeakerLauncher
{
    [DllImport("libc", EntryPoint = "_exit")]
    internal static extern void SysExit(int status);
    [DllImport("libc", SetLastError = true)]
    static extern IntPtr read(int fd, byte[] buf, IntPtr count);

    // Mono's orderly shutdown costs tens of milliseconds; the container is wiped after
    // every run, so flush what the program wrote and leave at once.
    static void Exit(int code)
    {
        Console.Out.Flush();
        Console.Error.Flush();
        SysExit(code);
    }

    public static int Main(string[] args)
    {
        if (args.Length == 2)
            return CodeBeakerInstance.Run(args[0], args[1] == "plain");
        Warm();
        // One line: the program's path, then each argument base64-encoded after a tab. Read a
        // byte at a time with read(2), never through Console.In (it would buffer ahead): what
        // follows the line stays in the pipe, the program's stdin.
        var line = new System.Collections.Generic.List<byte>();
        var one = new byte[1];
        while (read(0, one, (IntPtr)1) == (IntPtr)1 && one[0] != (byte)'\n') line.Add(one[0]);
        var parts = Encoding.UTF8.GetString(line.ToArray()).Split('\t');
        var path = parts[0];
        if (string.IsNullOrEmpty(path)) return 2;
        var programArgs = new string[parts.Length - 1];
        for (int i = 1; i < parts.Length; i++)
            programArgs[i - 1] = Encoding.UTF8.GetString(Convert.FromBase64String(parts[i]));
        var entry = Assembly.LoadFile(path.Trim()).EntryPoint;
        try
        {
            var args0 = entry.GetParameters().Length == 0 ? null : new object[] { programArgs };
            var ret = entry.Invoke(null, args0);
            Exit(ret is int code ? code : 0);
            return 0;
        }
        catch (TargetInvocationException e)
        {
            Console.Out.Flush();
            Console.Error.WriteLine("Unhandled exception: " + (e.InnerException ?? e));
            Exit(1);
            return 1;
        }
    }

    internal static void Warm()
    {
        // Warm the JSON paths the wrapper uses: their first use costs tens of milliseconds
        // of JIT, which would otherwise land on the request.
        var warm = JsonSerializer.Deserialize<JsonElement>("{\"a\":[1,2.5,\"x\",true,null],\"v\":21}");
        int sum = 0, n;
        foreach (var x in warm.GetProperty("a").EnumerateArray())
            if (x.ValueKind == JsonValueKind.Number && x.TryGetInt32(out n)) sum += n;
        JsonSerializer.Serialize(new { x = warm.GetProperty("v").GetInt32() * 2, y = sum, s = "t", l = new[] { 1.5 } });
    }
}

// The resident runner (agent/src/instance.rs states the protocol). The program is loaded and
// its Main JIT-compiled once; each input line becomes one call of Main, so every top-level
// variable of the program is a fresh local of that call while static fields (and anything
// hung on AppDomain data) persist. In edge mode the program is the instance template
// (languages/csharp/instance.cs): its `__CodeBeakerCall` class carries the input line in and
// the serialised `result` out. In plain mode the program's own Main is called per call.
//
// Mono has no Mono.Posix in this image, so the descriptors are handled with libc itself.
public static class CodeBeakerInstance
{
    [DllImport("libc", SetLastError = true)]
    static extern int fcntl(int fd, int cmd, int arg);
    [DllImport("libc", SetLastError = true)]
    static extern int open(string path, int flags);
    [DllImport("libc", SetLastError = true)]
    static extern int dup2(int from, int to);
    [DllImport("libc", SetLastError = true)]
    static extern int close(int fd);
    [DllImport("libc")]
    static extern int getpid();

    const int F_DUPFD_CLOEXEC = 1030;
    const int O_RDONLY = 0, O_CLOEXEC = 0x80000;
    const int EINTR = 4;

    static int ctl;
    static byte[] inBuf = new byte[64 * 1024];
    static int inStart, inEnd;
    static byte[] outBuf = new byte[64 * 1024];
    static readonly string[] NoArgs = new string[0];

    public static int Run(string path, bool plain)
    {
        // The control socket moves to a private close-on-exec descriptor; fd 0 becomes
        // /dev/null, so the program's stdin is empty and its children never see the socket.
        ctl = fcntl(0, F_DUPFD_CLOEXEC, 3);
        int nul = open("/dev/null", O_RDONLY);
        if (ctl < 0 || nul < 0 || dup2(nul, 0) < 0)
        {
            Console.Error.WriteLine("codebeaker: cannot set up the control socket");
            Exit(70);
        }
        close(nul);
        // The main thread's own stat file: it has the process's thread count without
        // summing every thread's times as /proc/self/stat does (~10% cheaper per call).
        statFd = open("/proc/self/task/" + getpid() + "/stat", O_RDONLY | O_CLOEXEC);
        CodeBeakerLauncher.Warm();

        var asm = Assembly.LoadFile(path);
        var entry = asm.EntryPoint;
        if (entry == null)
        {
            Console.Error.WriteLine("codebeaker: the program has no Main");
            Exit(1);
        }
        Func<string[], int> main = Invoker(entry);
        Action<string> setInput = null, setResult = null;
        Func<string> getResult = null;
        if (!plain)
        {
            var call = asm.GetType("__CodeBeakerCall");
            var input = call == null ? null : call.GetProperty("Input", BindingFlags.Public | BindingFlags.Static);
            var result = call == null ? null : call.GetProperty("Result", BindingFlags.Public | BindingFlags.Static);
            if (input == null || result == null)
            {
                Console.Error.WriteLine("codebeaker: the program was not built from the C# instance template");
                Exit(1);
            }
            setInput = (Action<string>)Delegate.CreateDelegate(typeof(Action<string>), input.GetSetMethod());
            setResult = (Action<string>)Delegate.CreateDelegate(typeof(Action<string>), result.GetSetMethod());
            getResult = (Func<string>)Delegate.CreateDelegate(typeof(Func<string>), result.GetGetMethod());
        }
        // JIT the program's Main now rather than in the first call's time.
        try { RuntimeHelpers.PrepareMethod(entry.MethodHandle); } catch (Exception) { }
        var args = entry.GetParameters().Length == 0 ? null : NoArgs;

        var utf8 = new UTF8Encoding(false);
        knownThreads = ThreadCount();
        Send("ready\n", null, 0);
        while (true)
        {
            int start, len;
            if (!ReadLine(out start, out len))
                CodeBeakerLauncher.SysExit(0);
            if (!plain)
            {
                setResult(null);
                setInput(utf8.GetString(inBuf, start, len));
            }
            int code = 0;
            string text = null;
            try
            {
                code = main(args) & 0xFF;
                if (!plain && code == 0)
                    text = getResult();
            }
            catch (Exception e)
            {
                Console.Out.Flush();
                Console.Error.WriteLine("Unhandled exception: " + Describe(e));
                code = 1;
            }
            if (!plain)
                setInput(null);
            Flush();
            int leaked = Leaked() ? 1 : 0;
            // `done <exit> <size> <leaked>\n` and the result's UTF-8 bytes, in one write.
            int size = text == null ? -1 : utf8.GetByteCount(text);
            string header = "done " + code + " " + size + " " + leaked + "\n";
            Send(header, text, Math.Max(size, 0));
        }
    }

    /// <summary>A delegate for any of Main's four signatures: no per-call reflection.</summary>
    static Func<string[], int> Invoker(MethodInfo entry)
    {
        bool hasArgs = entry.GetParameters().Length == 1;
        bool returnsInt = entry.ReturnType == typeof(int);
        if (hasArgs && returnsInt)
            return (Func<string[], int>)Delegate.CreateDelegate(typeof(Func<string[], int>), entry);
        if (hasArgs)
        {
            var a = (Action<string[]>)Delegate.CreateDelegate(typeof(Action<string[]>), entry);
            return x => { a(x); return 0; };
        }
        if (returnsInt)
        {
            var f = (Func<int>)Delegate.CreateDelegate(typeof(Func<int>), entry);
            return x => f();
        }
        var g = (Action)Delegate.CreateDelegate(typeof(Action), entry);
        return x => { g(); return 0; };
    }

    /// <summary>
    /// The exception as call mode prints it (there Main is called by reflection, so the
    /// trace ends at Main): the frames of this runner and its delegates are left out.
    /// </summary>
    static string Describe(Exception e)
    {
        var lines = e.ToString().Split('\n');
        var sb = new StringBuilder();
        foreach (var line in lines)
        {
            var t = line.TrimStart();
            if (t.StartsWith("at CodeBeakerInstance", StringComparison.Ordinal)
                || t.StartsWith("at (wrapper delegate-invoke)", StringComparison.Ordinal))
                continue;
            if (sb.Length > 0) sb.Append('\n');
            sb.Append(line);
        }
        return sb.ToString();
    }

    static void Flush()
    {
        try { Console.Out.Flush(); } catch (Exception) { }
        try { Console.Error.Flush(); } catch (Exception) { }
    }

    static void Exit(int code)
    {
        Flush();
        CodeBeakerLauncher.SysExit(code);
    }

    /// <summary>The next input line in inBuf[start, start+len), without its newline.</summary>
    static bool ReadLine(out int start, out int len)
    {
        int scanned = inStart;
        while (true)
        {
            int nl = Array.IndexOf(inBuf, (byte)'\n', scanned, inEnd - scanned);
            if (nl >= 0)
            {
                start = inStart;
                len = nl - inStart;
                inStart = nl + 1;
                return true;
            }
            scanned = inEnd;
            if (inStart > 0)
            {
                // Move the partial line to the front to make room.
                Buffer.BlockCopy(inBuf, inStart, inBuf, 0, inEnd - inStart);
                scanned -= inStart;
                inEnd -= inStart;
                inStart = 0;
            }
            if (inEnd == inBuf.Length)
                Array.Resize(ref inBuf, inBuf.Length * 2);
            long n = ReadSome(inBuf, inEnd, inBuf.Length - inEnd);
            if (n <= 0)
            {
                start = len = 0;
                return false;
            }
            inEnd += (int)n;
        }
    }

    static long ReadSome(byte[] buf, int offset, int count)
    {
        // read(2) into the array's tail: a pinned slice keeps it allocation-free.
        var h = GCHandle.Alloc(buf, GCHandleType.Pinned);
        try
        {
            while (true)
            {
                long n = (long)ReadPtr(ctl, h.AddrOfPinnedObject() + offset, (IntPtr)count);
                if (n < 0 && Marshal.GetLastWin32Error() == EINTR) continue;
                return n;
            }
        }
        finally { h.Free(); }
    }

    [DllImport("libc", EntryPoint = "read", SetLastError = true)]
    static extern IntPtr ReadPtr(int fd, IntPtr buf, IntPtr count);
    [DllImport("libc", EntryPoint = "write", SetLastError = true)]
    static extern IntPtr WritePtr(int fd, IntPtr buf, IntPtr count);

    static void Send(string header, string text, int payload)
    {
        int need = header.Length + payload;
        if (outBuf.Length < need)
            outBuf = new byte[Math.Max(need, outBuf.Length * 2)];
        int n = Encoding.ASCII.GetBytes(header, 0, header.Length, outBuf, 0);
        if (payload > 0)
            n += Encoding.UTF8.GetBytes(text, 0, text.Length, outBuf, n);
        var h = GCHandle.Alloc(outBuf, GCHandleType.Pinned);
        try
        {
            int off = 0;
            while (off < n)
            {
                long w = (long)WritePtr(ctl, h.AddrOfPinnedObject() + off, (IntPtr)(n - off));
                if (w < 0)
                {
                    if (Marshal.GetLastWin32Error() == EINTR) continue;
                    // The agent is gone: nothing is left to answer.
                    CodeBeakerLauncher.SysExit(0);
                }
                off += (int)w;
            }
        }
        finally { h.Free(); }
    }

    // --- Leftover threads ---------------------------------------------------------------
    // Mono starts and stops threads of its own (the GC's, the finalizer, the thread pool's
    // workers and timer threads), so the agent judges by processes (`threads_vary`) and this
    // runner reports the call's own threads: a thread-pool work item still running, or an
    // OS thread that is not one of Mono's (an unnamed `new Thread` is "mono", the process
    // name; a named one carries its name). The thread count from /proc/self/stat is the
    // cheap check after each call; the names are read only when it changed.

    static int statFd = -1;
    static byte[] statBuf = new byte[1024];
    static int knownThreads;

    static bool Leaked()
    {
        if (PoolBusy() == 0 && ThreadCount() == knownThreads)
            return false;
        // A thread the call joined may still be on its way out: give it a moment.
        for (int i = 0; i < 20; i++)
        {
            if (PoolBusy() == 0 && ForeignThreads() == 0)
            {
                knownThreads = ThreadCount();
                return false;
            }
            Thread.Sleep(1);
        }
        return true;
    }

    static int PoolBusy()
    {
        int w, io, maxW, maxIo;
        ThreadPool.GetAvailableThreads(out w, out io);
        ThreadPool.GetMaxThreads(out maxW, out maxIo);
        return (maxW - w) + (maxIo - io);
    }

    /// <summary>num_threads from /proc/self/stat (field 20), or -1.</summary>
    static int ThreadCount()
    {
        if (statFd < 0) return -1;
        // (A byte[] argument is pinned by the marshaller: no handle of our own.)
        long n = (long)pread(statFd, statBuf, (IntPtr)statBuf.Length, IntPtr.Zero);
        if (n <= 0) return -1;
        // The command name (field 2) is in parentheses and may hold anything: count from
        // the last ')'. Field 3 follows it, so field 20 is the 18th after it.
        int i = Array.LastIndexOf(statBuf, (byte)')', (int)n - 1);
        if (i < 0) return -1;
        int field = 2;
        int value = 0;
        for (i++; i < n; i++)
        {
            byte b = statBuf[i];
            if (b == (byte)' ') { field++; if (field > 20) break; value = 0; continue; }
            if (field == 20 && b >= (byte)'0' && b <= (byte)'9') value = value * 10 + (b - '0');
        }
        return field >= 20 ? value : -1;
    }

    [DllImport("libc", SetLastError = true)]
    static extern IntPtr pread(int fd, byte[] buf, IntPtr count, IntPtr offset);

    static readonly string[] MonoThreads = { "SGen", "Finalizer", "Timer-Scheduler", "Thread Pool", "Mono" };

    static int ForeignThreads()
    {
        int me = getpid(), foreign = 0;
        string[] tasks;
        try { tasks = Directory.GetDirectories("/proc/self/task"); }
        catch (Exception) { return 0; }
        foreach (var dir in tasks)
        {
            int tid;
            if (!int.TryParse(Path.GetFileName(dir), out tid) || tid == me) continue;
            string name;
            try { name = File.ReadAllText(dir + "/comm").TrimEnd('\n'); }
            catch (Exception) { continue; }
            bool ours = false;
            foreach (var m in MonoThreads)
                if (name.StartsWith(m, StringComparison.Ordinal)) { ours = true; break; }
            if (!ours) foreign++;
        }
        return foreign;
    }
}
