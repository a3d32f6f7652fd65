// Throws and catches N exceptions (control flow by exception, as some
// parsers and RPC stacks do); prints "ns/op <float>".
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <stdexcept>

__attribute__((noinline)) static int parse(int i) {
    if (i >= 0)
        throw std::invalid_argument("not a number");
    return i;
}

int main(int argc, char **argv) {
    long n = argc > 1 ? std::atol(argv[1]) : 100000;
    long caught = 0;
    auto start = std::chrono::steady_clock::now();
    for (long i = 0; i < n; i++) {
        try {
            parse((int)i);
        } catch (const std::invalid_argument &) {
            caught++;
        }
    }
    auto ns = std::chrono::duration<double, std::nano>(std::chrono::steady_clock::now() - start).count();
    std::printf("caught %ld\nns/op %.1f\n", caught, ns / (double)n);
    return 0;
}
