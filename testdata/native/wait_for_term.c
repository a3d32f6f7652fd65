/* Prints its pid and waits to be killed by another process. */
#include <stdio.h>
#include <unistd.h>

int main(void) {
    printf("ready %d\n", getpid());
    fflush(stdout);
    for (;;) pause();
}
