/* CodeBeaker edge contract for C (GCC 12, gnu17, json-c 0.16).
 *
 * The user's code is the body of main(). `input_data` is the parsed input (a json-c
 * `json_object *`, an object); the code sets `json_object *result` to the value to return,
 * e.g.
 *     int x = json_object_get_int(json_object_object_get(input_data, "x"));
 *     result = json_object_new_int(x + 1);
 * `result` left NULL means no result (json-c has no separate null object: a JSON null
 * cannot be returned). A `return n;` ends the program with n and no result, as in C.
 * A result json-c cannot write as JSON (NaN, Infinity, a string that is not UTF-8) is
 * reported on stderr and written as json-c writes it. The usual headers are included;
 * the code cannot add its own (it is inside a function).
 */
#include <ctype.h>
#include <errno.h>
#include <inttypes.h>
#include <limits.h>
#include <math.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <json-c/json.h>
#include <codebeaker/cb.h>

int main(void) {
    json_object *input_data = __cb_read_input("/workspace/input.json");
    if (input_data == NULL) return 1;
    json_object *result = NULL;

{{code}}

    return __cb_write_output("/workspace/output.json", result);
}
