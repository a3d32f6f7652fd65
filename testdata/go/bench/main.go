// bench: workloads for `cargo xtask bench`, each printing one figure.
//
//	bench panicloop N   recover N panics; prints "ns/op <float>"
//	bench http N C      N requests from C keep-alive clients to a loopback
//	                    server whose handler sits behind a recovery
//	                    middleware (recover() on every request, nothing to
//	                    recover); prints "req/s <float>"
package main

import (
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"sync"
	"time"
)

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
	start := time.Now()
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
	fmt.Printf("req/s %.1f\n", float64(per*clients)/time.Since(start).Seconds())
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
