// A Go service as a user would audit one: an HTTP server on loopback, goroutine clients, a
// CPU-bound goroutine whose loop has no call in it (only the runtime's signal-based
// preemption can stop it: sysmon asks for it after 10 ms), garbage collections, a child
// process, and a graceful shutdown. Static (CGO_ENABLED=0), so only the Go runtime's own
// calls are made. Exits 0 when every request got its answer.
//
// Usage: go_http [CLIENTS] [REQUESTS_PER_CLIENT] [SPIN_MS]
package main

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/exec"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

func arg(i int, def int) int {
	if len(os.Args) > i {
		if v, err := strconv.Atoi(os.Args[i]); err == nil {
			return v
		}
	}
	return def
}

// spin runs a loop without calls for about ms milliseconds: cooperative preemption cannot
// stop it, so the GC's stop-the-world and the scheduler must signal its thread.
func spin(ms int, sink *uint64) {
	deadline := time.Now().Add(time.Duration(ms) * time.Millisecond)
	for time.Now().Before(deadline) {
		x := *sink
		for i := 0; i < 2_000_000; i++ {
			x = x*6364136223846793005 + 1442695040888963407
		}
		*sink = x
	}
}

func main() {
	if len(os.Args) > 1 && os.Args[1] == "child" {
		fmt.Println("child ok")
		return
	}
	clients, requests, spinMs := arg(1, 8), arg(2, 50), arg(3, 30)

	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		fmt.Fprintln(os.Stderr, "listen:", err)
		os.Exit(2)
	}
	var served atomic.Int64
	mux := http.NewServeMux()
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		served.Add(1)
		buf := make([]byte, 64<<10) // garbage, so that the GC runs
		for i := range buf {
			buf[i] = byte(i)
		}
		w.Write(buf[:1024])
	})
	srv := &http.Server{Handler: mux}
	go srv.Serve(ln)

	var sink uint64
	spinDone := make(chan struct{})
	go func() {
		spin(spinMs, &sink)
		close(spinDone)
	}()

	url := "http://" + ln.Addr().String() + "/"
	var wg sync.WaitGroup
	var failed atomic.Int64
	for c := 0; c < clients; c++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// A connection per request: no idle or half-dialled keep-alive connection is
			// left for Shutdown to wait on.
			client := &http.Client{
				Timeout:   10 * time.Second,
				Transport: &http.Transport{DisableKeepAlives: true},
			}
			for i := 0; i < requests; i++ {
				resp, err := client.Get(url)
				if err != nil {
					failed.Add(1)
					continue
				}
				io.Copy(io.Discard, resp.Body)
				resp.Body.Close()
			}
		}()
	}
	runtime.GC()
	out, err := exec.Command(os.Args[0], "child").Output()
	if err != nil || string(out) != "child ok\n" {
		fmt.Fprintln(os.Stderr, "child:", err)
		os.Exit(3)
	}
	wg.Wait()
	<-spinDone
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(ctx); err != nil {
		fmt.Fprintln(os.Stderr, "shutdown:", err)
		os.Exit(4)
	}
	want := int64(clients * requests)
	if failed.Load() != 0 || served.Load() != want {
		fmt.Fprintf(os.Stderr, "served %d of %d, %d failed\n", served.Load(), want, failed.Load())
		os.Exit(1)
	}
	fmt.Printf("served %d requests, spin %d\n", served.Load(), sink&1)
}
