// CodeBeaker JavaScript runner. Started ahead of time by the agent (node start-up is the
// slow part of a call), it blocks on stdin for one line, the wrapped program's path,
// then runs it as an ordinary CommonJS module.
'use strict';
const fs = require('fs');
const buf = Buffer.alloc(4096);
let line = '';
while (!line.includes('\n')) {
  const n = fs.readSync(0, buf, 0, buf.length, null);
  if (n === 0) break;
  line += buf.toString('utf8', 0, n);
}
require(line.trim());
