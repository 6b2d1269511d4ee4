// CodeBeaker JavaScript runner (run by Bun; it also runs under Node). Started ahead of
// time by the agent, because runtime start-up is the slow part of a call, it blocks on
// stdin for one line, the wrapped program's path, then runs it as an ordinary CommonJS
// module. Uncaught errors are reported the same way under either runtime: the stack on
// stderr, exit code 1.
'use strict';
const fs = require('fs');

function report(e) {
  let text;
  if (e && e.name === 'BuildMessage' && e.position) {
    // Bun reports a syntax error as a BuildMessage: give it Node's name and the place. The
    // program never started: the recipe's compile_error_stderr matches the last words, so
    // this is a compile_error, unlike a SyntaxError thrown while running (JSON.parse).
    const p = e.position;
    text = `SyntaxError: ${e.message}\n    at ${p.file}:${p.line}:${p.column + 1} (the program does not parse)`;
  } else if (e && e.stack) {
    text = String(e.stack);
  } else {
    text = 'Uncaught ' + String(e);
  }
  try {
    fs.writeSync(2, text + '\n');
  } finally {
    process.exit(1);
  }
}
process.on('uncaughtException', report);
process.on('unhandledRejection', report);

// One line: the program's path, then each argument base64-encoded after a tab. Read a byte
// at a time, so that what follows the line stays in the pipe: the program's stdin.
const one = Buffer.alloc(1);
const bytes = [];
while (fs.readSync(0, one, 0, 1, null) === 1 && one[0] !== 10) bytes.push(one[0]);
const [path, ...args] = Buffer.from(bytes).toString('utf8').split('\t');
// As `bun PATH ARGS...` would have it: argv[1] the program, its arguments after.
process.argv = [process.argv[0], path, ...args.map((a) => Buffer.from(a, 'base64').toString('utf8'))];
try {
  require(path);
} catch (e) {
  report(e);
}
