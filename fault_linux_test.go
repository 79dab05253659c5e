package wintun_test

import (
	"encoding/binary"
	"errors"
	"io"
	"net"
	"net/netip"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"

	"github.com/vishvananda/netlink"
)

// busySession keeps 8 goroutines in each of the six session calls, with echo traffic
// flowing, until the session reports the end of file.
type busySession struct {
	s                       *wintun.Session
	wg, wgStop              sync.WaitGroup
	stop                    chan struct{}
	replies                 atomic.Int64
	calls                   [5]atomic.Int64 // receive, release, allocate, send, wait
	receiveEOF, allocateEOF atomic.Int64
	waitClosed, otherErrors atomic.Int64
	lastOtherError          atomic.Value
}

func startBusy(s *wintun.Session, local, remote netip.Addr) *busySession {
	b := &busySession{s: s, stop: make(chan struct{})}
	held := make(chan []byte, 64)
	filled := make(chan []byte, 64)
	fail := func(err error) { b.otherErrors.Add(1); b.lastOtherError.Store(err.Error()) }
	for g := 0; g < 8; g++ {
		b.wg.Add(3)
		b.wgStop.Add(2)
		go func() { // ReceivePacket
			defer b.wg.Done()
			for {
				p, err := s.ReceivePacket()
				b.calls[0].Add(1)
				switch {
				case err == nil:
					if in, _ := packet.Parse(p); in.IsEchoReply() {
						b.replies.Add(1)
					}
					select {
					case held <- p:
					default:
						s.ReleaseReceivePacket(p)
					}
				case err == wintun.ErrNoMoreItems:
					select {
					case <-s.ReadWaitEvent():
					case <-time.After(10 * time.Millisecond):
					}
				case errors.Is(err, io.EOF):
					b.receiveEOF.Add(1)
					return
				default:
					fail(err)
					return
				}
			}
		}()
		go func() { // ReleaseReceivePacket
			defer b.wgStop.Done()
			for {
				select {
				case p := <-held:
					s.ReleaseReceivePacket(p)
					s.ReleaseReceivePacket(p) // a second time: ignored
					b.calls[1].Add(1)
				case <-b.stop:
					return
				}
			}
		}()
		go func(id uint16) { // AllocateSendPacket
			defer b.wg.Done()
			for seq := uint16(0); ; seq++ {
				req := packet.Echo(local, remote, packet.EchoRequest4, id, seq, make([]byte, seq%100))
				p, err := s.AllocateSendPacket(len(req))
				b.calls[2].Add(1)
				switch {
				case err == nil:
					copy(p, req)
					select {
					case filled <- p:
					default:
						s.SendPacket(p)
					}
				case err == wintun.ErrBufferOverflow:
					time.Sleep(100 * time.Microsecond)
				case errors.Is(err, io.EOF):
					b.allocateEOF.Add(1)
					return
				default:
					fail(err)
					return
				}
				time.Sleep(20 * time.Microsecond)
			}
		}(uint16(g))
		go func() { // SendPacket
			defer b.wgStop.Done()
			for {
				select {
				case p := <-filled:
					s.SendPacket(p)
					b.calls[3].Add(1)
				case <-b.stop:
					return
				}
			}
		}()
		go func() { // ReadWaitEvent
			defer b.wg.Done()
			for range s.ReadWaitEvent() {
				b.calls[4].Add(1)
			}
			b.waitClosed.Add(1)
		}()
	}
	return b
}

// finish waits at most limit for the goroutines that stop on their own (receivers,
// allocators, waiters) and then stops the others.
func (b *busySession) finish(t *testing.T, limit time.Duration) {
	t.Helper()
	done := make(chan struct{})
	go func() { b.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(limit):
		t.Errorf("session calls still running %v after the fault: %d of 8 receivers, %d of 8 allocators and %d of 8 waiters saw the end",
			limit, b.receiveEOF.Load(), b.allocateEOF.Load(), b.waitClosed.Load())
	}
	close(b.stop)
	b.wgStop.Wait()
	<-done
	if n := b.otherErrors.Load(); n > 0 {
		t.Errorf("%d calls failed with an error other than io.EOF, e.g. %v", n, b.lastOtherError.Load())
	}
	if b.receiveEOF.Load() != 8 || b.allocateEOF.Load() != 8 || b.waitClosed.Load() != 8 {
		t.Errorf("io.EOF seen by %d receivers and %d allocators, ReadWaitEvent closed for %d waiters; want 8 each",
			b.receiveEOF.Load(), b.allocateEOF.Load(), b.waitClosed.Load())
	}
}

// TestFaultsUnderLoad ends a session in each way it can end while 8 goroutines are in
// every session call: every call returns promptly with io.EOF errors (or, for the
// calls without a result, returns), nothing panics, nothing is left behind.
func TestFaultsUnderLoad(t *testing.T) {
	for _, c := range []struct {
		name  string
		limit time.Duration // a liveness bound, not a timing
		cause error
	}{
		{"End", 2 * time.Second, wintun.ErrSessionEnded},
		{"AdapterClosed", 2 * time.Second, wintun.ErrSessionEnded},
		{"AdapterDeleted", 2 * time.Second, wintun.ErrAdapterGone},
		{"NamespaceDestroyed", 5 * time.Second, wintun.ErrAdapterGone}, // the kernel cleans up asynchronously
	} {
		t.Run(c.name, func(t *testing.T) {
			checkLeaks(t)
			home := netns.ForTest(t)
			where := home
			inside, err := netns.New()
			if err != nil {
				t.Fatal(err)
			}
			defer inside.Close()
			var a *wintun.Adapter
			var s *wintun.Session
			if err := home.Do(func() (err error) {
				if a, err = wintun.CreateAdapter("wtfault", "Test", nil); err != nil {
					return err
				}
				if s, err = a.StartSession(wintun.RingCapacityMin); err != nil {
					return err
				}
				if c.name == "NamespaceDestroyed" {
					// Moved there from home, so that no tun fd holds that namespace.
					where = inside
					return netlink.LinkSetNsFd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Index: a.Index()}}, inside.FD())
				}
				return nil
			}); err != nil {
				t.Fatal(err)
			}
			defer func() { s.End(); home.Do(func() error { return a.Close() }) }()
			if err := where.Do(func() error {
				l, err := netlink.LinkByName("wtfault")
				if err != nil {
					return err
				}
				if err := netlink.LinkSetUp(l); err != nil {
					return err
				}
				return netlink.AddrAdd(l, &netlink.Addr{IPNet: &net.IPNet{IP: net.IPv4(10, 220, 0, 1), Mask: net.CIDRMask(24, 32)}})
			}); err != nil {
				t.Fatal(err)
			}
			b := startBusy(s, netip.MustParseAddr("10.220.0.2"), netip.MustParseAddr("10.220.0.1"))
			for deadline := time.Now().Add(5 * time.Second); b.replies.Load() < 50 && time.Now().Before(deadline); {
				time.Sleep(10 * time.Millisecond)
			}
			switch c.name {
			case "End":
				s.End()
			case "AdapterClosed":
				home.Do(func() error { return a.Close() })
			case "AdapterDeleted":
				if err := home.Do(func() error {
					return netlink.LinkDel(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "wtfault"}})
				}); err != nil {
					t.Fatal(err)
				}
			case "NamespaceDestroyed":
				inside.Close()
			}
			b.finish(t, c.limit)
			if _, err := s.ReceivePacket(); !errors.Is(err, c.cause) {
				t.Errorf("ReceivePacket after the fault: %v, want %v", err, c.cause)
			}
			if _, err := s.AllocateSendPacket(20); !errors.Is(err, io.EOF) {
				t.Errorf("AllocateSendPacket after the fault: %v, want an io.EOF error", err)
			}
			var calls [5]int64
			for i := range calls {
				calls[i] = b.calls[i].Load()
			}
			if b.replies.Load() == 0 || calls[1] == 0 || calls[3] == 0 {
				t.Errorf("no traffic before the fault: %d replies, calls %v", b.replies.Load(), calls)
			}
			t.Logf("%d echo replies; calls (receive, release, allocate, send, wait) %v", b.replies.Load(), calls)
		})
	}
}

// udpPacket builds an IPv4 UDP packet whose payload starts with seq.
func udpPacket(src, dst netip.AddrPort, seq uint32, size int) []byte {
	l4 := make([]byte, 8+max(size, 4))
	binary.BigEndian.PutUint16(l4[0:], src.Port())
	binary.BigEndian.PutUint16(l4[2:], dst.Port())
	binary.BigEndian.PutUint16(l4[4:], uint16(len(l4)))
	binary.BigEndian.PutUint32(l4[8:], seq)
	return packet.IP(src.Addr(), dst.Addr(), packet.ProtoUDP, l4)
}

// qdiscDrops returns the drops counted by the root queueing discipline of name in ns.
func qdiscDrops(t *testing.T, ns *netns.NS, name string) uint64 {
	t.Helper()
	var drops uint64
	ns.Do(func() error {
		l, err := netlink.LinkByName(name)
		if err != nil {
			return err
		}
		qs, err := netlink.QdiscList(l)
		if err != nil {
			return err
		}
		for _, q := range qs {
			if a := q.Attrs(); a.Parent == netlink.HANDLE_ROOT && a.Statistics != nil && a.Statistics.Queue != nil {
				drops += uint64(a.Statistics.Queue.Drops)
			}
		}
		return nil
	})
	return drops
}

// sendUDP writes n datagrams with the sequence numbers from first on, pacing a little
// so that the kernel's queues (not the ring) are never the bottleneck, and returns how
// many the kernel accepted.
// sendFitting sends n datagrams in bursts of 50 (a third of a 128 KiB ring at 1000
// bytes) with pauses, so that the offered load fits the ring even when the reader is
// slow (race detector, a busy machine). It returns how many were sent.
func sendFitting(c *net.UDPConn, first uint32, n, size int) int {
	sent := 0
	for i := 0; i < n; i += 50 {
		sent += sendUDP(c, first+uint32(i), min(50, n-i), size)
		time.Sleep(10 * time.Millisecond)
	}
	return sent
}

func sendUDP(c *net.UDPConn, first uint32, n int, size int) int {
	buf := make([]byte, size)
	sent := 0
	for i := 0; i < n; i++ {
		binary.BigEndian.PutUint32(buf, first+uint32(i))
		if _, err := c.Write(buf); err == nil {
			sent++
		}
		if i%16 == 15 {
			time.Sleep(200 * time.Microsecond)
		}
	}
	return sent
}

// drainUDP reads the packets in the ring until it stays empty for quiet, releasing
// them, and returns the sequence numbers of the datagrams to port, in ring order.
func drainUDP(t *testing.T, s *wintun.Session, port uint16, quiet time.Duration) []uint32 {
	t.Helper()
	var seqs []uint32
	for {
		p, err := s.ReceivePacket()
		if err == wintun.ErrNoMoreItems {
			select {
			case <-s.ReadWaitEvent():
				continue
			case <-time.After(quiet):
				return seqs
			}
		}
		if err != nil {
			t.Fatalf("ReceivePacket: %v", err)
		}
		if seq, ok := udpSeq(p, port); ok {
			seqs = append(seqs, seq)
		}
		s.ReleaseReceivePacket(p)
	}
}

func checkOrder(t *testing.T, seqs []uint32) {
	t.Helper()
	for i := 1; i < len(seqs); i++ {
		if seqs[i] <= seqs[i-1] {
			t.Fatalf("reordered or duplicated: sequence %d after %d", seqs[i], seqs[i-1])
		}
	}
}

// TestRingFullThenRecovery lets the kernel send for seconds to an application that
// does not read: the ring fills, the excess is dropped and counted, and every datagram
// is accounted for; once the application reads, everything flows again, in order.
func TestRingFullThenRecovery(t *testing.T) {
	checkLeaks(t)
	ns := netns.ForTest(t)
	noIPv6(t, ns)
	a, s := nsAdapter(t, ns, "wtrfull", wintun.RingCapacityMin, "10.221.0.1/24")
	c := udpSocket(t, ns, "10.221.0.1:0", "10.221.0.2:7000")
	base, baseQ := linkStats(t, ns, "wtrfull"), qdiscDrops(t, ns, "wtrfull")
	baseSt := a.Stats()
	const size = 1000 // a record of 4+28+1000 bytes: 127 fit in 128 KiB
	sent := 0
	var seq uint32
	for start := time.Now(); time.Since(start) < 2*time.Second; seq += 64 {
		sent += sendUDP(c, seq, 64, size)
	}
	time.Sleep(50 * time.Millisecond) // the reader catches up with the kernel's queue
	full := a.Stats()
	if full.ReceiveDropsRingFull == baseSt.ReceiveDropsRingFull {
		t.Fatalf("no ring-full drop after %d datagrams to an application that does not read: %+v", sent, full)
	}
	seqs := drainUDP(t, s, 7000, 100*time.Millisecond)
	checkOrder(t, seqs)
	link, q := linkStats(t, ns, "wtrfull"), qdiscDrops(t, ns, "wtrfull")
	st := a.Stats()
	ringFull := st.ReceiveDropsRingFull - baseSt.ReceiveDropsRingFull
	accounted := uint64(len(seqs)) + ringFull + (link.TxDropped - base.TxDropped) + (q - baseQ)
	t.Logf("sent %d: received %d, ring-full drops %d, kernel tx drops %d, qdisc drops %d", sent, len(seqs), ringFull, link.TxDropped-base.TxDropped, q-baseQ)
	if accounted != uint64(sent) {
		t.Errorf("%d datagrams sent, %d accounted for", sent, accounted)
	}
	// Recovery: a reading application gets everything, in order, with no new drop.
	got := make(chan []uint32)
	go func() { got <- drainUDP(t, s, 7000, 500*time.Millisecond) }()
	n := sendFitting(c, seq, 500, size)
	seqs = <-got
	checkOrder(t, seqs)
	if len(seqs) != n || n != 500 {
		t.Errorf("after recovery: %d of %d datagrams received (500 sent)", len(seqs), n)
	}
	if after := a.Stats(); after.ReceiveDropsRingFull != st.ReceiveDropsRingFull {
		t.Errorf("ring-full drops while the application reads: %d", after.ReceiveDropsRingFull-st.ReceiveDropsRingFull)
	}
}

// TestNeverReleased holds every received packet: the ring fills and stays full, the
// session stays healthy (sending works), Stats says why nothing moves, and traffic
// flows again once the packets are released.
func TestNeverReleased(t *testing.T) {
	checkLeaks(t)
	ns := netns.ForTest(t)
	noIPv6(t, ns)
	a, s := nsAdapter(t, ns, "wtnorel", wintun.RingCapacityMin, "10.222.0.1/24")
	c := udpSocket(t, ns, "10.222.0.1:0", "10.222.0.2:7000")
	listener := udpSocket(t, ns, "10.222.0.1:7001", "")
	var held [][]byte
	receiveAll := func() {
		for {
			p, err := s.ReceivePacket()
			if err == wintun.ErrNoMoreItems {
				return
			}
			if err != nil {
				t.Fatalf("ReceivePacket while holding %d packets: %v", len(held), err)
			}
			held = append(held, p)
		}
	}
	var seq uint32
	for round := 0; round < 4; round++ {
		seq += uint32(sendUDP(c, seq, 100, 1000))
		time.Sleep(20 * time.Millisecond)
		receiveAll()
	}
	drops := a.Stats().ReceiveDropsRingFull
	if drops == 0 || len(held) == 0 || len(held) > wintun.RingCapacityMin/1032 {
		t.Fatalf("holding %d packets after 400 sent: ring-full drops %d", len(held), drops)
	}
	sendUDP(c, seq, 50, 1000)
	time.Sleep(20 * time.Millisecond)
	if _, err := s.ReceivePacket(); err != wintun.ErrNoMoreItems {
		t.Errorf("ReceivePacket with the ring full of held packets: %v, want ErrNoMoreItems", err)
	}
	if more := a.Stats().ReceiveDropsRingFull; more < drops+50 {
		t.Errorf("ring-full drops went from %d to %d after 50 more datagrams; want +50", drops, more)
	}
	// The session is healthy: the send direction works.
	send(t, s, udpPacket(netip.MustParseAddrPort("10.222.0.2:9"), netip.MustParseAddrPort("10.222.0.1:7001"), 42, 100))
	listener.SetReadDeadline(time.Now().Add(2 * time.Second))
	buf := make([]byte, 2048)
	if n, err := listener.Read(buf); err != nil || n != 100 || binary.BigEndian.Uint32(buf) != 42 {
		t.Errorf("datagram sent through a session whose receive ring is full: %d bytes, %v", n, err)
	}
	// Released out of order, space comes back and traffic flows.
	for i := len(held) - 1; i >= 0; i-- {
		s.ReleaseReceivePacket(held[i])
	}
	got := make(chan []uint32)
	go func() { got <- drainUDP(t, s, 7000, 500*time.Millisecond) }()
	n := sendFitting(c, 1_000_000, 200, 1000)
	if seqs := <-got; len(seqs) != n || n != 200 {
		t.Errorf("after releasing: %d of %d datagrams received", len(seqs), n)
	} else {
		checkOrder(t, seqs)
	}
}

// TestMissedWakeUpStress alternates idle periods with a single datagram, thousands of
// times, in both directions: each must arrive within a second (a liveness bound; a
// missed wake-up would stall until the next packet, which never comes).
func TestMissedWakeUpStress(t *testing.T) {
	checkLeaks(t)
	ns := netns.ForTest(t)
	noIPv6(t, ns)
	_, s := nsAdapter(t, ns, "wtstress", wintun.RingCapacityMin, "10.223.0.1/24")
	c := udpSocket(t, ns, "10.223.0.1:7002", "10.223.0.2:7000")
	rounds := 3000
	if testing.Short() {
		rounds = 300
	}
	from, to := netip.MustParseAddrPort("10.223.0.2:7000"), netip.MustParseAddrPort("10.223.0.1:7002")
	buf := make([]byte, 2048)
	var worst [2]time.Duration
	for i := 0; i < rounds; i++ {
		time.Sleep(time.Duration(i%4) * 250 * time.Microsecond)
		start := time.Now()
		if i%2 == 0 { // kernel to application: the reader's ReadWaitEvent
			binary.BigEndian.PutUint32(buf, uint32(i))
			if _, err := c.Write(buf[:64]); err != nil {
				t.Fatal(err)
			}
			receive(t, s, time.Second, func(in packet.Info) bool {
				return in.Proto == packet.ProtoUDP && len(in.Payload) >= 12 && binary.BigEndian.Uint32(in.Payload[8:]) == uint32(i)
			})
		} else { // application to kernel: the writer's Alertable
			send(t, s, udpPacket(from, to, uint32(i), 64))
			c.SetReadDeadline(time.Now().Add(time.Second))
			if n, err := c.Read(buf); err != nil || n != 64 || binary.BigEndian.Uint32(buf) != uint32(i) {
				t.Fatalf("round %d: datagram from the application not delivered within a second: %d bytes, %v", i, n, err)
			}
		}
		worst[i%2] = max(worst[i%2], time.Since(start))
	}
	t.Logf("%d idle-then-one-packet rounds; slowest delivery to the application %v, to the kernel %v", rounds, worst[0], worst[1])
}

// TestFirstPacketAfterStartSession is the regression test for a start-up race: the
// kernel turns the carrier on asynchronously, and until it has, it drops what it sends
// through the adapter (and IPv6 addresses stay tentative), so the reply to a session's
// very first packet could be lost.
func TestFirstPacketAfterStartSession(t *testing.T) {
	ns := netns.ForTest(t)
	local, remote := netip.MustParseAddr("10.224.0.2"), netip.MustParseAddr("10.224.0.1")
	local6, remote6 := netip.MustParseAddr("fd00:224::2"), netip.MustParseAddr("fd00:224::1")
	for i := 0; i < 30; i++ {
		var a *wintun.Adapter
		var s *wintun.Session
		if err := ns.Do(func() (err error) {
			if a, err = wintun.CreateAdapter("wtfirst", "Test", nil); err != nil {
				return err
			}
			if err = a.AddAddress(netip.PrefixFrom(remote, 24)); err == nil {
				err = a.AddAddress(netip.PrefixFrom(remote6, 64))
			}
			if err == nil {
				s, err = a.StartSession(wintun.RingCapacityMin)
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		typ, from, to := uint8(packet.EchoRequest4), local, remote
		if i%2 == 1 {
			typ, from, to = packet.EchoRequest6, local6, remote6
		}
		send(t, s, packet.Echo(from, to, typ, 1, uint16(i), nil))
		receive(t, s, time.Second, func(in packet.Info) bool { return in.IsEchoReply() && in.Seq == uint16(i) })
		ns.Do(func() error { return a.Close() })
	}
}

// TestNoLeakAfterCloseEnd runs sessions on a created and an opened handle, ends some
// and closes the rest with their adapter: no goroutine and no file descriptor may be
// left (checkLeaks uses goleak and /proc/self/fd).
func TestNoLeakAfterCloseEnd(t *testing.T) {
	checkLeaks(t)
	ns := netns.ForTest(t)
	var a, b *wintun.Adapter
	var ss []*wintun.Session
	if err := ns.Do(func() (err error) {
		if a, err = wintun.CreateAdapter("wtleak", "Test", nil); err != nil {
			return err
		}
		if err = a.AddAddress(netip.MustParsePrefix("10.225.0.1/24")); err != nil {
			return err
		}
		if b, err = wintun.OpenAdapter("wtleak"); err != nil {
			return err
		}
		for _, h := range []*wintun.Adapter{a, a, b, b} {
			s, err := h.StartSession(wintun.RingCapacityMin)
			if err != nil {
				return err
			}
			ss = append(ss, s)
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	for i, s := range ss {
		send(t, s, packet.Echo(netip.MustParseAddr("10.225.0.2"), netip.MustParseAddr("10.225.0.1"), packet.EchoRequest4, uint16(i), 1, nil))
	}
	time.Sleep(50 * time.Millisecond)
	ss[0].End()
	ss[2].End()
	ns.Do(func() error { return b.Close() })
	ns.Do(func() error { return a.Close() })
	for _, s := range ss {
		if _, err := s.ReceivePacket(); !errors.Is(err, io.EOF) {
			t.Errorf("session after Close: %v", err)
		}
	}
}

// TestSessionHoldsNamespace drops every reference to a namespace but the adapter's
// and its session's: the session's tun queue keeps the namespace, so the adapter
// stays and the kernel in there still answers a ping through the session.
func TestSessionHoldsNamespace(t *testing.T) {
	netns.Require(t)
	ns, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	var a *wintun.Adapter
	var s *wintun.Session
	if err := ns.Do(func() (err error) {
		if a, err = wintun.CreateAdapter("wthold", "Test", nil); err != nil {
			return err
		}
		if err = a.AddAddress(netip.MustParsePrefix("10.213.0.1/24")); err != nil {
			return err
		}
		s, err = a.StartSession(wintun.RingCapacityMin)
		return err
	}); err != nil {
		ns.Close()
		t.Fatal(err)
	}
	defer a.Close() // from outside the namespace: releases the handle only
	defer s.End()
	ns.Close()
	time.Sleep(200 * time.Millisecond)
	src, dst := netip.MustParseAddr("10.213.0.2"), netip.MustParseAddr("10.213.0.1")
	send(t, s, packet.Echo(src, dst, packet.EchoRequest4, 7, 1, []byte("held")))
	receive(t, s, 5*time.Second, func(in packet.Info) bool {
		return in.ICMPType == packet.EchoReply4 && in.ID == 7 && in.Src == dst
	})
}
