// The npm `piston-client`, unchanged, against a CodeBeaker gateway (tests/api/compat.rs
// runs it). It sends no credential and labels its JSON text/plain (node-fetch's default):
// the gateway runs with compat.anonymous on. Prints each answer; exits 1 naming every
// check that failed.
//   CODEBEAKER_URL=http://127.0.0.1:PORT node piston_client.mjs   (from a directory whose
//   node_modules has piston-client)
import piston from 'piston-client';

const client = piston({ server: process.env.CODEBEAKER_URL });
const failures = [];
function check(step, cond, got) {
  console.log(JSON.stringify({ step, ok: !!cond, got }));
  if (!cond) failures.push(step);
}

const runtimes = await client.runtimes();
const python = Array.isArray(runtimes) && runtimes.find((r) => r.language === 'python');
check('runtimes list python with a version and its aliases', python && /^\d+\.\d+\.\d+$/.test(python.version) && python.aliases.includes('py'), runtimes);

// The version piston-client picked from the list is echoed back.
let r = await client.execute('python', 'print(input())');
check('execute: empty stdin is one newline, as in Piston', r.run && r.run.stdout === '\n' && r.run.code === 0 && r.run.signal === null && r.language === 'python' && r.version === python.version, r);

r = await client.execute('python', 'print(input())', { stdin: 'hello from stdin', args: ['a', 'b c'], version: '3.x', runTimeout: 2500, compileTimeout: 5000, runMemoryLimit: 100000000 });
check('execute with stdin and options', r.run && r.run.stdout === 'hello from stdin\n' && r.run.output === 'hello from stdin\n', r);

r = await client.execute({
  language: 'python',
  version: '*',
  files: [
    { name: 'main.py', content: 'import sys\nfrom helper import twice\nprint(sys.argv[1:], twice(input()))' },
    { name: 'helper.py', content: 'def twice(s):\n    return s * 2\n' },
  ],
  stdin: 'x',
  args: ['1', 'two words'],
});
check('several files, args', r.run && r.run.stdout === "['1', 'two words'] xx\n", r);

r = await client.execute('py', 'print(input())', { stdin: 'alias' });
check('an alias (no version sent)', r.run && r.run.stdout === 'alias\n' && r.language === 'python', r);

r = await client.execute('python', 'import sys\nprint("out")\nsys.stderr.write("err\\n")\nsys.exit(3)');
check('stderr, output and a non-zero exit', r.run && r.run.stdout === 'out\n' && r.run.stderr === 'err\n' && r.run.output === 'out\nerr\n' && r.run.code === 3 && r.run.status === 'RE', r);

r = await client.execute('python', 'while True: pass', { runTimeout: 700 });
check('a time limit', r.run && r.run.signal === 'SIGKILL' && r.run.code === null && r.run.status === 'TO', r);

r = await client.execute('c', '#include <stdio.h>\nint main(void) { puts("compiled"); return 0; }');
check('a compiled language has a compile stage', r.compile && r.compile.code === 0 && r.run.stdout === 'compiled\n', r);

r = await client.execute('c', 'int main( {');
check('a compile error: run is a copy of compile', r.compile && r.compile.code !== 0 && r.compile.stderr.includes('error') && JSON.stringify(r.run) === JSON.stringify(r.compile), r);

r = await client.execute('nosuchlang', 'x', { version: '1.0.0' });
check('an unknown language is Piston\'s 400 message', r.message === 'nosuchlang-1.0.0 runtime is unknown' && Object.keys(r).length === 1, r);

r = await client.execute('python', 'x', { version: '2.7.18' });
check('a version no runtime satisfies', typeof r.message === 'string' && r.message.endsWith('runtime is unknown'), r);

if (failures.length) {
  console.error(`piston-client: failed: ${failures.join('; ')}`);
  process.exit(1);
}
