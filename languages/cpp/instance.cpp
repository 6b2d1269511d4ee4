// CodeBeaker resident runner for C++ ("isolation": "program"): this template with the
// user's code in place of the marker, compiled once (as edge.cpp is), is itself the
// runner (protocol: agent/src/instance.rs; helpers in libcodebeaker-cpp.a, see
// languages/c/image/cbjson.cpp). The code is the body of a function called once per
// input, so its local variables are fresh on every call; static variables, files, the
// environment and the heap are the process's, kept between calls by design of the mode.
// The contract is edge.cpp's: `input_data` in, `json result` out (null: no result),
// `return n;` ends the call with n and no result.
//
// exit(n) ends the call with n and the runner (the agent starts a fresh one); so does an
// uncaught exception (std::terminate, SIGABRT, as in call mode) or a crash.
#include <codebeaker/cb.hpp>
using json = nlohmann::json;
using namespace std;

static int __cb_body(json &input_data, json &result, bool &__cb_finished) {

{{code}}

    __cb_finished = true;
    return 0;
}

int main(int argc, char **argv) {
    int ctl = __cb_instance_start(argc, argv);
    json input_data;
    while (__cb_instance_next(ctl, input_data)) {
        json result;
        bool finished = false;
        int code = __cb_body(input_data, result, finished);
        __cb_instance_done(ctl, code, finished ? &result : nullptr);
    }
    return 0;
}
