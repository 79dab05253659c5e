//go:build linux

package netns

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TransferTCP sends size bytes of pseudo-random data over TCP from a client in client
// to a server listening on addr (port 0: any) in server, and fails t unless they
// arrive complete, with the same SHA-256.
//
// The server's receive buffer, hence TCP's window, is held to 1 MiB, so that all the
// data in flight fits a test forwarder's 4 MiB rings: a full ring there means a bug,
// not a fast sender meeting a forwarder slowed by the race detector.
func TransferTCP(t testing.TB, client, server *NS, addr string, size int64) {
	t.Helper()
	TransferTCPWith(t, client, server, addr, size, TransferOptions{})
}

// TransferOptions adjusts TransferTCPWith.
type TransferOptions struct {
	// ClientSocket, if set, is applied to the client's socket before it connects.
	ClientSocket func(fd int) error
	// Watch, if set, is called as the transfer starts and every 50 ms; an error from it
	// ends the transfer at once and fails the test with that error (a stalled
	// transfer would otherwise run until its deadline).
	Watch func() error
}

// TransferTCPWith is TransferTCP with options.
func TransferTCPWith(t testing.TB, client, server *NS, addr string, size int64, opts TransferOptions) {
	t.Helper()
	control := func(f func(fd int) error) func(_, _ string, c syscall.RawConn) error {
		return func(_, _ string, c syscall.RawConn) error {
			if f == nil {
				return nil
			}
			var serr error
			if err := c.Control(func(fd uintptr) { serr = f(int(fd)) }); err != nil {
				return err
			}
			return serr
		}
	}
	lc := net.ListenConfig{Control: control(func(fd int) error {
		return unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<19)
	})}
	var ln net.Listener
	if err := server.Do(func() (err error) { ln, err = lc.Listen(context.Background(), "tcp", addr); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	deadline := time.Now().Add(60 * time.Second)
	type result struct {
		n   int64
		sum []byte
		err error
	}
	got := make(chan result, 1)
	var accepted atomic.Pointer[net.Conn]
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		accepted.Store(&c)
		defer c.Close()
		c.SetDeadline(deadline)
		h := sha256.New()
		n, err := io.Copy(h, c)
		got <- result{n, h.Sum(nil), err}
	}()
	var c net.Conn
	d := net.Dialer{Timeout: 20 * time.Second, Control: control(opts.ClientSocket)}
	if err := client.Do(func() (err error) { c, err = d.DialContext(context.Background(), "tcp", ln.Addr().String()); return }); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	c.SetDeadline(deadline)
	stop, watched := make(chan struct{}), make(chan error, 1)
	go func() {
		if opts.Watch == nil {
			watched <- nil
			return
		}
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for first := true; ; first = false {
			if !first {
				select {
				case <-stop:
					watched <- nil
					return
				case <-tick.C:
				}
			}
			if err := opts.Watch(); err != nil {
				c.SetDeadline(time.Now()) // end the transfer now
				if s := accepted.Load(); s != nil {
					(*s).SetDeadline(time.Now())
				}
				watched <- err
				return
			}
		}
	}()
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{byte(size)}), size), h)
	start := time.Now()
	_, werr := io.Copy(c, src)
	if werr == nil {
		werr = c.(*net.TCPConn).CloseWrite()
	}
	r := <-got
	elapsed := time.Since(start)
	close(stop)
	switch werr2 := <-watched; {
	case werr2 != nil:
		t.Fatalf("%v; transfer ended (sent: %v, received %d bytes: %v)", werr2, werr, r.n, r.err)
	case werr != nil:
		t.Fatalf("send: %v", werr)
	case r.err != nil:
		t.Fatalf("receive: %v", r.err)
	case r.n != size || !bytes.Equal(r.sum, h.Sum(nil)):
		t.Fatalf("received %d bytes with SHA-256 %x; sent %d bytes with SHA-256 %x", r.n, r.sum, size, h.Sum(nil))
	}
	t.Logf("TCP to %v: %d MiB verified in %v (%.0f Mbit/s)", ln.Addr(), size>>20, elapsed.Round(time.Millisecond),
		float64(size)*8/elapsed.Seconds()/1e6)
}
