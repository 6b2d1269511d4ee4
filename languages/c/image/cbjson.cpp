// libcodebeaker-cpp.a: nlohmann::json compiled once (the templates' `extern template`) and
// the helpers declared in include/codebeaker/cb.hpp. Built by extras.sh.
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <fcntl.h>
#include <fstream>
#include <iostream>
#include <string>
#include <unistd.h>
#include <nlohmann/json.hpp>

template class nlohmann::basic_json<>;

using nlohmann::json;

void __cb_instance_done(int ctl, int code, const json *result);

bool __cb_read_input(const char *path, json &input) {
    try {
        std::ifstream f(path);
        input = json::parse(f);
    } catch (const json::exception &e) {
        std::cerr << "codebeaker: input is not a JSON object: " << e.what() << std::endl;
        return false;
    }
    if (!input.is_object()) {
        std::cerr << "codebeaker: input is not a JSON object" << std::endl;
        return false;
    }
    return true;
}

// result as JSON text; a line on stderr if it cannot be (a string that is not UTF-8: it
// is then written with U+FFFD in place of the bad bytes). NaN and Infinity are null, as
// nlohmann/json writes them.
static std::string serialize(const json &result) {
    try {
        return result.dump();
    } catch (const json::type_error &e) {
        std::cerr << "codebeaker: result is not JSON-serializable: " << e.what() << std::endl;
        return result.dump(-1, ' ', false, json::error_handler_t::replace);
    }
}

int __cb_write_output(const char *path, const json &result) {
    if (result.is_null()) return 0;
    std::string text = serialize(result);
    FILE *f = std::fopen(path, "w");
    if (f == nullptr || std::fwrite(text.data(), 1, text.size(), f) != text.size() || std::fclose(f) != 0) {
        std::cerr << "codebeaker: cannot write output: " << std::strerror(errno) << std::endl;
        return 1;
    }
    return 0;
}

static void send(int ctl, const char *buf, size_t len) {
    while (len > 0) {
        ssize_t n = write(ctl, buf, len);
        if (n < 0 && errno == EINTR) continue;
        if (n <= 0) _exit(1);
        buf += n;
        len -= size_t(n);
    }
}

static std::string pending; // bytes read from the socket past the last line

int __cb_instance_start(int argc, char **argv) {
    int ctl = fcntl(0, F_DUPFD_CLOEXEC, 3);
    int null = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (ctl < 0 || null < 0 || dup2(null, 0) < 0) {
        std::fprintf(stderr, "codebeaker: cannot move the control socket: %s\n", std::strerror(errno));
        std::exit(1);
    }
    close(null);
    for (int i = 1; i < argc; i++)
        if (std::strcmp(argv[i], "plain") == 0) {
            // A plain C++ program is a whole program with its own main: nothing to call again.
            std::fprintf(stderr, "codebeaker: plain C++ programs cannot run as a resident instance\n");
            std::exit(1);
        }
    send(ctl, "ready\n", 6);
    return ctl;
}

bool __cb_instance_next(int ctl, json &input) {
    for (;;) {
        size_t nl;
        while ((nl = pending.find('\n')) == std::string::npos) {
            char buf[65536];
            ssize_t n = read(ctl, buf, sizeof buf);
            if (n < 0 && errno == EINTR) continue;
            if (n <= 0) return false;
            pending.append(buf, size_t(n));
        }
        std::string line = pending.substr(0, nl);
        pending.erase(0, nl + 1);
        try {
            input = json::parse(line);
            if (input.is_object()) return true;
            std::cerr << "codebeaker: input is not a JSON object" << std::endl;
        } catch (const json::exception &e) {
            std::cerr << "codebeaker: input is not a JSON object: " << e.what() << std::endl;
        }
        __cb_instance_done(ctl, 1, nullptr);
    }
}

void __cb_instance_done(int ctl, int code, const json *result) {
    bool has = result != nullptr && !result->is_null();
    std::string text = has ? serialize(*result) : std::string();
    std::cout.flush();
    std::cerr.flush();
    std::fflush(stdout);
    std::fflush(stderr);
    char head[64];
    int n = std::snprintf(head, sizeof head, "done %d %lld 0\n", code, has ? (long long)text.size() : -1LL);
    send(ctl, head, size_t(n));
    if (has) send(ctl, text.data(), text.size());
}
