// Throws and catches a thousand exceptions (normal control flow, must not
// flood the trace), then throws one nobody catches: std::terminate, abort.
#include <cstdio>
#include <stdexcept>
#include <string>

struct Config {
    std::string path;
};

__attribute__((noinline)) static int parse_port(const std::string &s) {
    if (s.empty() || s[0] < '0' || s[0] > '9') {
        throw std::invalid_argument("not a number: " + s); // line 13
    }
    return std::stoi(s);
}

__attribute__((noinline)) static void load_config(const Config &c) {
    throw std::runtime_error("config file missing: " + c.path); // line 19
}

int main() {
    int bad = 0;
    for (int i = 0; i < 1000; i++) {
        try {
            parse_port("x");
        } catch (const std::invalid_argument &) {
            bad++;
        }
    }
    std::printf("caught %d\n", bad);
    std::fflush(stdout);
    load_config(Config{"/etc/app.conf"}); // line 33
    return 0;
}
