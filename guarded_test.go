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
