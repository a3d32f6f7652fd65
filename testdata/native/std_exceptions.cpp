// One uncaught exception per argument, of the standard library's kinds
// whose what() crashtrace reads or knows, and one it cannot read:
//   out_of_range  std::vector::at past the end (a logic_error: message string)
//   system_error  a runtime_error subclass with an error code
//   bad_alloc     no state: what() is a constant of libstdc++
//   custom        a user class overriding what(): unreadable without a call
#include <cstdio>
#include <cstring>
#include <new>
#include <stdexcept>
#include <system_error>
#include <vector>

struct QuotaExceeded : std::exception {
    const char *what() const noexcept override { return "quota exceeded"; }
};

int main(int argc, char **argv) {
    if (argc < 2)
        return 2;
    std::vector<int> v(3);
    if (!std::strcmp(argv[1], "out_of_range"))
        return v.at(7);
    if (!std::strcmp(argv[1], "system_error"))
        throw std::system_error(std::make_error_code(std::errc::permission_denied), "opening /etc/shadow");
    if (!std::strcmp(argv[1], "bad_alloc"))
        throw std::bad_alloc();
    if (!std::strcmp(argv[1], "custom"))
        throw QuotaExceeded();
    return 2;
}
