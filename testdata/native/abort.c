/* Calls abort() from a nested function: SIGABRT sent by the process to itself. */
#include <stdio.h>
#include <stdlib.h>

__attribute__((noinline)) void check_invariant(int ok) {
    if (!ok) {
        fprintf(stderr, "abort: invariant violated\n");
        abort();
    }
}

int main(void) {
    printf("abort: checking\n");
    fflush(stdout);
    check_invariant(0);
    return 0;
}
