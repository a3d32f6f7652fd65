/* Sends itself SIGUSR1 N times (argv[1]) with a handler installed: a flood of
 * deliveries to overflow a small ring buffer. Prints how many it handled.
 * With argv[2] = R, paces itself to about R signals a second. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

static volatile sig_atomic_t handled;

static void on_usr1(int sig) { (void)sig; handled++; }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    long rate = argc > 2 ? atol(argv[2]) : 0;
    struct timespec start;
    clock_gettime(CLOCK_MONOTONIC, &start);
    for (int i = 0; i < n; i++) {
        kill(getpid(), SIGUSR1); /* delivered before kill() returns */
        if (rate > 0 && (i + 1) % 16 == 0) {
            /* Sleep until signal i+1 is due (16 at a time: sleeps are
             * coarse), leaving the CPU to others. */
            double due = (double)(i + 1) / (double)rate;
            struct timespec at = start;
            at.tv_sec += (time_t)due;
            at.tv_nsec += (long)((due - (double)(time_t)due) * 1e9);
            if (at.tv_nsec >= 1000000000L) {
                at.tv_sec++;
                at.tv_nsec -= 1000000000L;
            }
            clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &at, NULL);
        }
    }
    printf("handled %d\n", (int)handled);
    return 0;
}
