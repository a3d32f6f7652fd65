// crashy is the Go test target: one crash scenario per run, chosen by its
// first argument. Built by the tests with every tested Go toolchain.
package main

import (
	"bufio"
	"errors"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
	"unsafe"
)

type config struct{ retries int }

// ConfigError is a custom error type: the runtime prints its Error() text.
type ConfigError struct {
	Key  string
	Line int
}

func (e *ConfigError) Error() string {
	return fmt.Sprintf("config: bad value for %s on line %d", e.Key, e.Line)
}

//go:noinline
func loadRetries(c *config) int {
	return c.retries // nil pointer dereference
}

//go:noinline
func parseRecord(fields []string, i int) string {
	return fields[i] // index out of range
}

func field(fields []string, i int) string {
	return parseRecord(fields, i)
}

//go:noinline
func handle(request string) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("request %q: %v", request, r)
		}
	}()
	panic("handler failed: " + request)
}

//go:noinline
func worker(id int, done chan<- struct{}) {
	if id == 3 {
		panic(fmt.Sprintf("worker %d: queue corrupted", id))
	}
	close(done) // not deferred: main must not exit before the panic does
}

//go:noinline
func convert(v any) int {
	return v.(int)
}

//go:noinline
func writer(m map[int]int, wg *sync.WaitGroup) {
	defer wg.Done()
	for i := 0; i < 10_000_000; i++ {
		m[i%100] = i
	}
}

//go:noinline
func divide(a, b int) int {
	return a / b // integer divide by zero when b is 0
}

//go:noinline
func readAt(addr uintptr) (v int) {
	defer func() {
		if r := recover(); r != nil {
			fmt.Println("recovered:", r)
		}
	}()
	return *(*int)(unsafe.Pointer(addr))
}

//go:noinline
// consume blocks in `chan receive` (a deadlock dump's most common line).
func consume(jobs <-chan int, wg *sync.WaitGroup) {
	for j := range jobs {
		fmt.Println("job", j)
	}
	if wg != nil {
		wg.Done()
	}
}

// lockAndCount blocks on a mutex its caller holds.
func lockAndCount(mu *sync.Mutex, wg *sync.WaitGroup) {
	mu.Lock()
	counter++
	mu.Unlock()
	if wg != nil {
		wg.Done()
	}
}

var counter int

// sleepLoop keeps a timer pending: the program is not deadlocked.
func sleepLoop() {
	for {
		time.Sleep(time.Hour)
	}
}

// waitBoth blocks in a select.
func waitBoth(a <-chan int, b <-chan struct{}, wg *sync.WaitGroup) {
	select {
	case <-a:
	case <-b:
	}
	wg.Done()
}

func recurse(n int) int {
	var pad [64]byte
	pad[n%64] = byte(n)
	return recurse(n+1) + int(pad[0])
}

// descend panics and recovers n frames down.
//
//go:noinline
func descend(n int, pad [3]int) int {
	if n == 0 {
		return recoverHere()
	}
	return descend(n-1, pad) + pad[0]
}

// recoverHere calls gopanic straight from its own small frame (no call in
// between that would grow the stack first).
//
//go:noinline
func recoverHere() (r int) {
	defer func() {
		if recover() != nil {
			r = 1
		}
	}()
	panic("deep")
}

// nestedRecovered panics, and a deferred call panics again while the
// first panic runs it: the inner panic is recovered inside that call, the
// outer one by the function's first deferred call.
//
//go:noinline
func nestedRecovered() (outer any) {
	defer func() {
		outer = recover()
		fmt.Println("outer recovered:", outer)
	}()
	defer func() {
		defer func() {
			fmt.Println("inner recovered:", recover())
		}()
		panic("inner: cleanup failed")
	}()
	panic("outer: request failed")
}

// deepNested runs panicInDefer under a recover: the newest of its n
// panics is what recover returns.
//
//go:noinline
func deepNested(n int) (newest any) {
	defer func() { newest = recover() }()
	panicInDefer(1, n)
	return nil
}

// panicInDefer panics with "nested panic i", after deferring the call that
// panics with i+1 (up to n) while this panic runs it.
//
//go:noinline
func panicInDefer(i, n int) {
	if i < n {
		defer panicInDefer(i+1, n)
	}
	panic("nested panic " + strconv.Itoa(i))
}

// recoverThenExit recovers its panic and exits from the deferred call, as
// a log.Fatal in a recovery handler does: the runtime's recovery never
// runs, nothing is printed by the runtime.
func recoverThenExit() {
	defer func() {
		if r := recover(); r != nil {
			fmt.Fprintln(os.Stderr, "fatal:", r)
			os.Exit(3)
		}
	}()
	panic("config missing")
}

// abandonPanic panics on its own goroutine, whose deferred call then ends
// the goroutine with runtime.Goexit: the panic is never printed nor
// recovered, and the program goes on.
func abandonPanic(done chan<- struct{}) {
	defer close(done)
	goexit := runtime.Goexit
	defer goexit()
	panic("abandoned by Goexit")
}

func atoi(s string) int {
	n := 0
	for _, c := range s {
		n = n*10 + int(c-'0')
	}
	return n
}

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: crashy SCENARIO")
		os.Exit(64)
	}
	if os.Args[1] != "wait" && os.Args[1] != "panic-on-input" && os.Args[1] != "parked" {
		fmt.Println("scenario", os.Args[1])
	}
	switch os.Args[1] {
	case "recovered":
		fmt.Println(handle("GET /health"))
		fmt.Println(handle("GET /orders"))
	case "goroutine":
		done := make(chan struct{})
		go worker(3, done)
		<-done
	case "index":
		fmt.Println(field([]string{"a", "b", "c"}, len(os.Args)+3))
	case "nilmap":
		var m map[string]int
		m["requests"]++
	case "nilptr":
		fmt.Println(loadRetries(nil))
	case "typeassert":
		fmt.Println(convert("forty-two"))
	case "wrapped":
		panic(fmt.Errorf("loading config: %w", errors.New("file not found")))
	case "errorsnew":
		panic(errors.New("plain error value"))
	case "customerr":
		panic(&ConfigError{Key: "timeout", Line: 12})
	case "repanic":
		defer func() {
			r := recover()
			panic(fmt.Sprint("re-panic: ", r))
		}()
		panic("original")
	case "nested":
		defer func() {
			panic("second panic, in a deferred call")
		}()
		panic("first panic")
	case "concurrent-map":
		m := filledMap(100)
		var wg sync.WaitGroup
		for i := 0; i < 4; i++ {
			wg.Add(1)
			go writer(m, &wg)
		}
		wg.Wait()
	case "wait":
		// For tests that attach to a running Go process.
		fmt.Printf("ready %d\n", os.Getpid())
		for {
			time.Sleep(time.Hour)
		}
	case "overflow":
		debug.SetMaxStack(1 << 20)
		fmt.Println(recurse(0))
	case "goexit":
		runtime.Goexit()
	case "panic-on-input":
		// For attaching to a running process: panics once a line arrives.
		fmt.Printf("ready %d\n", os.Getpid())
		line, _ := bufio.NewReader(os.Stdin).ReadString('\n')
		panic("bad input: " + strings.TrimSpace(line))
	case "panic-after":
		// For programs started through wrappers: a panic N ms after start.
		time.Sleep(time.Duration(atoi(os.Args[2])) * time.Millisecond)
		panic("late panic: " + os.Args[2] + " ms")
	case "nilptr-after":
		time.Sleep(time.Duration(atoi(os.Args[2])) * time.Millisecond)
		fmt.Println(loadRetries(nil))
	case "divzero":
		fmt.Println(divide(7, len(os.Args)-2))
	case "panicnil":
		panic(nil)
	case "fault-recovered":
		// A fault at a bad, non-nil address, turned into a recoverable
		// panic (runtime.errorAddressString) by SetPanicOnFault.
		debug.SetPanicOnFault(true)
		fmt.Println(readAt(0x1000))
	case "deadlock":
		ch := make(chan int)
		<-ch
	case "deadlock3":
		// Three goroutines blocked three ways, main waiting for them: the
		// runtime's deadlock dump prints all four.
		var wg sync.WaitGroup
		var mu sync.Mutex
		mu.Lock()
		jobs := make(chan int)
		wg.Add(3)
		go consume(jobs, &wg)
		go lockAndCount(&mu, &wg)
		go waitBoth(jobs, make(chan struct{}), &wg)
		time.Sleep(20 * time.Millisecond)
		wg.Wait()
	case "deadlock10k":
		// 10,000 goroutines blocked, then main: a dump past any bound.
		ch := make(chan int)
		for i := 0; i < 10000; i++ {
			go consume(ch, nil)
		}
		var never chan int
		<-never
	case "parked":
		// Parked goroutines for SIGQUIT's dump.
		var mu sync.Mutex
		mu.Lock()
		go lockAndCount(&mu, nil)
		go consume(make(chan int), nil)
		go sleepLoop()
		fmt.Printf("ready %d\n", os.Getpid())
		select {}
	case "nested-recovered":
		nestedRecovered()
	case "nested-deep":
		// Six panics under way on one goroutine, each raised by a deferred
		// call of the one before; the newest recovered (the older five are
		// aborted with it), then the program goes on.
		fmt.Println("recovered:", deepNested(6))
	case "nested-deep-fatal":
		panicInDefer(1, 6)
	case "recover-exit":
		recoverThenExit()
	case "exec-shell":
		// A Go entrypoint that hands over to the real program (gosu,
		// su-exec, a re-exec on upgrade): the kernel ends the runtime's
		// other threads, and the shell exits 3.
		err := syscall.Exec("/bin/sh", []string{"sh", "-c", "exit 3"}, os.Environ())
		fmt.Fprintln(os.Stderr, "exec:", err)
		os.Exit(1)
	case "panic-goexit":
		done := make(chan struct{})
		go abandonPanic(done)
		<-done
		fmt.Println("main goes on")
	case "deep-recovered":
		// A panic recovered at each stack depth up to 200 frames, each on a
		// fresh goroutine (small stack): some gopanic calls find the stack
		// too small, grow it through morestack and start over.
		total := 0
		for d := 0; d < 200; d++ {
			done := make(chan int)
			go func(d int) { done <- descend(d, [3]int{}) }(d)
			total += <-done
		}
		fmt.Println("recovered", total)
	default:
		fmt.Fprintln(os.Stderr, "unknown scenario", os.Args[1])
		os.Exit(64)
	}
}

// filledMap holds keys 0..n-1 before the writers start, so that their race
// only overwrites values: with no insert there is no growth, nothing
// structural for the race to corrupt before the runtime sees it (an empty
// map grown by four writers at once sometimes died of "bad map state" or a
// nil dereference inside mapassign instead of "concurrent map writes").
func filledMap(n int) map[int]int {
	m := make(map[int]int, n)
	for i := 0; i < n; i++ {
		m[i] = i
	}
	return m
}
