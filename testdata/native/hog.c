/* Memory for the OOM killer.
 *   hog hold MIB   allocate and touch MIB MiB, say "held", sleep until killed
 *   hog grow       allocate and touch 1 MiB at a time until killed
 * Output is line-buffered so a test sees "held" before it starts the next
 * process. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static void touch(size_t mib) {
    char *p = malloc(mib << 20);
    if (!p) {
        perror("malloc");
        exit(1);
    }
    memset(p, 0x5a, mib << 20);
}

int main(int argc, char **argv) {
    setvbuf(stdout, NULL, _IOLBF, 0);
    if (argc == 3 && strcmp(argv[1], "hold") == 0) {
        touch((size_t)atoi(argv[2]));
        printf("held\n");
        for (;;)
            pause();
    }
    if (argc == 2 && strcmp(argv[1], "grow") == 0) {
        for (size_t mib = 1;; mib++) {
            touch(1);
            if (mib % 16 == 0)
                usleep(1000);
        }
    }
    fprintf(stderr, "usage: hog hold MIB | hog grow\n");
    return 2;
}
