// CodeBeaker resident runner for JavaScript ("isolation": "program"), run by Bun.
//
// Started by the agent as the sandbox user with a control socket as fd 0 and the call's
// stdout/stderr as pipes (protocol: agent/src/instance.rs). It builds the program once into
// a function of `input_data` (a CommonJS module whose export is that function, so
// `require`, `module`, `__filename` and `__dirname` are what call mode gives), says
// "ready", then per input line calls the function, awaits it if the code uses top-level
// `await`, and answers "done <exit> <result bytes or -1> <leaked>\n" + the result bytes.
//
// Per call: the code's top-level `let`/`const`/`var` are the function's locals, fresh each
// call. A `result` assigned without a declaration is a property of `globalThis` (sloppy
// mode): it is deleted before each call so it does not carry over. Everything else on
// `globalThis`, modules loaded with `require` and their state persist, by design of the
// mode.
//
// An exception thrown by the code (or an async body's rejection) is the call's failure,
// printed as call mode's launcher prints it (the stack, exit code 1); the instance lives
// on. `process.exit(n)` ends the call with code n and this process (the agent starts a
// fresh instance), as do errors that escape asynchronously (an exception in a timer, an
// unhandled rejection): call mode exits with code 1 on those too.
//
// Asynchronous work left pending by a call. Bun cannot list the event loop's pending
// handles (`process.getActiveResourcesInfo()` returns []), so the runner tracks timers
// itself: `setTimeout`, `setInterval` and `setImmediate` (global and `require('timers')`)
// are wrapped, and a call is not done until its timers have fired or been cleared, which
// is what call mode does (the process stays alive until its event loop is empty; an
// interval never cleared ends in the call's timeout either way). Microtasks and unhandled
// rejections are settled after every call (one turn of the event loop, ~1 µs). Other
// pending I/O (an unawaited `fs.promises` read, a `.unref()`ed timer) is module-level
// state: its callbacks run during a later call, when that call yields to the event loop.
// A child process left behind is seen by the agent, which replaces the instance.
'use strict';
const fs = require('fs');
const Module = require('module');
const pathMod = require('path');

const [path, mode] = process.argv.slice(2);
const plain = mode === 'plain';
const LAUNCHER = __filename;

function writeAll(fd, buf) {
  let off = 0;
  while (off < buf.length) {
    try {
      off += fs.writeSync(fd, buf, off, buf.length - off);
    } catch (e) {
      if (e.code !== 'EAGAIN' && e.code !== 'EINTR') throw e;
    }
  }
}

// The stack as call mode's launcher prints it, without this runner's own frames.
function describe(e) {
  if (e && e.name === 'BuildMessage' && e.position) {
    const p = e.position;
    return `SyntaxError: ${e.message}\n    at ${path}:${p.line}:${p.column + 1}`;
  }
  if (e && e.stack) {
    return String(e.stack)
      .split('\n')
      .filter((l) => !(l.trimStart().startsWith('at ') && l.includes(LAUNCHER)))
      .join('\n');
  }
  return 'Uncaught ' + String(e);
}

function printError(e) {
  let text;
  try {
    text = describe(e);
  } catch (_) {
    text = 'Uncaught exception';
  }
  try {
    fs.writeSync(2, text + '\n');
  } catch (_) {
    // stderr is gone: the agent sees the exit code.
  }
}

// Errors that escape a call asynchronously end this process, as in call mode.
function fatal(e) {
  printError(e);
  process.exit(1);
}
process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);

// The control socket moves from fd 0 to a private close-on-exec descriptor, and fd 0
// becomes /dev/null: the code reads an empty stdin and its child processes do not get the
// socket. Node's `fs` has no dup, so libc's `dup3` is called through `bun:ffi`.
let ctl;
try {
  const { dlopen } = require('bun:ffi');
  const libc = dlopen('libc.so.6', { dup3: { args: ['i32', 'i32', 'i32'], returns: 'i32' } });
  const O_CLOEXEC = 0o2000000;
  // A free descriptor number to take over (dup3 replaces it atomically).
  const spare = fs.openSync('/dev/null', 'r');
  if (libc.symbols.dup3(0, spare, O_CLOEXEC) !== spare) throw new Error('dup3 of the control socket failed');
  ctl = spare;
  const nul = fs.openSync('/dev/null', 'r');
  if (libc.symbols.dup3(nul, 0, 0) !== 0) throw new Error('dup3 of /dev/null failed');
  fs.closeSync(nul);
  libc.close();
} catch (e) {
  fs.writeSync(2, `codebeaker: the resident JavaScript runner cannot set up its control socket: ${e && e.message}\n`);
  process.exit(1);
}

// Timers, counted until they fire or are cleared (see the header).
const pending = new Set();
let wake = null;
function settle(h) {
  if (pending.delete(h) && pending.size === 0 && wake) {
    const w = wake;
    wake = null;
    w();
  }
}
const real = {
  setTimeout: globalThis.setTimeout,
  setInterval: globalThis.setInterval,
  setImmediate: globalThis.setImmediate,
  clearTimeout: globalThis.clearTimeout,
  clearInterval: globalThis.clearInterval,
  clearImmediate: globalThis.clearImmediate,
};
function track(h) {
  pending.add(h);
  // An unref'ed timer does not keep call mode's process alive: the call does not wait.
  if (h && typeof h.unref === 'function') {
    const unref = h.unref;
    h.unref = function () {
      settle(h);
      return unref.apply(this, arguments);
    };
  }
  return h;
}
function wrapOnce(set) {
  return function (fn, ...rest) {
    if (typeof fn !== 'function') return set(fn, ...rest);
    let h;
    h = set(function () {
      settle(h);
      return fn.apply(this, arguments);
    }, ...rest);
    return track(h);
  };
}
const timers = {
  setTimeout: wrapOnce(real.setTimeout),
  setImmediate: wrapOnce(real.setImmediate),
  setInterval(fn, ...rest) {
    return track(real.setInterval(fn, ...rest));
  },
  clearTimeout(h) {
    settle(h);
    return real.clearTimeout(h);
  },
  clearInterval(h) {
    settle(h);
    return real.clearInterval(h);
  },
  clearImmediate(h) {
    settle(h);
    return real.clearImmediate(h);
  },
};
Object.assign(globalThis, timers);
try {
  Object.assign(require('timers'), timers);
} catch (_) {
  // A frozen module: its timers are untracked (module-level state, see the header).
}
const realSetImmediate = real.setImmediate;

// Workers (threads of JavaScript's own kind), counted until they exit: one still running
// after a call is reported as `leaked`, and the agent replaces the instance (the agent
// cannot see them: Bun's own threads vary, so it counts processes only).
const workers = new Set();
function trackWorkers(W, gone) {
  if (typeof W !== 'function') return W;
  return new Proxy(W, {
    construct(target, args, newTarget) {
      const w = Reflect.construct(target, args, newTarget);
      workers.add(w);
      const done = () => workers.delete(w);
      if (gone === 'exit') w.on('exit', done);
      else w.addEventListener('close', done);
      return w;
    },
  });
}
globalThis.Worker = trackWorkers(globalThis.Worker, 'close');
try {
  const wt = require('worker_threads');
  wt.Worker = trackWorkers(wt.Worker, 'exit');
} catch (_) {
  // Not patchable: such workers are caught by the call's timeout at worst.
}

// The program, built once. TypeScript (the same runner serves it) is transpiled first:
// types stripped, not checked, as Bun does for a .ts file in call mode.
const loader = path.endsWith('.ts') ? 'ts' : 'js';
let source = fs.readFileSync(path, 'utf8');
if (loader === 'ts') {
  try {
    source = new Bun.Transpiler({ loader: 'ts' }).transformSync(source);
  } catch (e) {
    printError(e);
    process.exit(1);
  }
}
const params = plain ? '__cb_out' : 'input_data, __cb_out';
// Runs only if the code reaches its end, like the wrapper's tail in call mode (a top-level
// `return` there skips it: no result).
const tail = plain
  ? ''
  : '\n;__cb_out.has = typeof result !== "undefined"; if (__cb_out.has) __cb_out.value = result;';

function build(kind) {
  const m = new Module(path, null);
  m.filename = path;
  m.paths = Module._nodeModulePaths(pathMod.dirname(path));
  // On the code's first line, so that line and column numbers are the code's own.
  m._compile(`module.exports = ${kind}function (${params}) {${source}${tail}\n};`, path);
  return m.exports;
}

let fn;
let isAsync = false;
try {
  try {
    fn = build('');
  } catch (e) {
    if (!(e instanceof SyntaxError) || !/\bawait\b/.test(source)) throw e;
    // Top-level await: an async function, awaited per call.
    fn = build('async ');
    isAsync = true;
  }
} catch (e) {
  // Bun's parser says where, as call mode reports a syntax error; JSC's message does not.
  let err = e;
  try {
    new Bun.Transpiler({ loader }).transformSync(source);
  } catch (b) {
    err = b;
  }
  printError(err);
  process.exit(1);
}

// Reading the control socket: one input per line.
const chunk = Buffer.allocUnsafe(64 * 1024);
let rest = Buffer.alloc(0);
function readLine() {
  for (;;) {
    const nl = rest.indexOf(10);
    if (nl >= 0) {
      const line = rest.toString('utf8', 0, nl);
      rest = rest.subarray(nl + 1);
      return line;
    }
    let n;
    try {
      n = fs.readSync(ctl, chunk, 0, chunk.length, null);
    } catch (e) {
      if (e.code === 'EAGAIN' || e.code === 'EINTR') continue;
      return null;
    }
    if (n === 0) return null;
    const got = Buffer.from(chunk.subarray(0, n));
    rest = rest.length ? Buffer.concat([rest, got]) : got;
  }
}

function turn() {
  return new Promise((r) => realSetImmediate(r));
}

async function main() {
  writeAll(ctl, Buffer.from('ready\n'));
  for (;;) {
    const line = readLine();
    if (line === null) process.exit(0);
    try {
      delete globalThis.result;
    } catch (_) {
      // Made non-configurable by the code: it stays, as module-level state.
    }
    const out = { has: false, value: undefined };
    let exit = 0;
    try {
      if (plain) {
        const r = fn(out);
        if (isAsync) await r;
      } else {
        const input = JSON.parse(line);
        const r = fn(input, out);
        if (isAsync) await r;
      }
      // Call mode's process lives until its timers are done.
      while (pending.size > 0) {
        await new Promise((r) => {
          wake = r;
        });
      }
    } catch (e) {
      printError(e);
      exit = 1;
    }
    // Microtasks the call queued, and its unhandled rejections (fatal, as in call mode).
    await turn();
    if (process.exitCode) {
      // `process.exitCode = n` makes call mode's process exit with n at its end.
      exit = Number(process.exitCode) & 0xff;
      process.exitCode = 0;
    }
    let payload = null;
    if (exit === 0 && !plain && out.has) {
      let text;
      try {
        text = JSON.stringify(out.value);
      } catch (e) {
        fs.writeSync(2, 'codebeaker: result is not JSON-serializable: ' + e.message + '\n');
      }
      try {
        payload = Buffer.from(text === undefined ? String(out.value) : text, 'utf8');
      } catch (e) {
        // String() threw too: call mode dies of it, uncaught.
        printError(e);
        exit = 1;
      }
    }
    // Output written with console.log or process.stdout.write is out before "done": Bun
    // writes to pipes synchronously from the call's own turn.
    const size = payload === null ? -1 : payload.length;
    const leaked = workers.size > 0 ? 1 : 0;
    const head = Buffer.from(`done ${exit} ${size} ${leaked}\n`);
    writeAll(ctl, payload === null ? head : Buffer.concat([head, payload]));
  }
}

main().catch(fatal);
