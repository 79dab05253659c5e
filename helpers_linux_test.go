package wintun_test

import (
	"bytes"
	"net/netip"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"
)

// nsAdapter creates an adapter inside ns with the given addresses on its system side
// and starts a session on it; both end with the test.
func nsAdapter(t *testing.T, ns *netns.NS, name string, capacity uint32, addrs ...string) (*wintun.Adapter, *wintun.Session) {
	t.Helper()
	var a *wintun.Adapter
	var s *wintun.Session
	err := ns.Do(func() error {
		var err error
		if a, err = wintun.CreateAdapter(name, "Test", nil); err != nil {
			return err
		}
		for _, p := range addrs {
			if err := a.AddAddress(netip.MustParsePrefix(p)); err != nil {
				return err
			}
		}
		s, err = a.StartSession(capacity)
		return err
	})
	if err != nil {
		if a != nil {
			a.Close()
		}
		t.Fatal(err)
	}
	sessionAdapters.Store(s, a)
	t.Cleanup(func() {
		s.End()
		ns.Do(func() error { return a.Close() })
	})
	return a, s
}

// send copies p into the session's send ring and commits it.
func send(t *testing.T, s *wintun.Session, p []byte) {
	t.Helper()
	buf, err := s.AllocateSendPacket(len(p))
	if err != nil {
		t.Fatalf("AllocateSendPacket(%d): %v", len(p), err)
	}
	copy(buf, p)
	s.SendPacket(buf)
}

// receive returns a copy of the first packet for which match is true, releasing
// every packet it reads; it fails the test after timeout.
func receive(t *testing.T, s *wintun.Session, timeout time.Duration, match func(packet.Info) bool) packet.Info {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		p, err := s.ReceivePacket()
		if err == wintun.ErrNoMoreItems {
			select {
			case <-s.ReadWaitEvent():
			case <-deadline.C:
				t.Fatalf("no matching packet within %v; stats %+v", timeout, statsOf(s))
			}
			continue
		}
		if err != nil {
			t.Fatalf("ReceivePacket: %v", err)
		}
		cp := bytes.Clone(p)
		s.ReleaseReceivePacket(p)
		if in, err := packet.Parse(cp); err == nil && match(in) {
			return in
		}
	}
}

// checkGoroutines fails the test if, a second after it ends, more goroutines run than
// before it started.
func checkGoroutines(t *testing.T) {
	before := runtime.NumGoroutine()
	t.Cleanup(func() {
		var now int
		for i := 0; i < 100; i++ {
			if now = runtime.NumGoroutine(); now <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		buf := make([]byte, 1<<16)
		t.Errorf("%d goroutines before the test, %d after:\n%s", before, now, buf[:runtime.Stack(buf, true)])
	})
}

var sessionAdapters sync.Map // *wintun.Session -> *wintun.Adapter, for diagnostics

func statsOf(s *wintun.Session) any {
	if a, ok := sessionAdapters.Load(s); ok {
		return a.(*wintun.Adapter).Stats()
	}
	return "unknown"
}
