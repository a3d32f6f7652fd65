/* Sends itself SIGUSR1 N times (argv[1]) with a handler installed: a flood of
 * deliveries to overflow a small ring buffer. Prints how many it handled. */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static volatile sig_atomic_t handled;

static void on_usr1(int sig) { (void)sig; handled++; }

int main(int argc, char **argv) {
    int n = argc > 1 ? atoi(argv[1]) : 1000;
    struct sigaction sa = {0};
    sa.sa_handler = on_usr1;
    sigaction(SIGUSR1, &sa, NULL);
    for (int i = 0; i < n; i++)
        kill(getpid(), SIGUSR1); /* delivered before kill() returns */
    printf("handled %d\n", (int)handled);
    return 0;
}
