/* CodeBeaker resident runner for C ("isolation": "program"): this template with the
 * user's code in place of the marker, compiled once (as edge.c is), is itself the runner
 * (protocol: agent/src/instance.rs, helpers: image/include/codebeaker/cb.h). The code is
 * the body of a function called once per input, so its local variables are fresh on every
 * call; static variables, files, the environment and the heap are the process's, kept
 * between calls by design of the mode. The contract is edge.c's: `input_data` in,
 * `json_object *result` out, `return n;` ends the call with n and no result.
 *
 * exit(n) (or a crash: a signal) ends the call with n and the runner (the agent starts a
 * fresh one); stdio is flushed by exit() as in call mode. `input_data` is freed after the
 * call; `result` is not (it may be a part of `input_data`, json-c counts references):
 * a new object per call stays until the runner is replaced (max_calls).
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

static int __cb_body(json_object *input_data, json_object **__cb_result, bool *__cb_finished) {
    json_object *result = NULL;

{{code}}

    *__cb_result = result;
    *__cb_finished = true;
    return 0;
}

int main(int argc, char **argv) {
    int ctl;
    FILE *in = __cb_instance_start(argc, argv, &ctl);
    char *line = NULL;
    size_t cap = 0;
    while (getline(&line, &cap, in) > 0) {
        json_object *input_data = json_tokener_parse(line);
        if (input_data == NULL || !json_object_is_type(input_data, json_type_object)) {
            fprintf(stderr, "codebeaker: input is not a JSON object\n");
            json_object_put(input_data);
            __cb_instance_done(ctl, 1, NULL);
            continue;
        }
        json_object *result = NULL;
        bool finished = false;
        int code = __cb_body(input_data, &result, &finished);
        __cb_instance_done(ctl, code, finished ? result : NULL);
        json_object_put(input_data);
    }
    return 0;
}
