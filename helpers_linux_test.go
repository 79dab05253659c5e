package wintun_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"

	"github.com/vishvananda/netlink"
	"go.uber.org/goleak"
)

// nsAdapter creates an adapter inside ns with the given addresses on its system side
// and starts a session on it; both end with the test.
func nsAdapter(t *testing.T, ns *netns.NS, name string, capacity uint32, addrs ...string) (*wintun.Adapter, *wintun.Session) {
	t.Helper()
	return nsAdapterWith(t, ns, name, capacity, nil, addrs...)
}

// nsAdapterWith is nsAdapter with session options.
func nsAdapterWith(t *testing.T, ns *netns.NS, name string, capacity uint32, opts []wintun.SessionOption, addrs ...string) (*wintun.Adapter, *wintun.Session) {
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
		s, err = a.StartSession(capacity, opts...)
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

// checkLeaks fails the test if goroutines started during it, or file descriptors
// opened during it, are still there once it and its cleanups are done. Call it first,
// so that its check runs after every other cleanup.
func checkLeaks(t *testing.T) {
	t.Helper()
	netns.Require(t)
	ignore := goleak.IgnoreCurrent()
	before := countFDs(t)
	t.Cleanup(func() {
		if err := goleak.Find(ignore); err != nil {
			t.Errorf("goroutines left after the test: %v", err)
		}
		var now int
		for i := 0; i < 100; i++ {
			if now = countFDs(t); now <= before {
				return
			}
			time.Sleep(10 * time.Millisecond)
		}
		t.Errorf("%d file descriptors open before the test, %d after", before, now)
	})
}

func countFDs(t *testing.T) int {
	entries, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Fatal(err)
	}
	return len(entries) - 1 // the directory being read
}

// linkStats returns the kernel's counters of interface name in ns.
func linkStats(t *testing.T, ns *netns.NS, name string) netlink.LinkStatistics {
	t.Helper()
	var st netlink.LinkStatistics
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName(name)
		if err == nil {
			st = *l.Attrs().Statistics
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	return st
}

// noIPv6 turns IPv6 off for the interfaces created later in ns, so that the kernel's
// own IPv6 traffic (router solicitations, MLD reports) does not mix with counted
// streams.
func noIPv6(t *testing.T, ns *netns.NS) {
	t.Helper()
	if err := ns.Do(func() error {
		return os.WriteFile("/proc/sys/net/ipv6/conf/default/disable_ipv6", []byte("1"), 0)
	}); err != nil {
		t.Fatal(err)
	}
}

// udpSocket opens a UDP socket in ns: bound to laddr, connected to raddr unless it is
// empty.
func udpSocket(t *testing.T, ns *netns.NS, laddr, raddr string) *net.UDPConn {
	t.Helper()
	var c *net.UDPConn
	if err := ns.Do(func() error {
		la, err := net.ResolveUDPAddr("udp", laddr)
		if err != nil {
			return err
		}
		if raddr == "" {
			c, err = net.ListenUDP("udp", la)
			return err
		}
		ra, err := net.ResolveUDPAddr("udp", raddr)
		if err != nil {
			return err
		}
		c, err = net.DialUDP("udp", la, ra)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return c
}

// udpSeq returns the sequence number in the first 4 bytes of the UDP payload of an
// IPv4 packet to port, or false if p is not such a packet.
func udpSeq(p []byte, port uint16) (uint32, bool) {
	in, err := packet.Parse(p)
	if err != nil || in.Proto != packet.ProtoUDP || in.DstPort != port || len(in.Payload) < 12 {
		return 0, false
	}
	return binary.BigEndian.Uint32(in.Payload[8:]), true
}
