/* A crash that races another thread of the same process: argv[1] says what
 * that thread does, "fork" (forks children that exit at once, in a loop),
 * "exec" (execs /bin/true), "exit" (exit_group with status 3) or "none".
 * Both threads start together; the main thread dereferences NULL in
 * crash_now argv[2] microseconds later, the other acts argv[3] microseconds
 * later (busy waits: µs precision), so the caller can move the race's
 * winner. Whichever wins, the tracer's incident must agree with the wait
 * status. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static const char *mode = "none";
static long other_delay_us;
static pthread_barrier_t start;

static void spin_us(long us) {
    struct timespec t0, t;
    clock_gettime(CLOCK_MONOTONIC, &t0);
    do
        clock_gettime(CLOCK_MONOTONIC, &t);
    while ((t.tv_sec - t0.tv_sec) * 1000000L + (t.tv_nsec - t0.tv_nsec) / 1000 < us);
}

static void *other(void *arg) {
    (void)arg;
    pthread_barrier_wait(&start);
    spin_us(other_delay_us);
    for (;;) {
        if (mode[0] == 'f') {
            pid_t c = fork();
            if (c == 0)
                _exit(0);
            if (c > 0)
                waitpid(c, NULL, 0);
        } else if (mode[1] == 'x' && mode[2] == 'e') {
            execl("/bin/true", "true", (char *)NULL);
        } else if (mode[1] == 'x') {
            _exit(3);
        } else {
            pause();
        }
    }
    return NULL;
}

__attribute__((noinline)) void crash_now(volatile int *p) { *p = 42; }

int main(int argc, char **argv) {
    if (argc > 1)
        mode = argv[1];
    long delay_us = argc > 2 ? atol(argv[2]) : 0;
    other_delay_us = argc > 3 ? atol(argv[3]) : 0;
    pthread_barrier_init(&start, NULL, 2);
    pthread_t t;
    pthread_create(&t, NULL, other, NULL);
    pthread_barrier_wait(&start);
    spin_us(delay_us);
    crash_now((volatile int *)(long)(argc > 100));
    return 0;
}
