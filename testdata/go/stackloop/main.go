// stackloop: debug.Stack() in a loop, the one healthy path that reaches a
// crashtrace probe (runtime.goroutineheader, the goroutine dump's). It
// waits 1.5 s first so that a tracer has placed its probes.
//
//	go build -o stackloop main.go
//	./stackloop; sudo crashtrace -q run -- ./stackloop
package main

import (
	"fmt"
	"runtime/debug"
	"time"
)

func main() {
	const n = 200000
	time.Sleep(1500 * time.Millisecond)
	start := time.Now()
	total := 0
	for i := 0; i < n; i++ {
		total += len(debug.Stack())
	}
	elapsed := time.Since(start)
	fmt.Printf("%.1f ns/op (%d bytes)\n", float64(elapsed.Nanoseconds())/n, total)
}
