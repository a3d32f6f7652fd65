/* Unbounded recursion: the stack overflows into its guard page (SIGSEGV). */
#include <stdio.h>

__attribute__((noinline)) static int descend(volatile char *prev, int depth) {
    volatile char frame[256];
    frame[0] = (char)depth;
    frame[255] = prev ? prev[0] : 0;
    return descend(frame, depth + 1) + frame[255]; /* line 8 */
}

int main(void) {
    printf("recursing\n");
    fflush(stdout);
    return descend(0, 0); /* line 13 */
}
