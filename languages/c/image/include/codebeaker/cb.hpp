// CodeBeaker's header for the C++ templates (languages/cpp/edge.cpp, instance.cpp):
// the whole standard library, nlohmann/json, and the helpers of libcodebeaker-cpp.a
// (image/cbjson.cpp). Installed in the codebeaker-c image as
// /usr/local/include/codebeaker/cb.hpp with a precompiled cb.hpp.gch beside it (built with
// the compile flags of languages/cpp/language.toml: they must match for GCC to use it),
// and nlohmann::json's members are compiled once into the library (`extern template`
// below): a cache miss compiles in ~0.7 s instead of ~3 s.
#ifndef CODEBEAKER_CB_HPP
#define CODEBEAKER_CB_HPP
#include <bits/stdc++.h>
#include <nlohmann/json.hpp>

extern template class nlohmann::basic_json<>;

// Call mode: the input file, parsed (false after a message on stderr if it is not a JSON
// object); writes result (null: no result, no file) and returns the exit code.
bool __cb_read_input(const char *path, nlohmann::json &input);
int __cb_write_output(const char *path, const nlohmann::json &result);

// Resident runner (agent/src/instance.rs): moves the control socket off fd 0, says
// `ready` (exits in plain mode: no resident form); next reads a call's input (false: the
// agent closed the socket); done flushes the call's output and answers `done`.
int __cb_instance_start(int argc, char **argv);
bool __cb_instance_next(int ctl, nlohmann::json &input);
void __cb_instance_done(int ctl, int code, const nlohmann::json *result);
#endif
