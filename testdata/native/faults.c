// Faults other than a NULL dereference, one per argument, each in its own
// function so the faulting frame is known:
//   div    integer division by zero      SIGFPE  FPE_INTDIV, addr = the pc
//   align  unaligned load with the x86 alignment-check flag set
//                                        SIGBUS  BUS_ADRALN
//   bus    load from a file mapping past the file's end
//                                        SIGBUS  BUS_ADRERR, addr printed first
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

volatile int divisor = 0;

__attribute__((noinline)) int average(int total) {
    return total / divisor;
}

__attribute__((noinline)) int read_unaligned(const char *buf) {
    // EFLAGS.AC: the CPU now faults on unaligned data accesses in user mode.
    __asm__ volatile("pushf\n\torl $0x40000, (%%rsp)\n\tpopf" ::: "memory", "cc");
    return *(volatile const int *)(buf + 1);
}

__attribute__((noinline)) int read_past_eof(const volatile char *p) {
    return p[0];
}

int main(int argc, char **argv) {
    if (argc < 2) {
        fprintf(stderr, "usage: faults div|align|bus\n");
        return 2;
    }
    if (strcmp(argv[1], "div") == 0)
        return average(42);
    if (strcmp(argv[1], "align") == 0) {
        static char buf[16] __attribute__((aligned(16)));
        return read_unaligned(buf);
    }
    if (strcmp(argv[1], "bus") == 0) {
        FILE *f = tmpfile();
        if (!f || ftruncate(fileno(f), 4096) != 0)
            return 3;
        char *p = mmap(NULL, 4096, PROT_READ, MAP_SHARED, fileno(f), 0);
        if (p == MAP_FAILED || ftruncate(fileno(f), 0) != 0)
            return 3;
        printf("mapped %p\n", (void *)p);
        fflush(stdout);
        return read_past_eof(p);
    }
    return 2;
}
