/* Three different bugs, chosen by argv[1], for crash fingerprints:
 *   0  NULL dereference in parse_header (SIGSEGV)
 *   1  integer division by zero in average (SIGFPE)
 *   2  a failed invariant: check_invariant calls abort() (SIGABRT)
 * Built again with -DSHIFT, code and lines move (other addresses, other
 * line numbers): the fingerprints must not. */
#include <stdio.h>
#include <stdlib.h>

#ifdef SHIFT
/* Code before the bugs: every function below moves. */
__attribute__((noinline)) int checksum(const char *s) {
    int sum = 0;
    while (*s)
        sum = sum * 31 + *s++;
    return sum;
}
#endif

struct header { int length; };

__attribute__((noinline)) int parse_header(struct header *h) {
    return h->length;
}

__attribute__((noinline)) int average(int total, int count) {
    return total / count;
}

__attribute__((noinline)) void check_invariant(int balance) {
    if (balance < 0)
        abort();
}

int main(int argc, char **argv) {
    int bug = argc > 1 ? atoi(argv[1]) : 0;
#ifdef SHIFT
    printf("checksum %d\n", checksum(argv[0]));
#endif
    switch (bug) {
    case 0:
        return parse_header(argc > 5 ? (struct header *)argv : NULL);
    case 1:
        return average(argc * 10, argc - 2);
    default:
        check_invariant(1 - argc - bug);
        return 0;
    }
}
