/* Crashes in and through signal handlers.
 *   handler_crash fault    SIGUSR1's handler dereferences NULL (a crash in
 *                          a handler, interrupting work() in main)
 *   handler_crash reraise  SIGSEGV's handler cleans up and re-raises it with
 *                          the default action (as daemons do)
 * gdb's bt shows `<signal handler called>` between the handler's frames and
 * the interrupted code's. */
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

static volatile int *nothing;

__attribute__((noinline)) static void on_usr1(int sig) {
    (void)sig;
    *nothing = 1; /* line 17: the crash in the handler */
}

__attribute__((noinline)) static void on_segv(int sig) {
    signal(sig, SIG_DFL);
    raise(sig); /* line 22: re-raised with the default action */
}

__attribute__((noinline)) static int work(int mode) {
    if (mode == 0)
        raise(SIGUSR1); /* line 27 */
    else
        *nothing = 2; /* line 29: the first fault */
    return 0;
}

int main(int argc, char **argv) {
    int reraise = argc > 1 && strcmp(argv[1], "reraise") == 0;
    signal(SIGUSR1, on_usr1);
    signal(SIGSEGV, on_segv);
    printf("handler_crash %s\n", reraise ? "reraise" : "fault");
    fflush(stdout);
    return work(reraise); /* line 39 */
}
