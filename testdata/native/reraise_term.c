/* A daemon that catches SIGTERM, cleans up, and re-raises it to die of it
 * (so its parent sees "killed by SIGTERM"), as well-behaved C services
 * do. Prints its pid and waits. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static void on_term(int sig) {
    static const char msg[] = "cleaning up\n";
    write(2, msg, sizeof msg - 1);
    signal(sig, SIG_DFL);
    raise(sig); /* the default action now: the process dies of SIGTERM */
}

int main(void) {
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_handler = on_term;
    sigaction(SIGTERM, &sa, NULL);
    printf("ready %d\n", getpid());
    fflush(stdout);
    for (;;) pause();
}
