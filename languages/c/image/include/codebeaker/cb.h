/* CodeBeaker's helpers for the C templates (languages/c/edge.c, instance.c): reading the
 * input, writing the result, and the resident runner's side of the control-socket protocol
 * (agent/src/instance.rs). Installed in the codebeaker-c image as
 * /usr/local/include/codebeaker/cb.h; everything here is static and named __cb_*.
 */
#ifndef CODEBEAKER_CB_H
#define CODEBEAKER_CB_H
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <json-c/json.h>

#define __CB_UNUSED __attribute__((unused))

/* The input file, parsed; NULL (after a message on stderr) if it is not a JSON object. */
static __CB_UNUSED json_object *__cb_read_input(const char *path) {
    json_object *in = json_object_from_file(path);
    if (in == NULL || !json_object_is_type(in, json_type_object)) {
        fprintf(stderr, "codebeaker: input is not a JSON object: %s\n",
                in == NULL ? json_util_get_last_err() : "not an object");
        return NULL;
    }
    return in;
}

/* A number JSON cannot hold (NaN, Infinity) anywhere in v. */
static __CB_UNUSED bool __cb_nonfinite(json_object *v) {
    switch (json_object_get_type(v)) {
    case json_type_double:
        return !isfinite(json_object_get_double(v));
    case json_type_array:
        for (size_t i = 0, n = json_object_array_length(v); i < n; i++)
            if (__cb_nonfinite(json_object_array_get_idx(v, i))) return true;
        return false;
    case json_type_object: {
        json_object_object_foreach(v, key, val) {
            (void)key;
            if (__cb_nonfinite(val)) return true;
        }
        return false;
    }
    default:
        return false;
    }
}

/* result as JSON text (owned by result); a line on stderr if it is not valid JSON. */
static __CB_UNUSED const char *__cb_serialize(json_object *result, size_t *len) {
    const char *text = json_object_to_json_string_length(
        result, JSON_C_TO_STRING_PLAIN | JSON_C_TO_STRING_NOSLASHESCAPE, len);
    if (__cb_nonfinite(result)) {
        fprintf(stderr, "codebeaker: result is not JSON-serializable: NaN or Infinity is not a JSON number\n");
        return text;
    }
    struct json_tokener *tok = json_tokener_new();
    if (tok != NULL) {
        json_tokener_set_flags(tok, JSON_TOKENER_STRICT | JSON_TOKENER_VALIDATE_UTF8);
        /* len + 1: the terminating NUL ends a number at the end of the text. */
        json_object *back = json_tokener_parse_ex(tok, text, (int)*len + 1);
        if (back == NULL)
            fprintf(stderr, "codebeaker: result is not JSON-serializable: %s\n",
                    json_tokener_error_desc(json_tokener_get_error(tok)));
        json_object_put(back);
        json_tokener_free(tok);
    }
    return text;
}

/* Call mode: writes result (NULL: no result, no file). The program's exit code. */
static __CB_UNUSED int __cb_write_output(const char *path, json_object *result) {
    if (result == NULL) return 0;
    size_t len;
    const char *text = __cb_serialize(result, &len);
    FILE *f = fopen(path, "w");
    if (f == NULL || fwrite(text, 1, len, f) != len || fclose(f) != 0) {
        fprintf(stderr, "codebeaker: cannot write output: %s\n", strerror(errno));
        return 1;
    }
    return 0;
}

/* Resident runner: the control socket. */
static __CB_UNUSED void __cb_send(int ctl, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(ctl, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(1);
        buf += n;
        len -= (size_t)n;
    }
}

/* Moves the control socket off fd 0 (stdin becomes /dev/null), says `ready`; the socket
 * as a stream to read the calls from. Exits if the mode is plain (no resident form). */
static __CB_UNUSED FILE *__cb_instance_start(int argc, char **argv, int *ctl) {
    *ctl = fcntl(0, F_DUPFD_CLOEXEC, 3);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (*ctl < 0 || null < 0 || dup2(null, 0) < 0) {
        fprintf(stderr, "codebeaker: cannot move the control socket: %s\n", strerror(errno));
        exit(1);
    }
    close(null);
    for (int i = 1; i < argc; i++)
        if (strcmp(argv[i], "plain") == 0) {
            /* A plain C program is a whole program with its own main: nothing to call again. */
            fprintf(stderr, "codebeaker: plain C programs cannot run as a resident instance\n");
            exit(1);
        }
    FILE *in = fdopen(*ctl, "r");
    if (in == NULL) exit(1);
    __cb_send(*ctl, "ready\n", 6);
    return in;
}

/* Ends a call: flushes what it printed, then `done <exit> <size> 0` and the result. */
static __CB_UNUSED void __cb_instance_done(int ctl, int code, json_object *result) {
    size_t len = 0;
    const char *text = result != NULL ? __cb_serialize(result, &len) : NULL;
    fflush(stdout);
    fflush(stderr);
    char head[64];
    int n = snprintf(head, sizeof head, "done %d %lld 0\n", code,
                     text != NULL ? (long long)len : -1LL);
    __cb_send(ctl, head, (size_t)n);
    if (text != NULL) __cb_send(ctl, text, len);
}
#endif
