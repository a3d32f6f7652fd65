/* Prints "ready PID", then sleeps in nanosleep under two functions of its
 * own until another process kills it: where a kill finds a program. Built
 * -O2 without frame pointers, as services ship, it sits in libc's
 * frameless syscall wrappers: a frame-pointer walk alone loses its callers. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

__attribute__((noinline)) static void wait_for_work(void) {
    struct timespec t = {3600, 0};
    nanosleep(&t, NULL);
}

__attribute__((noinline)) static int serve(void) {
    int rounds = 0;
    for (;;) {
        wait_for_work();
        rounds++;
        if (rounds < 0) return rounds; /* never: keeps serve a real call */
    }
}

int main(void) {
    printf("ready %d\n", getpid());
    fflush(stdout);
    return serve();
}
