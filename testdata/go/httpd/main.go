// httpd: an HTTP server on loopback whose handler panics; net/http recovers
// the panic in its own deferred function. One request, then exit 0.
// (Its own program: importing net/http keeps the crashy scenarios' deadlock
// detection from firing.)
package main

import (
	"fmt"
	"io"
	"log"
	"net"
	"net/http"
	"os"
	"sync"
	"time"
)

func main() {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		log.Fatal(err)
	}
	if len(os.Args) > 1 && os.Args[1] == "serve" {
		// A service until something stops it (kill -TERM, like every
		// Kubernetes pod shutdown): no signal.Notify, the runtime's
		// default handling.
		fmt.Printf("ready %d\n", os.Getpid())
		log.Fatal(http.Serve(ln, http.NotFoundHandler()))
	}
	srv := &http.Server{
		Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			panic("handler bug on " + r.URL.Path)
		}),
		ErrorLog: log.New(io.Discard, "", 0),
	}
	// net/http closes the connection inside the deferred function that
	// recovers; the recovery completes when that function returns. Wait for
	// the close, then a moment, so the program does not exit mid-recovery.
	closed := make(chan struct{})
	var once sync.Once
	srv.ConnState = func(c net.Conn, s http.ConnState) {
		if s == http.StateClosed {
			once.Do(func() { close(closed) })
		}
	}
	go srv.Serve(ln)
	resp, err := http.Get("http://" + ln.Addr().String() + "/orders")
	if err == nil {
		resp.Body.Close()
	}
	<-closed
	time.Sleep(200 * time.Millisecond)
	fmt.Println("request done; connection dropped:", err != nil)
	srv.Close()
}
