// bench: workloads for `cargo xtask bench`, each printing one figure.
//
//	bench panicloop N   recover N panics; prints "ns/op <float>"
//	bench http N C      N requests from C keep-alive clients to a loopback
//	                    server whose handler sits behind a recovery
//	                    middleware (recover() on every request, nothing to
//	                    recover); prints "req/s <float>" and "cpu-us/req
//	                    <float>" (this process's user+sys CPU a request:
//	                    steadier than req/s on a shared VM)
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"syscall"
	"time"
)

// cpuTime is this process's user+sys CPU time so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		panic(err)
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

//go:noinline
func mayPanic(i int) (err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("recovered: %v", r)
		}
	}()
	panic("iteration failed")
}

func panicLoop(n int) {
	start := time.Now()
	for i := 0; i < n; i++ {
		_ = mayPanic(i)
	}
	fmt.Printf("ns/op %.1f\n", float64(time.Since(start).Nanoseconds())/float64(n))
}

func recoverMiddleware(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer func() {
			if v := recover(); v != nil {
				http.Error(w, "internal error", http.StatusInternalServerError)
			}
		}()
		next.ServeHTTP(w, r)
	})
}

func httpLoad(n, clients int) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(err)
	}
	handler := recoverMiddleware(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Write([]byte("ok\n"))
	}))
	go http.Serve(ln, handler)
	url := "http://" + ln.Addr().String() + "/"
	per := n / clients
	var wg sync.WaitGroup
	start, cpuStart := time.Now(), cpuTime()
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			client := &http.Client{Transport: &http.Transport{MaxIdleConnsPerHost: 1}}
			for i := 0; i < per; i++ {
				resp, err := client.Get(url)
				if err != nil {
					panic(err)
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	wg.Wait()
	elapsed, cpu := time.Since(start), cpuTime()-cpuStart
	fmt.Printf("req/s %.1f\n", float64(per*clients)/elapsed.Seconds())
	fmt.Printf("cpu-us/req %.3f\n", float64(cpu.Microseconds())/float64(per*clients))
}

func main() {
	arg := func(i int) int {
		v, err := strconv.Atoi(os.Args[i])
		if err != nil {
			panic(err)
		}
		return v
	}
	switch os.Args[1] {
	case "panicloop":
		panicLoop(arg(2))
	case "http":
		httpLoad(arg(2), arg(3))
	}
}
