// Exceptions that are thrown again after being caught: the cause of the
// terminate that follows is the original exception (its type, what() and
// throwing stack), not the rethrow.
//   future: a std::async task throws on its thread; future::get() rethrows
//           it on the main thread (std::rethrow_exception), uncaught.
//   nested: a handler catches, throws and catches a second exception while
//           cleaning up, then rethrows the first (`throw;`), uncaught.
#include <cstdio>
#include <cstring>
#include <future>
#include <stdexcept>
#include <string>

__attribute__((noinline)) static int load_key(const std::string &key) {
    if (key.empty()) {
        throw std::invalid_argument("empty config key"); // line 16
    }
    return static_cast<int>(key.size());
}

__attribute__((noinline)) static void open_db(const char *url) {
    throw std::runtime_error(std::string("db down: ") + url); // line 22
}

__attribute__((noinline)) static void cleanup() {
    throw std::logic_error("cleanup failed"); // line 26
}

__attribute__((noinline)) static int wait_for(std::future<int> &f) {
    return f.get(); // line 30
}

int main(int argc, char **argv) {
    const char *mode = argc > 1 ? argv[1] : "future";
    if (std::strcmp(mode, "future") == 0) {
        std::future<int> f = std::async(std::launch::async, load_key, std::string());
        std::printf("%d\n", wait_for(f)); // line 37
    } else {
        try {
            open_db("pg://db:5432");
        } catch (...) {
            try {
                cleanup();
            } catch (const std::exception &e) {
                std::printf("cleanup: %s\n", e.what());
                std::fflush(stdout);
            }
            throw; // line 48
        }
    }
    return 0;
}
