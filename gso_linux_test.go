package wintun_test

import (
	"bytes"
	"encoding/binary"
	"net"
	"net/netip"
	"os"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"
)

// gsoPair is forwarderPair with sessions started WithGSO and the batch forwarder.
func gsoPair(t *testing.T, supers *atomic.Int64) (nsA, nsB *netns.NS, a, b *wintun.Adapter) {
	nsA, nsB = netns.ForTest(t), netns.ForTest(t)
	start := func(ns *netns.NS, addr string) (*wintun.Adapter, *wintun.Session) {
		var a *wintun.Adapter
		var s *wintun.Session
		if err := ns.Do(func() (err error) {
			if a, err = wintun.CreateAdapter("wtgso", "Test", nil); err != nil {
				return err
			}
			if err = a.AddAddress(netip.MustParsePrefix(addr)); err != nil {
				return err
			}
			s, err = a.StartSession(0x400000, wintun.WithGSO())
			return err
		}); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { s.End(); ns.Do(func() error { return a.Close() }) })
		return a, s
	}
	a, sa := start(nsA, "10.210.0.1/24")
	b, sb := start(nsB, "10.210.0.2/24")
	var wg sync.WaitGroup
	wg.Add(2)
	count := func(p []byte) {
		if p[1] != 0 { // gso_type of the virtio_net_hdr
			supers.Add(1)
		}
	}
	go func() { defer wg.Done(); forwardBatch(sa, sb, count) }()
	go func() { defer wg.Done(); forwardBatch(sb, sa, count) }()
	t.Cleanup(func() { sa.End(); sb.End(); wg.Wait() })
	return nsA, nsB, a, b
}

// TestGSOForwarder moves a 64 MiB TCP transfer between two namespaces through
// sessions started WithGSO: super-packets must cross intact with their headers.
func TestGSOForwarder(t *testing.T) {
	var supers atomic.Int64
	nsA, nsB, _, _ := gsoPair(t, &supers)
	netns.TransferTCP(t, nsA, nsB, "10.210.0.2:5003", 64<<20)
	if supers.Load() == 0 && os.Getenv("WINTUN_OFFLOAD") != "0" {
		t.Error("no super-packet (gso_type != 0) crossed the forwarder: offloads are not in use")
	}
	t.Logf("%d super-packets forwarded", supers.Load())
}

// TestGSOAndPlainSessionsMix runs a plain session next to a WithGSO one on the same
// adapter: the kernel sends super-packets to both queues, and the plain one splits
// them.
func TestGSOAndPlainSessionsMix(t *testing.T) {
	ns := netns.ForTest(t)
	ns.Do(func() error {
		a, err := wintun.CreateAdapter("wtmix", "Test", nil)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer a.Close()
		s, err := a.StartSession(wintun.RingCapacityMin)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer s.End()
		g, err := a.StartSession(wintun.RingCapacityMin, wintun.WithGSO())
		if err != nil {
			t.Errorf("WithGSO next to a plain session: %v", err)
			return nil
		}
		g.End()
		return nil
	})
}

// TestSessionMemory checks the memory a session costs: its two rings and little more
// (at most 2 x capacity + 1 MiB of heap).
func TestSessionMemory(t *testing.T) {
	ns := netns.ForTest(t)
	const capacity = 0x800000
	ns.Do(func() error {
		a, err := wintun.CreateAdapter("wtmem", "Test", nil)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer a.Close()
		var before, after runtime.MemStats
		runtime.GC()
		runtime.ReadMemStats(&before)
		s, err := a.StartSession(capacity)
		if err != nil {
			t.Error(err)
			return nil
		}
		defer s.End()
		runtime.GC()
		runtime.ReadMemStats(&after)
		grown := int64(after.HeapAlloc) - int64(before.HeapAlloc)
		t.Logf("a session with %d MiB rings: %.2f MiB of heap", capacity>>20, float64(grown)/(1<<20))
		if grown > 2*capacity+1<<20 {
			t.Errorf("a session took %d bytes of heap, more than 2 x capacity + 1 MiB", grown)
		}
		return nil
	})
}

// TestCoalescedUDPWrite commits a bundle of datagrams of one flow at once: the writer
// sends them as one UDP super-packet, and the kernel's socket still gets each of them.
func TestCoalescedUDPWrite(t *testing.T) {
	st := udpBundle(t)
	if st.SentSuperPackets == 0 && os.Getenv("WINTUN_OFFLOAD") != "0" && os.Getenv("WINTUN_COALESCE_UDP") != "0" {
		t.Errorf("the datagrams were not coalesced: %+v", st)
	}
}

// TestWithCoalescing checks that the option overrides the environment both ways (CI
// runs the suite with coalescing on and, with WINTUN_OFFLOAD=0, off).
func TestWithCoalescing(t *testing.T) {
	if st := udpBundle(t, wintun.WithCoalescing(false, false)); st.SentSuperPackets != 0 {
		t.Errorf("WithCoalescing(false, false): %d super-packets written", st.SentSuperPackets)
	}
	st := udpBundle(t, wintun.WithCoalescing(true, true))
	if st.SentSuperPackets == 0 && os.Getenv("WINTUN_OFFLOAD") != "0" {
		t.Errorf("WithCoalescing(true, true): the datagrams were not coalesced: %+v", st)
	}
}

// udpBundle commits five datagrams of one flow in one bundle to a new session started
// with opts, checks that the kernel's socket gets each of them intact, and returns the
// adapter's counters.
func udpBundle(t *testing.T, opts ...wintun.SessionOption) wintun.Stats {
	t.Helper()
	ns := netns.ForTest(t)
	a, s := nsAdapterWith(t, ns, "wtuso", wintun.RingCapacityMin, opts, "10.231.0.1/24")
	var c *net.UDPConn
	if err := ns.Do(func() (err error) {
		c, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(10, 231, 0, 1), Port: 7100})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	src, dst := netip.MustParseAddr("10.231.0.2"), netip.MustParseAddr("10.231.0.1")
	var dgrams [][]byte
	for i := 0; i < 5; i++ {
		size := 1000
		if i == 4 {
			size = 300
		}
		u := make([]byte, 8+size)
		binary.BigEndian.PutUint16(u[0:], 40000)
		binary.BigEndian.PutUint16(u[2:], 7100)
		binary.BigEndian.PutUint16(u[4:], uint16(len(u)))
		for j := 8; j < len(u); j++ {
			u[j] = byte(i*7 + j)
		}
		d := packet.IP(src, dst, packet.ProtoUDP, u)
		// IPv4 IDs counting up, as a sender's kernel numbers them: coalescing, like
		// Linux's GRO, merges no datagrams with one ID unless DF is set.
		binary.BigEndian.PutUint16(d[4:], uint16(i))
		binary.BigEndian.PutUint16(d[10:], 0)
		binary.BigEndian.PutUint16(d[10:], packet.Checksum(d[:20], 0))
		dgrams = append(dgrams, d)
	}
	sizes := make([]int, len(dgrams))
	for i, d := range dgrams {
		sizes[i] = len(d)
	}
	out := make([][]byte, len(dgrams))
	if n, err := s.AllocateSendPackets(sizes, out); n != len(dgrams) || err != nil {
		t.Fatalf("AllocateSendPackets = %d, %v", n, err)
	}
	for i := range out {
		copy(out[i], dgrams[i])
	}
	s.SendPackets(out)
	buf := make([]byte, 2000)
	for i, d := range dgrams {
		c.SetReadDeadline(time.Now().Add(5 * time.Second))
		n, err := c.Read(buf)
		if err != nil {
			t.Fatalf("datagram %d: %v; stats %+v", i, err, a.Stats())
		}
		if !bytes.Equal(buf[:n], d[28:]) {
			t.Errorf("datagram %d: %d bytes, not what was sent (%d bytes)", i, n, len(d)-28)
		}
	}
	// The kernel delivers a write before the writer counts it.
	for deadline := time.Now().Add(time.Second); a.Stats().SentPackets < uint64(len(dgrams)) && time.Now().Before(deadline); {
		time.Sleep(time.Millisecond)
	}
	return a.Stats()
}

// TestGSOOversizedPacket raises the MTU of a WithGSO session's adapter to the
// maximum: a 65535-byte packet and its virtio_net_hdr do not fit one ring record, so
// the session must drop and count it, never hand it out truncated; the packets
// around it arrive whole.
func TestGSOOversizedPacket(t *testing.T) {
	ns := netns.ForTest(t)
	a, s := nsAdapterWith(t, ns, "wtbig", 0x400000, []wintun.SessionOption{wintun.WithGSO()}, "10.211.0.1/24")
	if err := ns.Do(func() error { return a.SetMTU(65535) }); err != nil {
		t.Fatal(err)
	}
	c := udpSocket(t, ns, "10.211.0.1:0", "10.211.0.2:9")
	for _, size := range []int{100, 65535 - 28, 200} {
		if _, err := c.Write(make([]byte, size)); err != nil {
			t.Fatalf("write %d bytes: %v", size, err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	var got []int
	for len(got) < 2 && time.Now().Before(deadline) {
		p, err := s.ReceivePacket()
		if err == wintun.ErrNoMoreItems {
			select {
			case <-s.ReadWaitEvent():
			case <-time.After(time.Until(deadline)):
			}
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		ip := p[wintun.GSOHeaderLen:]
		in, perr := packet.Parse(ip)
		if ip[0]>>4 == 4 && int(binary.BigEndian.Uint16(ip[2:])) != len(ip) {
			t.Errorf("a record of %d bytes holds an IPv4 packet of total length %d: truncated", len(ip), binary.BigEndian.Uint16(ip[2:]))
		} else if perr == nil && in.Proto == packet.ProtoUDP && in.DstPort == 9 {
			got = append(got, len(in.Payload)-8) // the UDP header
		}
		s.ReleaseReceivePacket(p)
	}
	if len(got) != 2 || got[0] != 100 || got[1] != 200 {
		t.Errorf("received UDP payloads of %v bytes, want [100 200]", got)
	}
	if st := a.Stats(); st.ReceiveDropsOversize != 1 {
		t.Errorf("ReceiveDropsOversize = %d, want 1; stats %+v", st.ReceiveDropsOversize, st)
	}
}
