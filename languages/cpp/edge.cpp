// CodeBeaker edge contract for C++ (GCC 12, gnu++17, nlohmann/json 3.11).
//
// The user's code is the body of main(). `input_data` is the parsed input (an
// `nlohmann::json` object, also spelled `json`); the code sets `json result`, e.g.
//     result = input_data["x"].get<int>() + 1;
// `result` left null means no result (a JSON null cannot be returned: it is also the
// "not set" state, so that `result["key"] = ...` builds an object as nlohmann/json does).
// A `return n;` ends the program with n and no result, as in C++. An uncaught exception
// ends it as C++ does (`terminate called after throwing ...`, SIGABRT). A string in the
// result that is not UTF-8 is reported on stderr and written with U+FFFD. The whole
// standard library is included (`using namespace std;`); the code cannot add includes.
#include <codebeaker/cb.hpp>
using json = nlohmann::json;
using namespace std;

int main() {
    json input_data;
    if (!__cb_read_input("/workspace/input.json", input_data)) return 1;
    json result;

{{code}}

    return __cb_write_output("/workspace/output.json", result);
}
