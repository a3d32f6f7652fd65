/* Prints "ready PID", waits for a line on stdin, then dereferences NULL in
 * parse_request: a crash at a moment the test chooses (after it deleted or
 * replaced this program's file, for instance). */
#include <stdio.h>
#include <unistd.h>

struct request { int length; };

__attribute__((noinline)) int parse_request(struct request *r) {
    return r->length; /* line 10: the faulting read */
}

int main(void) {
    char line[64];
    printf("ready %d\n", getpid());
    fflush(stdout);
    if (!fgets(line, sizeof line, stdin))
        return 1;
    return parse_request(line[0] == '!' ? (struct request *)line : NULL);
}
