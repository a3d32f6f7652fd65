// cgocrash: C code called through cgo dereferences NULL. The Go runtime's
// signal handler cannot turn a fault in C code into a panic: it prints the
// signal, "signal arrived during cgo execution" and every goroutine, and
// exits 2.
package main

/*
#include <stddef.h>
__attribute__((noinline)) static int crash(int *p) { return *p + 1; }
__attribute__((noinline)) static int call_crash(void) { return crash(NULL) + 1; }
*/
import "C"

import "fmt"

func work() int { return int(C.call_crash()) }

func main() {
	fmt.Println("start")
	fmt.Println(work())
}
