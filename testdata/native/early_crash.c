/* Crashes ARGV[1] milliseconds after it starts (0: at once, before any
 * sleep), ARGV[2] says where: "worker" dereferences NULL in a worker
 * thread, "libc" hands strlen a bad pointer (the fault is in libc's code).
 * For the tests of programs started through wrappers (sh -c, env) that
 * crash before a tracer reading /proc could have looked at them. */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

struct job { int id; };

__attribute__((noinline)) int handle_job(struct job *j) {
    return j->id; /* line 14: the faulting read */
}

static void *worker(void *arg) {
    (void)arg;
    handle_job(NULL);
    return NULL;
}

__attribute__((noinline)) size_t measure(const char *s) {
    return strlen(s); /* line 24: libc faults on s */
}

int main(int argc, char **argv) {
    int ms = argc > 1 ? atoi(argv[1]) : 0;
    if (ms > 0)
        usleep(ms * 1000);
    if (argc > 2 && strcmp(argv[2], "libc") == 0)
        return (int)measure((const char *)16);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    return 0;
}
