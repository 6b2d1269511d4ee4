<?php
// CodeBeaker edge contract for PHP. Your code reads `$input_data` (the input, decoded with
// json_decode(..., true): JSON objects are associative arrays) and sets `$result`:
//
//     $result = ['y' => $input_data['x'] + 1, 'name' => $input_data['user']['name'] ?? null];
//
// `$result` is written to /workspace/output.json with json_encode(JSON_UNESCAPED_UNICODE |
// JSON_UNESCAPED_SLASHES | JSON_PRESERVE_ZERO_FRACTION). Not setting it means no output;
// `$result = null` writes `null`. Arrays: a list (keys 0..n-1) is a JSON array, any other
// array a JSON object; an EMPTY array is `[]`. For an empty object write `new stdClass()`
// or `(object) []`. (So an input `{}` comes back as `[]`: PHP cannot tell them apart.)
// A value JSON cannot represent (NAN, INF, invalid UTF-8, a resource) is a clear error on
// stderr and exit code 1.
//
// Your code may start with `<?php` or not. It runs as a file of its own at the top level
// (global scope: `global $x` in your functions sees your top-level `$x`), so
// `declare(strict_types=1);` and `namespace` work, and errors name /workspace/program.php
// with your own line numbers. `exit()`/`die()` end the program with no output.
$input_data = json_decode(file_get_contents('/workspace/input.json'), true, 512, JSON_THROW_ON_ERROR);
require '/opt/codebeaker-languages/php/source.php';
CodeBeakerSource::prepare(substr(file_get_contents(__FILE__), __COMPILER_HALT_OFFSET__ + 1));
include __FILE__;
if (array_key_exists('result', $GLOBALS)) {
    $__codebeaker_text = CodeBeakerSource::encode($GLOBALS['result']);
    if ($__codebeaker_text === null) {
        exit(1);
    }
    file_put_contents('/workspace/output.json', $__codebeaker_text);
}
__halt_compiler();
{{code}}
