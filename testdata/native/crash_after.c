/* Sleeps argv[1] ms, then dereferences NULL in handle_job; "exec": becomes
 * `sleep 0.3`; "stdin": crashes once a line (or EOF) comes on stdin. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
struct job { int id; };

__attribute__((noinline)) int handle_job(struct job *j) {
    return j->id; /* line 10: the faulting read */
}

int main(int argc, char **argv) {
    if (argc > 1 && strcmp(argv[1], "exec") == 0) {
        execl("/bin/sleep", "sleep", "0.3", (char *)NULL);
        return 1;
    }
    if (argc > 1 && strcmp(argv[1], "stdin") == 0) {
        char line[16];
        (void)!fgets(line, sizeof line, stdin);
        return handle_job(NULL);
    }
    usleep((argc > 1 ? atoi(argv[1]) : 0) * 1000);
    return handle_job(NULL);
}
