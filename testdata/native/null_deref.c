/* Writes through a NULL pointer from a worker thread: SIGSEGV, SEGV_MAPERR, addr 0. */
#include <pthread.h>
#include <stdio.h>

struct config { int retries; };

__attribute__((noinline)) int load_retries(struct config *cfg) {
    return cfg->retries; /* line 8: the faulting read */
}

__attribute__((noinline)) static void *worker(void *arg) {
    struct config *cfg = arg;
    printf("worker: retries=%d\n", load_retries(cfg));
    return NULL;
}

int main(void) {
    printf("null_deref: starting worker\n");
    fprintf(stderr, "null_deref: stderr line\n");
    fflush(stdout);
    pthread_t t;
    pthread_create(&t, NULL, worker, NULL);
    pthread_join(t, NULL);
    return 0;
}
