/* Exits with status 3 after writing to both streams. */
#include <stdio.h>

int main(int argc, char **argv) {
    printf("exit3: stdout with %d args\n", argc);
    fprintf(stderr, "exit3: stderr\n");
    return 3;
}
