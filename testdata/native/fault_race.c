/* A crash that races another thread of the same process: argv[1] says what
 * that thread does, "fork" (forks children that exit at once, in a loop),
 * "exec" (execs /bin/true), "exit" (exit_group with status 3) or "none".
 * The main thread dereferences NULL in crash_now after argv[2] microseconds.
 * Whichever wins, the tracer's incident must agree with the wait status. */
#include <pthread.h>
#include <stdlib.h>
#include <sys/wait.h>
#include <unistd.h>

static const char *mode = "none";

static void *other(void *arg) {
    (void)arg;
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
    int delay_us = argc > 2 ? atoi(argv[2]) : 0;
    pthread_t t;
    pthread_create(&t, NULL, other, NULL);
    usleep((useconds_t)delay_us);
    crash_now((volatile int *)(long)(argc > 100));
    return 0;
}
