package wintun_test

import (
	"encoding/binary"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

// gatedPair is two IPv4-only namespaces, adapters "wtnl" with 10.226.0.1 (A) and
// 10.226.0.2 (B), and a forwarder between the sessions that can be paused; a full send
// ring is retried, so the only drops are those the library and the kernel count.
type gatedPair struct {
	nsA, nsB *netns.NS
	a, b     *wintun.Adapter
	paused   atomic.Bool
}

func newGatedPair(t *testing.T, capacity uint32) *gatedPair {
	g := &gatedPair{nsA: netns.ForTest(t), nsB: netns.ForTest(t)}
	noIPv6(t, g.nsA)
	noIPv6(t, g.nsB)
	var sa, sb *wintun.Session
	g.a, sa = nsAdapter(t, g.nsA, "wtnl", capacity, "10.226.0.1/24")
	g.b, sb = nsAdapter(t, g.nsB, "wtnl", capacity, "10.226.0.2/24")
	for _, ns := range []*netns.NS{g.nsA, g.nsB} {
		ns.Do(func() error {
			l, err := netlink.LinkByName("wtnl")
			if err == nil {
				err = netlink.LinkSetTxQLen(l, 10000)
			}
			return err
		})
	}
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); g.forward(sa, sb) }()
	go func() { defer wg.Done(); g.forward(sb, sa) }()
	t.Cleanup(func() { sa.End(); sb.End(); wg.Wait() })
	return g
}

func (g *gatedPair) forward(from, to *wintun.Session) {
	for {
		for g.paused.Load() {
			time.Sleep(time.Millisecond)
		}
		p, err := from.ReceivePacket()
		if err == wintun.ErrNoMoreItems {
			select {
			case _, ok := <-from.ReadWaitEvent():
				if !ok {
					return
				}
			case <-time.After(10 * time.Millisecond):
			}
			continue
		}
		if err != nil {
			return
		}
		for {
			q, err := to.AllocateSendPacket(len(p))
			if err == wintun.ErrBufferOverflow {
				time.Sleep(50 * time.Microsecond)
				continue
			}
			if err == nil {
				copy(q, p)
				to.SendPacket(q)
			}
			break
		}
		from.ReleaseReceivePacket(p)
	}
}

// udpCounters reads the UDP receive errors of the namespace ns (its /proc/net/snmp).
func udpCounters(t *testing.T, ns *netns.NS) (rcvbufErrors, inErrors uint64) {
	t.Helper()
	ns.Do(func() error {
		b, err := os.ReadFile("/proc/thread-self/net/snmp")
		if err != nil {
			return err
		}
		var names []string
		for _, line := range strings.Split(string(b), "\n") {
			f := strings.Fields(line)
			if len(f) == 0 || f[0] != "Udp:" {
				continue
			}
			if names == nil {
				names = f
				continue
			}
			for i, n := range names {
				v, _ := strconv.ParseUint(f[i], 10, 64)
				switch n {
				case "RcvbufErrors":
					rcvbufErrors = v
				case "InErrors":
					inErrors = v
				}
			}
		}
		return nil
	})
	return
}

// TestNoLossCountedUDP sends numbered datagrams from A to B through the forwarder and
// accounts for every one: delivered, or dropped and counted with its cause (the
// library's Stats, the kernel's link, queueing discipline and UDP counters). With a
// load that fits the ring nothing is dropped; with the forwarder stalled, drops happen
// and are all counted.
func TestNoLossCountedUDP(t *testing.T) {
	checkLeaks(t)
	g := newGatedPair(t, 0x100000)
	rc := udpSocket(t, g.nsB, "10.226.0.2:7100", "")
	raw, _ := rc.SyscallConn()
	raw.Control(func(fd uintptr) { syscallSetRcvbuf(int(fd), 32<<20) })
	sc := udpSocket(t, g.nsA, "10.226.0.1:0", "10.226.0.2:7100")
	var mu sync.Mutex
	seen := map[uint32]bool{}
	var dup, reordered atomic.Int64
	go func() {
		buf := make([]byte, 2048)
		var last uint32
		for {
			n, err := rc.Read(buf)
			if err != nil {
				return
			}
			if n >= 4 {
				seq := binary.BigEndian.Uint32(buf)
				mu.Lock()
				if seen[seq] {
					dup.Add(1)
				}
				seen[seq] = true
				mu.Unlock()
				if seq < last {
					reordered.Add(1)
				}
				last = seq
			}
		}
	}()
	type counts struct{ ringFull, invalid, sendErr, linkTxDrop, linkRxDrop, qdisc, rcvbuf, inErr uint64 }
	snapshot := func() counts {
		sa, sb := g.a.Stats(), g.b.Stats()
		la, lb := linkStats(t, g.nsA, "wtnl"), linkStats(t, g.nsB, "wtnl")
		rb, ie := udpCounters(t, g.nsB)
		return counts{sa.ReceiveDropsRingFull, sb.SendDiscardsInvalid, sb.SendErrors, la.TxDropped, lb.RxDropped,
			qdiscDrops(t, g.nsA, "wtnl"), rb, ie}
	}
	round := func(name string, first uint32, n int, stall bool, wantDrops bool) {
		before := snapshot()
		if stall {
			g.paused.Store(true)
		}
		sent := sendUDP(sc, first, n, 1000)
		if stall {
			time.Sleep(50 * time.Millisecond)
			g.paused.Store(false)
		}
		delivered, prev := 0, -1
		// Until everything arrived, or nothing more did for 100 ms.
		for deadline := time.Now().Add(3 * time.Second); time.Now().Before(deadline) && delivered != prev; time.Sleep(100 * time.Millisecond) {
			prev = delivered
			mu.Lock()
			delivered = 0
			for s := first; s < first+uint32(n); s++ {
				if seen[s] {
					delivered++
				}
			}
			mu.Unlock()
			if delivered == sent {
				break
			}
		}
		time.Sleep(100 * time.Millisecond) // counters settle
		mu.Lock()
		delivered = 0
		for s := first; s < first+uint32(n); s++ {
			if seen[s] {
				delivered++
			}
		}
		mu.Unlock()
		after := snapshot()
		d := counts{after.ringFull - before.ringFull, after.invalid - before.invalid, after.sendErr - before.sendErr,
			after.linkTxDrop - before.linkTxDrop, after.linkRxDrop - before.linkRxDrop, after.qdisc - before.qdisc,
			after.rcvbuf - before.rcvbuf, after.inErr - before.inErr}
		drops := d.ringFull + d.invalid + d.sendErr + d.linkTxDrop + d.linkRxDrop + d.qdisc + d.rcvbuf
		t.Logf("%s: sent %d, delivered %d, drops %d (ring full %d, invalid %d, kernel send errors %d, link tx %d, link rx %d, qdisc %d, socket buffer %d)",
			name, sent, delivered, drops, d.ringFull, d.invalid, d.sendErr, d.linkTxDrop, d.linkRxDrop, d.qdisc, d.rcvbuf)
		if uint64(delivered)+drops != uint64(sent) {
			t.Errorf("%s: %d sent, %d delivered + %d counted drops: %d unaccounted for", name, sent, delivered, drops, int64(sent)-int64(delivered)-int64(drops))
		}
		if !wantDrops && drops != 0 {
			t.Errorf("%s: %d drops with a load that fits the ring", name, drops)
		}
		if wantDrops && d.ringFull == 0 {
			t.Errorf("%s: the forwarder stalled and the ring never filled", name)
		}
	}
	round("fits the ring", 0, 800, false, false)          // 800 records of 1032 bytes: under 1 MiB
	round("forwarder stalled", 100_000, 3000, true, true) // about three times the ring
	if dup.Load() != 0 || reordered.Load() != 0 {
		t.Errorf("%d duplicated and %d reordered datagrams", dup.Load(), reordered.Load())
	}
}

// TestNoLossTCPWithStalls moves a stream through the forwarder while it stalls now and
// then (the ring fills and the kernel drops): TCP recovers and the bytes arrive intact.
func TestNoLossTCPWithStalls(t *testing.T) {
	checkLeaks(t)
	g := newGatedPair(t, wintun.RingCapacityMin)
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() { // stall the forwarder for 20 ms every 100 ms
		defer close(done)
		for {
			select {
			case <-stop:
				return
			case <-time.After(100 * time.Millisecond):
			}
			g.paused.Store(true)
			time.Sleep(20 * time.Millisecond)
			g.paused.Store(false)
		}
	}()
	netns.TransferTCP(t, g.nsA, g.nsB, "10.226.0.2:7101", 16<<20)
	close(stop)
	<-done
	t.Logf("16 MiB intact through a stalling forwarder; stats A %+v", g.a.Stats())
}

func syscallSetRcvbuf(fd, n int) { unix.SetsockoptInt(fd, unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, n) }

// TestBurstFitsRing sends a burst of small datagrams from many goroutines at once
// through an adapter whose session does not read until the burst is over: the burst
// fits the session's ring, so the kernel must drop none of it on the way (its TX
// dropped counter of the device stays 0) and the session must hand out every one.
// Then, with the kernel's queue cut to 4 packets behind the session's back, a burst
// is dropped in the kernel, and Stats must say so.
func TestBurstFitsRing(t *testing.T) {
	ns := netns.ForTest(t)
	noIPv6(t, ns)
	a, s := nsAdapter(t, ns, "wtburst", 0x400000, "10.212.0.1/24")
	// No qdisc (it would allocate the queue's length for each of 256 transmit
	// queues), and the kernel's queue as long as the library makes it.
	var qdisc []byte
	if err := ns.Do(func() (err error) {
		qdisc, err = exec.Command("tc", "qdisc", "show", "dev", "wtburst").Output()
		return err
	}); err != nil || !strings.HasPrefix(string(qdisc), "qdisc noqueue ") || strings.Count(string(qdisc), "\n") != 1 {
		t.Errorf("tc qdisc show dev wtburst: %v: %q, want noqueue alone", err, qdisc)
	}
	var txqlen int
	ns.Do(func() error {
		l, err := netlink.LinkByName("wtburst")
		if err == nil {
			txqlen = l.Attrs().TxQLen
		}
		return err
	})
	if txqlen != 8192 {
		t.Errorf("txqueuelen %d, want 8192 for a 4 MiB ring", txqlen)
	}
	const senders, perSender = 16, 400
	socks := make([]*net.UDPConn, senders)
	for i := range socks {
		socks[i] = udpSocket(t, ns, "10.212.0.1:0", "10.212.0.2:7300")
	}
	received, dropped := burst(t, ns, s, socks, perSender)
	st := a.Stats()
	t.Logf("%d of %d datagrams received; device TX dropped %d; stats %+v", received, senders*perSender, dropped, st)
	if received != senders*perSender {
		t.Errorf("received %d of %d datagrams", received, senders*perSender)
	}
	if dropped != 0 || st.ReceiveDropsKernel != 0 {
		t.Errorf("the kernel dropped %d packets of a burst that fits the ring (Stats: %d)", dropped, st.ReceiveDropsKernel)
	}

	if err := ns.Do(func() error {
		l, err := netlink.LinkByName("wtburst")
		if err == nil {
			err = netlink.LinkSetTxQLen(l, 4)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	received, dropped = burst(t, ns, s, socks, perSender)
	st = a.Stats()
	t.Logf("queue of 4: %d received, device TX dropped %d; Stats.ReceiveDropsKernel %d", received, dropped, st.ReceiveDropsKernel)
	// The qdisc in front of the queue, as short, drops some too (not on the device).
	if dropped == 0 || st.ReceiveDropsKernel != dropped || received+int(dropped) > senders*perSender {
		t.Errorf("queue of 4: %d received, %d dropped by the kernel, Stats.ReceiveDropsKernel %d; want drops, all counted",
			received, dropped, st.ReceiveDropsKernel)
	}
}

// burst sends perSender numbered datagrams from each socket at once, then receives
// from s until all have arrived or none has for a second; it returns how many arrived
// and how many the device's TX dropped counter grew by.
func burst(t *testing.T, ns *netns.NS, s *wintun.Session, socks []*net.UDPConn, perSender int) (received int, dropped uint64) {
	t.Helper()
	before := linkStats(t, ns, "wtburst")
	var wg sync.WaitGroup
	start := make(chan struct{})
	for i, c := range socks {
		wg.Add(1)
		go func() {
			defer wg.Done()
			payload := make([]byte, 32)
			<-start
			for seq := 0; seq < perSender; seq++ {
				binary.BigEndian.PutUint32(payload, uint32(i*perSender+seq))
				if _, err := c.Write(payload); err != nil {
					t.Errorf("sender %d: %v", i, err)
					return
				}
			}
		}()
	}
	close(start)
	wg.Wait()
	total := len(socks) * perSender
	seen := make(map[uint32]bool)
	for len(seen) < total {
		p, err := s.ReceivePacket()
		if err == wintun.ErrNoMoreItems {
			select {
			case <-s.ReadWaitEvent():
				continue
			case <-time.After(time.Second):
			}
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		if seq, ok := udpSeq(p, 7300); ok {
			seen[seq] = true
		}
		s.ReleaseReceivePacket(p)
	}
	return len(seen), linkStats(t, ns, "wtburst").TxDropped - before.TxDropped
}
