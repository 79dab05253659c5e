//go:build linux

package netns

import (
	"bytes"
	"context"
	"crypto/sha256"
	"io"
	"math/rand/v2"
	"net"
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
	lc := net.ListenConfig{Control: func(_, _ string, c syscall.RawConn) error {
		var serr error
		if err := c.Control(func(fd uintptr) {
			serr = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUF, 1<<19)
		}); err != nil {
			return err
		}
		return serr
	}}
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
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(deadline)
		h := sha256.New()
		n, err := io.Copy(h, c)
		got <- result{n, h.Sum(nil), err}
	}()
	var c net.Conn
	if err := client.Do(func() (err error) {
		c, err = net.DialTimeout("tcp", ln.Addr().String(), 20*time.Second)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(deadline)
	h := sha256.New()
	src := io.TeeReader(io.LimitReader(rand.NewChaCha8([32]byte{byte(size)}), size), h)
	start := time.Now()
	_, werr := io.Copy(c, src)
	c.Close()
	r := <-got
	elapsed := time.Since(start)
	switch {
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
