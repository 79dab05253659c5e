package wintun

import (
	"errors"
	"io"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"
)

// fakeBinding plays the official binding's session, and fails the test on the misuses
// the real one would turn into memory corruption or a panic.
type fakeBinding struct {
	t        *testing.T
	mu       sync.Mutex
	freed    bool
	incoming [][]byte // what ReceivePacket hands out next
	recvErr  error    // returned when incoming is empty (default ERROR_NO_MORE_ITEMS)
	allocErr error
	allocMax int // if > 0, allocations beyond this many find the ring full
	allocs   int
	released [][]byte
	sent     [][]byte
	ends     int
}

func (f *fakeBinding) use(op string) {
	if f.freed {
		f.t.Errorf("%s after End: use after free", op)
	}
}

func (f *fakeBinding) ReceivePacket() ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.use("ReceivePacket")
	if len(f.incoming) == 0 {
		if f.recvErr != nil {
			return nil, f.recvErr
		}
		return nil, syscall.Errno(winErrorNoMoreItems)
	}
	p := f.incoming[0]
	f.incoming = f.incoming[1:]
	return p, nil
}

func (f *fakeBinding) ReleaseReceivePacket(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.use("ReleaseReceivePacket")
	if len(p) == 0 {
		f.t.Error("ReleaseReceivePacket with an empty slice: the binding panics")
	}
	f.released = append(f.released, p)
}

func (f *fakeBinding) AllocateSendPacket(n int) ([]byte, error) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.use("AllocateSendPacket")
	if f.allocErr != nil {
		return nil, f.allocErr
	}
	if f.allocMax > 0 && f.allocs >= f.allocMax {
		return nil, syscall.Errno(winErrorBufferOverflow)
	}
	f.allocs++
	return make([]byte, n), nil
}

func (f *fakeBinding) SendPacket(p []byte) {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.use("SendPacket")
	if len(p) == 0 {
		f.t.Error("SendPacket with an empty slice: the binding panics")
	}
	f.sent = append(f.sent, p)
}

func (f *fakeBinding) End() {
	f.mu.Lock()
	defer f.mu.Unlock()
	f.use("End")
	f.freed = true
	f.ends++
}

type captured struct {
	mu      sync.Mutex
	packets map[Direction]int
}

func (c *captured) CapturePacket(d Direction, _ time.Time, _ []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.packets[d]++
}

func ipv4(n int) []byte {
	p := make([]byte, n)
	p[0] = 0x45
	return p
}

func TestGuardedSessionCalls(t *testing.T) {
	f := &fakeBinding{t: t, incoming: [][]byte{ipv4(20), ipv4(40)}}
	var st stats
	c := &captured{packets: map[Direction]int{}}
	var fatal atomic.Int32
	g := newGuardedSession(f, "test", &st, c, func() { fatal.Add(1) })

	p1, err := g.receive()
	if err != nil {
		t.Fatal(err)
	}
	p2, _ := g.receive()
	if _, err := g.receive(); err != ErrNoMoreItems {
		t.Fatalf("empty ring: %v, want ErrNoMoreItems itself", err)
	}
	g.release(nil)
	g.release([]byte{})
	g.release(p1[1:]) // not the start of a packet
	g.release(p2[:5]) // shortened: not the slice handed out
	if len(f.released) != 0 {
		t.Fatal("a shortened slice released its packet")
	}
	g.release(p2)
	g.release(p2) // twice
	g.release(p1)
	if len(f.released) != 2 {
		t.Fatalf("%d releases reached the binding, want 2", len(f.released))
	}

	out, err := g.allocate(28)
	if err != nil {
		t.Fatal(err)
	}
	copy(out, ipv4(28))
	g.send(out[:10]) // shortened: not the slice handed out
	if len(f.sent) != 0 {
		t.Fatal("a shortened slice committed its packet")
	}
	g.send(out)
	g.send(out) // twice: ignored
	g.send(nil)
	bad, _ := g.allocate(8)
	g.send(bad) // not IP: committed, counted as a discard
	if len(f.sent) != 2 || len(f.sent[0]) != 28 {
		t.Fatalf("sent %d packets (first %d bytes), want 2 (28)", len(f.sent), len(f.sent[0]))
	}
	s := st.snapshot()
	if s.ReceivedPackets != 2 || s.ReceivedBytes != 60 || s.SentPackets != 1 || s.SentBytes != 28 || s.SendDiscardsInvalid != 1 {
		t.Errorf("stats %+v", s)
	}
	if c.packets[Received] != 2 || c.packets[Sent] != 1 {
		t.Errorf("captured %v", c.packets)
	}

	f.allocErr = syscall.Errno(winErrorBufferOverflow)
	if _, err := g.allocate(20); err != ErrBufferOverflow {
		t.Errorf("full ring: %v, want ErrBufferOverflow", err)
	}
	if fatal.Load() != 0 {
		t.Error("fatal called for a retryable condition")
	}
	f.recvErr = syscall.Errno(winErrorHandleEOF)
	if _, err := g.receive(); err != ErrAdapterGone || !errors.Is(err, io.EOF) {
		t.Errorf("adapter gone: %v", err)
	}
	f.allocErr = syscall.Errno(winErrorInvalidData)
	if _, err := g.allocate(20); err != ErrInvalidData {
		t.Errorf("corrupt ring: %v", err)
	}
	if fatal.Load() != 2 {
		t.Errorf("fatal called %d times, want 2", fatal.Load())
	}

	f.allocErr = nil
	held, err := g.allocate(20)
	if err != nil {
		t.Fatal(err)
	}
	before := 0
	g.end(func() { before++ })
	g.end(func() { before++ })
	if f.ends != 1 || before != 1 {
		t.Fatalf("binding End called %d times, beforeFree %d times; want 1 and 1", f.ends, before)
	}
	if _, err := g.receive(); err != ErrSessionEnded {
		t.Errorf("receive after end: %v", err)
	}
	if _, err := g.allocate(20); err != ErrSessionEnded {
		t.Errorf("allocate after end: %v", err)
	}
	g.send(held)
	g.release(p1)
}

// TestGuardedSessionEndRace ends a session while other goroutines call it: no call may
// reach the binding after its End (the fake reports it), under the race detector.
func TestGuardedSessionEndRace(t *testing.T) {
	for range 20 {
		f := &fakeBinding{t: t}
		var st stats
		g := newGuardedSession(f, "test", &st, nil, func() {})
		var wg sync.WaitGroup
		start := make(chan struct{})
		for range 4 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				<-start
				for {
					p, err := g.allocate(20)
					if err == ErrSessionEnded {
						return
					}
					if err != nil {
						t.Error(err)
						return
					}
					p[0] = 0x45
					g.send(p)
					if _, err := g.receive(); err != ErrNoMoreItems && err != ErrSessionEnded {
						t.Error(err)
						return
					}
				}
			}()
		}
		close(start)
		time.Sleep(time.Millisecond)
		var ends sync.WaitGroup
		for range 2 {
			ends.Add(1)
			go func() { defer ends.Done(); g.end(func() {}) }()
		}
		ends.Wait()
		wg.Wait()
		if f.ends != 1 {
			t.Fatalf("binding End called %d times", f.ends)
		}
	}
}

func TestGuardedSessionBatch(t *testing.T) {
	f := &fakeBinding{t: t, incoming: [][]byte{ipv4(20), ipv4(21), ipv4(22)}, allocMax: 2}
	var st stats
	g := newGuardedSession(f, "test", &st, nil, func() {})

	bundle := make([][]byte, 2)
	if n, err := g.receiveBatch(bundle); n != 2 || err != nil {
		t.Fatalf("receiveBatch = %d, %v; want 2, nil", n, err)
	}
	rest := make([][]byte, 4)
	n, err := g.receiveBatch(rest)
	if n != 1 || err != nil || len(rest[0]) != 22 {
		t.Fatalf("receiveBatch of the last packet = %d, %v (len %d); want 1, nil", n, err, len(rest[0]))
	}
	if n, err := g.receiveBatch(rest); n != 0 || err != ErrNoMoreItems {
		t.Fatalf("receiveBatch of an empty ring = %d, %v; want 0, ErrNoMoreItems", n, err)
	}
	// One foreign slice among held packets: the held ones are released all the same.
	g.releaseBatch([][]byte{bundle[0], make([]byte, 20), bundle[1], rest[0]})
	if len(f.released) != 3 {
		t.Fatalf("%d releases reached the binding, want 3", len(f.released))
	}
	g.releaseBatch([][]byte{bundle[0]}) // released already: ignored
	if len(f.released) != 3 {
		t.Fatal("a packet was released twice")
	}

	out := make([][]byte, 3)
	n, err = g.allocateBatch([]int{20, 40, 60}, out)
	if n != 2 || err != ErrBufferOverflow {
		t.Fatalf("allocateBatch into a ring with room for 2 = %d, %v; want 2, ErrBufferOverflow", n, err)
	}
	if len(out[0]) != 20 || len(out[1]) != 40 || out[2] != nil {
		t.Fatalf("allocated lengths %d, %d, %v", len(out[0]), len(out[1]), out[2])
	}
	out[0][0], out[1][0] = 0x45, 0x60
	g.sendBatch([][]byte{out[0], out[0][:4], out[1]})
	if len(f.sent) != 2 {
		t.Fatalf("%d packets reached the binding, want 2", len(f.sent))
	}
	if s := st.snapshot(); s.SentPackets != 2 || s.SentBytes != 60 || s.ReceivedPackets != 3 {
		t.Errorf("stats %+v", s)
	}

	g.end(func() {})
	if n, err := g.receiveBatch(rest); n != 0 || err != ErrSessionEnded {
		t.Errorf("receiveBatch after end = %d, %v", n, err)
	}
	if n, err := g.allocateBatch([]int{20}, out); n != 0 || err != ErrSessionEnded {
		t.Errorf("allocateBatch after end = %d, %v", n, err)
	}
	g.releaseBatch(bundle) // no call reaches the freed binding
	g.sendBatch(out)
}

func TestPumpReadEvent(t *testing.T) {
	// Three signals, then a stop: the tokens do not pile up beyond one.
	results := []bool{true, true, true, false}
	out := make(chan struct{}, 1)
	failed := false
	pumpReadEvent(func() (bool, error) {
		r := results[0]
		results = results[1:]
		return r, nil
	}, out, func(error) { failed = true })
	if failed || len(out) != 1 || len(results) != 0 {
		t.Fatalf("after a stop: failed %v, %d tokens, %d waits left", failed, len(out), len(results))
	}

	// A failed wait ends the session (onFail) instead of leaving readers stranded.
	waitErr := syscall.Errno(6) // ERROR_INVALID_HANDLE
	var got error
	calls := 0
	pumpReadEvent(func() (bool, error) {
		calls++
		if calls == 1 {
			return true, nil
		}
		return false, waitErr
	}, out, func(err error) { got = err })
	if !errors.Is(got, waitErr) || calls != 2 {
		t.Fatalf("onFail got %v after %d waits, want the wait's error after 2", got, calls)
	}
}
