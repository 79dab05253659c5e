//go:build linux

package uring

import (
	"testing"
	"time"

	"golang.org/x/sys/unix"
)

// TestMultishotReadPipe reads several writes to a pipe through one multishot read
// into provided buffers, waiting for each completion.
func TestMultishotReadPipe(t *testing.T) {
	r, err := New(16, 0)
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	defer r.Close()
	b, err := r.RegisterBufRing(1, 8, 4096)
	if err != nil {
		t.Skipf("provided buffer rings unavailable: %v", err)
	}
	defer b.Free()
	var p [2]int
	if err := unix.Pipe2(p[:], unix.O_CLOEXEC); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(p[0])
	defer unix.Close(p[1])
	sqe := r.SQE()
	sqe.Opcode, sqe.Fd, sqe.Flags, sqe.BufIndex, sqe.Off = OpReadMultishot, int32(p[0]), sqeBufferSelect, b.Group(), ^uint64(0)
	sqe.UserData = 7
	if _, err := r.Submit(0); err != nil {
		t.Fatal(err)
	}
	var got []string
	for i, msg := range []string{"one", "two", "three", "4", "5", "6", "7", "8", "9", "10", "11", "12", "13", "14", "15", "16", "17", "18", "19", "three"} {
		unix.Write(p[1], []byte(msg))
		if err := r.Wait(5 * time.Second); err != nil { // blocks until a completion
			t.Fatal(err)
		}
		r.Completions(func(c *CQE) {
			if c.Res < 0 || c.Flags&CQEFBuffer == 0 || c.UserData != 7 {
				t.Fatalf("completion %d: res %d flags %#x", i, c.Res, c.Flags)
			}
			if c.Flags&CQEFMore == 0 {
				t.Errorf("completion %d ended the multishot read", i)
			}
			id := uint16(c.Flags >> 16)
			got = append(got, string(b.Buffer(id)[:c.Res]))
			b.Give(id)
		})
		b.Publish()
	}
	if len(got) != 20 || got[0] != "one" || got[19] != "three" {
		t.Errorf("read %q", got)
	}
}

// TestWaitTimeoutAndPoll checks that Wait gives up after its timeout when nothing
// completes, and that a poll on an eventfd completes (and wakes Wait) once another
// goroutine writes to it: how a session's reader is told to stop.
func TestWaitTimeoutAndPoll(t *testing.T) {
	r, err := New(4, 0)
	if err != nil {
		t.Skipf("io_uring unavailable here: %v", err)
	}
	defer r.Close()
	start := time.Now()
	if err := r.Wait(50 * time.Millisecond); err != unix.ETIME {
		t.Fatalf("Wait on an idle ring: %v, want ETIME", err)
	}
	if d := time.Since(start); d < 40*time.Millisecond {
		t.Errorf("Wait returned after %v, before its timeout", d)
	}
	efd, err := unix.Eventfd(0, unix.EFD_CLOEXEC|unix.EFD_NONBLOCK)
	if err != nil {
		t.Fatal(err)
	}
	defer unix.Close(efd)
	sqe := r.SQE()
	sqe.Opcode, sqe.Fd, sqe.OpFlags, sqe.UserData = OpPollAdd, int32(efd), unix.POLLIN, 9
	if _, err := r.Submit(0); err != nil {
		t.Fatal(err)
	}
	go func() {
		time.Sleep(20 * time.Millisecond)
		unix.Write(efd, []byte{1, 0, 0, 0, 0, 0, 0, 0})
	}()
	for {
		err := r.Wait(5 * time.Second)
		if err == unix.EINTR {
			continue
		}
		if err != nil {
			t.Fatalf("Wait for the poll: %v", err)
		}
		break
	}
	n := r.Completions(func(c *CQE) {
		if c.UserData != 9 || c.Res&unix.POLLIN == 0 {
			t.Errorf("completion: user data %d res %#x", c.UserData, c.Res)
		}
	})
	if n != 1 {
		t.Errorf("%d completions, want 1", n)
	}
}

// TestSupports asks the kernel which opcodes it knows: this package's own, on the
// kernels the project runs on, and not one past the last the kernel reports.
func TestSupports(t *testing.T) {
	r, err := New(4, 0)
	if err != nil {
		t.Skip(err) // io_uring not allowed here: nothing to probe
	}
	defer r.Close()
	for _, op := range []uint8{OpNop, OpWritev, OpPollAdd, OpReadMultishot} {
		if !r.Supports(op) {
			t.Errorf("opcode %d not supported", op)
		}
	}
	if r.Supports(255) {
		t.Error("opcode 255 supported")
	}
}
