// CodeBeaker resident runner for Go ("isolation": "program"): this template with the
// user's code in place of the marker, compiled once, is itself the runner (protocol:
// agent/src/instance.rs). The code is the body of a function called once per input, so
// its variables are fresh on every call; what it leaves outside (files, environment
// variables, goroutines) is module-level state, by design of the mode.
//
// A panic in the call is printed as Go prints an uncaught one (`panic: ...` and the
// goroutine's trace) and ends the call with exit code 2, as call mode's process does; the
// runner lives on. os.Exit(n) ends the call with n and the runner (the agent starts a fresh
// one), as does a panic in a goroutine the code started (Go kills the process, code 2). A
// goroutine still running after the call is reported as `leaked` and the instance is
// replaced.
//
// The user cannot add imports: the packages of call mode's wrapper (languages/go/edge.go) are
// imported under their names, and the runner's own under names the code cannot collide
// with by accident.
package main

import (
	"encoding/json"
	"fmt"
	"math"
	"os"
	"sort"
	"strconv"
	"strings"

	__cbBufio "bufio"
	__cbBytes "bytes"
	__cbRuntime "runtime"
	__cbDebug "runtime/debug"
	__cbSyscall "syscall"
	__cbTime "time"
)

// The user cannot add imports, so the common packages are imported here and marked used.
var _ = fmt.Sprint
var _ = math.Abs
var _ = sort.Ints
var _ = strconv.Itoa
var _ = strings.ToUpper

// The user's code: `result` is what it declared; a `return` before the end means no
// result, as in call mode (where it skips the wrapper's tail).
func __cbBody(input_data map[string]interface{}) (__cbResult interface{}, __cbSet bool) {
{{code}}

	return result, true
}

func main() {
	// The control socket moves from fd 0 to a private close-on-exec descriptor and fd 0
	// becomes /dev/null: the code reads an empty stdin, its child processes do not get
	// the socket.
	ctlFd, _, errno := __cbSyscall.Syscall(__cbSyscall.SYS_FCNTL, 0, __cbSyscall.F_DUPFD_CLOEXEC, 3)
	if errno != 0 {
		fmt.Fprintln(os.Stderr, "codebeaker: cannot move the control socket:", errno)
		os.Exit(1)
	}
	null, err := __cbSyscall.Open("/dev/null", __cbSyscall.O_RDONLY|__cbSyscall.O_CLOEXEC, 0)
	if err == nil {
		err = __cbSyscall.Dup3(null, 0, 0)
		__cbSyscall.Close(null)
	}
	if err != nil {
		fmt.Fprintln(os.Stderr, "codebeaker: cannot replace stdin:", err)
		os.Exit(1)
	}
	if len(os.Args) > 2 && os.Args[2] == "plain" {
		// A plain Go program is a whole program with its own main, imports and package
		// state: there is no function to call again, so it has no resident form.
		fmt.Fprintln(os.Stderr, "codebeaker: plain Go programs cannot run as a resident instance")
		os.Exit(1)
	}
	ctl := os.NewFile(ctlFd, "control")
	in := __cbBufio.NewReaderSize(ctl, 64*1024)
	__cbSend(ctl, []byte("ready\n"))
	for {
		line, err := in.ReadBytes('\n')
		if err != nil {
			os.Exit(0)
		}
		before := __cbRuntime.NumGoroutine()
		exit, payload := __cbCall(line)
		leaked := 0
		if __cbLeftBehind(before) {
			leaked = 1
		}
		size := -1
		if payload != nil {
			size = len(payload)
		}
		head := []byte(fmt.Sprintf("done %d %d %d\n", exit, size, leaked))
		__cbSend(ctl, append(head, payload...))
	}
}

// One call: the exit code call mode's process would have, and the result JSON (nil: none).
func __cbCall(line []byte) (exit int, payload []byte) {
	var input_data map[string]interface{}
	if err := json.Unmarshal(line, &input_data); err != nil {
		fmt.Fprintln(os.Stderr, "codebeaker: input is not a JSON object:", err)
		return 1, nil
	}
	result, set, panicked := __cbProtected(input_data)
	if panicked {
		return 2, nil
	}
	if !set {
		return 0, nil
	}
	out, err := json.Marshal(result)
	if err != nil {
		fmt.Fprintln(os.Stderr, "codebeaker: result is not JSON-serializable:", err)
		out = []byte(fmt.Sprint(result))
	}
	return 0, out
}

func __cbProtected(input_data map[string]interface{}) (result interface{}, set bool, panicked bool) {
	finished := false
	defer func() {
		if finished {
			return
		}
		// A panic (recover() is nil for panic(nil) before Go 1.21: `finished` tells).
		p := recover()
		panicked = true
		fmt.Fprintf(os.Stderr, "panic: %s\n\n%s\n", __cbPanicValue(p), __cbTrace())
	}()
	result, set = __cbBody(input_data)
	finished = true
	return
}

// The panic value as the runtime prints it.
func __cbPanicValue(p interface{}) string {
	switch v := p.(type) {
	case nil:
		return "nil"
	case error:
		return v.Error()
	case fmt.Stringer:
		return v.String()
	case string:
		return v
	case bool, int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, uintptr:
		return fmt.Sprint(v)
	case float32, float64:
		return fmt.Sprintf("%+e", v)
	default:
		return fmt.Sprintf("(%T) %v", v, v)
	}
}

// The panicking goroutine's trace as Go prints it: from the frame that panicked down,
// without the runtime's panic machinery above it and the runner's frames below the code.
func __cbTrace() string {
	lines := __cbBytes.Split(__cbBytes.TrimRight(__cbDebug.Stack(), "\n"), []byte("\n"))
	if len(lines) == 0 {
		return ""
	}
	out := [][]byte{lines[0]} // goroutine N [running]:
	frames := lines[1:]
	// Frames come in pairs: function, then "\tfile:line +0x..".
	start := 0
	for i := 0; i+1 < len(frames); i += 2 {
		if __cbBytes.HasPrefix(frames[i], []byte("panic(")) {
			start = i + 2
		}
	}
	for i := start; i+1 < len(frames); i += 2 {
		fn := frames[i]
		if __cbBytes.HasPrefix(fn, []byte("runtime.")) {
			continue
		}
		if __cbBytes.HasPrefix(fn, []byte("main.__cbProtected(")) {
			break
		}
		out = append(out, fn, frames[i+1])
	}
	return string(__cbBytes.Join(out, []byte("\n")))
}

// Whether goroutines the call started are still running. One that is finishing (its
// WaitGroup.Done ran) is given a moment to go.
func __cbLeftBehind(before int) bool {
	// Yielding first (cheap); then a few short sleeps (Go's timers have about a
	// millisecond's resolution here): at most ~5 ms for a goroutine really left behind.
	for i := 0; i < 25; i++ {
		if __cbRuntime.NumGoroutine() <= before {
			return false
		}
		if i < 20 {
			__cbRuntime.Gosched()
		} else {
			__cbTime.Sleep(__cbTime.Millisecond)
		}
	}
	return __cbRuntime.NumGoroutine() > before
}

func __cbSend(ctl *os.File, b []byte) {
	if _, err := ctl.Write(b); err != nil {
		os.Exit(1)
	}
}
