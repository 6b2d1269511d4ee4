// CodeBeaker wrapper for TypeScript (run by Bun, types stripped): the user's code runs at module top level.
const __cb_fs = require('fs');
const input_data: any = JSON.parse(__cb_fs.readFileSync('/workspace/input.json', 'utf8'));

{{code}}

if (typeof result !== 'undefined') {
  let __cb_text;
  try {
    __cb_text = JSON.stringify(result);
  } catch (e) {
    process.stderr.write('codebeaker: result is not JSON-serializable: ' + e.message + '\n');
  }
  __cb_fs.writeFileSync('/workspace/output.json', __cb_text === undefined ? String(result) : __cb_text);
}
