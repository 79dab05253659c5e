package wintun

import (
	"bytes"
	"fmt"
	"io"
	"os"
	"testing"

	"golang.org/x/sys/unix"
)

// TestUringSenderKeepsOrder gives the io_uring sender a non-blocking pipe of one page
// instead of a tun queue, read while the writes go on: the writes that find it full
// wait for room in the kernel, and every write must arrive once and in order.
func TestUringSenderKeepsOrder(t *testing.T) {
	r, w, err := os.Pipe()
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	defer w.Close()
	conn, err := w.SyscallConn() // not Fd(), which would make the pipe blocking
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	conn.Control(func(fd uintptr) { _, serr = unix.FcntlInt(fd, unix.F_SETPIPE_SZ, 4096) })
	if serr != nil {
		t.Fatal(serr)
	}
	s, err := newUringSender(conn)
	if err != nil {
		t.Skip(err) // io_uring not allowed here
	}
	defer s.close()

	var want bytes.Buffer
	units := make([]sendUnit, writeBundle)
	for i := range units {
		p := []byte(fmt.Sprintf("%03d:", i) + string(bytes.Repeat([]byte{'a' + byte(i%26)}, 300)))
		units[i].iov = [][]byte{p[:4], p[4:]}
		want.Write(p)
	}
	got := make(chan []byte)
	go func() {
		b, _ := io.ReadAll(r)
		got <- b
	}()
	n, err := s.send(units)
	if n != len(units) || err != nil {
		t.Fatalf("send made %d of %d writes: %v", n, len(units), err)
	}
	for i, u := range units {
		if u.err != nil {
			t.Errorf("write %d: %v", i, u.err)
		}
	}
	w.Close()
	if b := <-got; !bytes.Equal(b, want.Bytes()) {
		t.Errorf("the pipe got %d bytes, want %d, in order", len(b), want.Len())
	}
}
