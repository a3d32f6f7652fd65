/* null_deref.c's crash one second after the start: a tracer that reads
 * debug info ahead (crashtrace in idle time, gdb when a library loads)
 * has read libc's by then. For the unwind bench's warm row. */
#include <unistd.h>
#define main null_deref_main
#include "null_deref.c"
#undef main

int main(void) {
    sleep(1);
    return null_deref_main();
}
