package wintun_test

import (
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/netip"
	"os"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"

	"github.com/vishvananda/netlink"
	"golang.org/x/sys/unix"
)

func TestEchoThroughKernel(t *testing.T) {
	ns := netns.ForTest(t)
	_, s := nsAdapter(t, ns, "wtecho", wintun.RingCapacityMin, "10.200.0.1/24", "fd00:200::1/64")
	for _, c := range []struct{ local, remote string }{
		{"10.200.0.2", "10.200.0.1"},
		{"fd00:200::2", "fd00:200::1"},
	} {
		local, remote := netip.MustParseAddr(c.local), netip.MustParseAddr(c.remote)
		typ := uint8(packet.EchoRequest4)
		if local.Is6() {
			typ = packet.EchoRequest6
		}
		data := []byte("wintun echo " + c.remote)
		send(t, s, packet.Echo(local, remote, typ, 0x1234, 7, data))
		in := receive(t, s, 5*time.Second, func(in packet.Info) bool { return in.IsEchoReply() })
		if in.Src != remote || in.Dst != local || in.ID != 0x1234 || in.Seq != 7 || !bytes.Equal(in.Payload[8:], data) {
			t.Errorf("reply %v: want from %v to %v, id 0x1234 seq 7 data %q; got data %q", in, remote, local, data, in.Payload[8:])
		}
	}
}

// forward copies every packet from one session to the other until from ends. A full
// send ring is retried, not dropped, so that the tests can count losses exactly.
func forward(from, to *wintun.Session) {
	for {
		p, err := from.ReceivePacket()
		if err == wintun.ErrNoMoreItems {
			if _, ok := <-from.ReadWaitEvent(); !ok {
				return
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
			if err != nil {
				from.ReleaseReceivePacket(p)
				return
			}
			copy(q, p)
			to.SendPacket(q)
			break
		}
		from.ReleaseReceivePacket(p)
	}
}

// forwarderPair sets up two namespaces, each with an adapter whose system side is
// 10.201.0.1 (A) or 10.201.0.2 (B), and a forwarder between the two sessions.
func forwarderPair(t *testing.T, capacity uint32) (nsA, nsB *netns.NS, a, b *wintun.Adapter) {
	nsA, nsB = netns.ForTest(t), netns.ForTest(t)
	a, sa := nsAdapter(t, nsA, "wtfwd", capacity, "10.201.0.1/24", "fd00:201::1/64")
	b, sb := nsAdapter(t, nsB, "wtfwd", capacity, "10.201.0.2/24", "fd00:201::2/64")
	var wg sync.WaitGroup
	wg.Add(2)
	go func() { defer wg.Done(); forward(sa, sb) }()
	go func() { defer wg.Done(); forward(sb, sa) }()
	t.Cleanup(func() { sa.End(); sb.End(); wg.Wait() })
	return nsA, nsB, a, b
}

func TestForwarderTCP(t *testing.T) {
	nsA, nsB, a, b := forwarderPair(t, 0x400000)
	netns.TransferTCP(t, nsA, nsB, "10.201.0.2:5001", 64<<20)
	if a.Stats().ReceivedSuperPackets == 0 && os.Getenv("WINTUN_OFFLOAD") != "0" {
		t.Error("the kernel handed over no super-packet: offloads are not in use")
	}
	if b.Stats().SentSuperPackets == 0 && os.Getenv("WINTUN_OFFLOAD") != "0" && os.Getenv("WINTUN_COALESCE_TCP") != "0" {
		t.Error("no TCP segments were coalesced on the way into the kernel")
	}
	for _, ad := range []*wintun.Adapter{a, b} {
		st := ad.Stats()
		t.Logf("%s stats: %+v", ad.Name(), st)
		if st.ReceiveDropsRingFull != 0 || st.SendDiscardsInvalid != 0 || st.SendErrors != 0 || st.ReceiveErrors != 0 {
			t.Errorf("%s: drops or errors in a TCP transfer: %+v", ad.Name(), st)
		}
	}
}

func TestForwarderUDPNoLoss(t *testing.T) {
	const capacity = 0x400000
	nsA, nsB, a, b := forwarderPair(t, capacity)
	const count, size = 4000, 512 // 4000 records of 4+28+512 bytes: about half the ring
	for _, ns := range []*netns.NS{nsA, nsB} {
		ns.Do(func() error {
			l, err := netlink.LinkByName("wtfwd")
			if err == nil {
				err = netlink.LinkSetTxQLen(l, 10000)
			}
			return err
		})
	}
	var rc *net.UDPConn
	if err := nsB.Do(func() (err error) {
		rc, err = net.ListenUDP("udp", &net.UDPAddr{IP: net.IPv4(10, 201, 0, 2), Port: 5002})
		if err != nil {
			return err
		}
		raw, _ := rc.SyscallConn()
		raw.Control(func(fd uintptr) { err = unix.SetsockoptInt(int(fd), unix.SOL_SOCKET, unix.SO_RCVBUFFORCE, 32<<20) })
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	var sc *net.UDPConn
	if err := nsA.Do(func() (err error) {
		sc, err = net.DialUDP("udp", nil, &net.UDPAddr{IP: net.IPv4(10, 201, 0, 2), Port: 5002})
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer sc.Close()
	seen := make([]bool, count)
	received := make(chan int)
	go func() {
		n := 0
		buf := make([]byte, 2048)
		for n < count {
			rc.SetReadDeadline(time.Now().Add(3 * time.Second))
			m, err := rc.Read(buf)
			if err != nil {
				break
			}
			if seq := binary.BigEndian.Uint32(buf); m == size && seq < count && !seen[seq] {
				seen[seq] = true
				n++
			}
		}
		received <- n
	}()
	payload := make([]byte, size)
	for i := 0; i < count; i++ {
		binary.BigEndian.PutUint32(payload, uint32(i))
		if _, err := sc.Write(payload); err != nil {
			t.Fatalf("send %d: %v", i, err)
		}
	}
	if n := <-received; n != count {
		t.Errorf("received %d of %d datagrams; stats A %+v, B %+v", n, count, a.Stats(), b.Stats())
	}
	if st := a.Stats(); st.ReceiveDropsRingFull != 0 {
		t.Errorf("ring-full drops with a load below capacity: %+v", st)
	}
}

// waitEOF polls until every session call reports an io.EOF error, for at most limit.
func waitEOF(t *testing.T, s *wintun.Session, limit time.Duration) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for {
		_, rerr := s.ReceivePacket()
		_, aerr := s.AllocateSendPacket(100)
		if errors.Is(rerr, io.EOF) && errors.Is(aerr, io.EOF) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: ReceivePacket = %v, AllocateSendPacket = %v; want io.EOF errors", limit, rerr, aerr)
		}
		time.Sleep(5 * time.Millisecond)
	}
	select {
	case _, ok := <-s.ReadWaitEvent():
		if ok {
			// a stale token may come first; the channel must be closed behind it
			if _, ok = <-s.ReadWaitEvent(); ok {
				t.Fatal("ReadWaitEvent not closed")
			}
		}
	case <-time.After(time.Second):
		t.Fatal("ReadWaitEvent not closed")
	}
	s.ReleaseReceivePacket(make([]byte, 10)) // harmless after the end
	s.SendPacket(make([]byte, 10))
}

func TestAdapterDeletedUnderSession(t *testing.T) {
	checkGoroutines(t)
	ns := netns.ForTest(t)
	var a *wintun.Adapter
	var s *wintun.Session
	if err := ns.Do(func() (err error) {
		if a, err = wintun.CreateAdapter("wtdel", "Test", nil); err == nil {
			s, err = a.StartSession(wintun.RingCapacityMin)
		}
		return
	}); err != nil {
		t.Fatal(err)
	}
	defer ns.Do(func() error { return a.Close() })
	woken := make(chan bool)
	go func() { // a reader that drains what the kernel sends (IPv6 router solicitations)
		for range s.ReadWaitEvent() {
			for p, err := s.ReceivePacket(); err == nil; p, err = s.ReceivePacket() {
				s.ReleaseReceivePacket(p)
			}
		}
		woken <- false
	}()
	time.Sleep(20 * time.Millisecond)
	if err := ns.Do(func() error { return netlink.LinkDel(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Name: "wtdel"}}) }); err != nil {
		t.Fatal(err)
	}
	start := time.Now()
	select {
	case ok := <-woken:
		if ok {
			t.Error("the waiting reader got a token instead of a closed channel")
		}
	case <-time.After(time.Second):
		t.Fatal("a reader waiting on ReadWaitEvent was not woken within a second of the deletion")
	}
	waitEOF(t, s, time.Second-time.Since(start))
	_, err := s.ReceivePacket()
	if !errors.Is(err, wintun.ErrAdapterGone) {
		t.Errorf("cause = %v, want ErrAdapterGone", err)
	}
	s.End()
	s.End()
	if _, err := a.StartSession(wintun.RingCapacityMin); !errors.Is(err, io.EOF) {
		t.Errorf("StartSession on a deleted adapter: %v, want an io.EOF error", err)
	}
}

func TestEndWhileReaderWaits(t *testing.T) {
	checkGoroutines(t)
	ns := netns.ForTest(t)
	_, s := nsAdapter(t, ns, "wtend", wintun.RingCapacityMin)
	var wg sync.WaitGroup
	for i := 0; i < 8; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				p, err := s.ReceivePacket()
				if err == wintun.ErrNoMoreItems {
					<-s.ReadWaitEvent()
					continue
				}
				if err == nil { // the kernel's own IPv6 chatter
					s.ReleaseReceivePacket(p)
					continue
				}
				if !errors.Is(err, io.EOF) {
					t.Errorf("ReceivePacket after End: %v", err)
				}
				return
			}
		}()
	}
	time.Sleep(20 * time.Millisecond)
	s.End()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("readers still blocked a second after End")
	}
	waitEOF(t, s, 0)
	if _, err := s.ReceivePacket(); !errors.Is(err, wintun.ErrSessionEnded) {
		t.Errorf("cause = %v, want ErrSessionEnded", err)
	}
	s.End() // idempotent
}

func TestGarbageFromApplication(t *testing.T) {
	ns := netns.ForTest(t)
	a, s := nsAdapter(t, ns, "wtgarb", wintun.RingCapacityMin, "10.202.0.1/24")
	local, remote := netip.MustParseAddr("10.202.0.2"), netip.MustParseAddr("10.202.0.1")
	v4short := packet.Echo(local, remote, packet.EchoRequest4, 1, 1, nil)[:19]
	v6short := make([]byte, 39)
	v6short[0] = 0x60
	badVersion := packet.Echo(local, remote, packet.EchoRequest4, 1, 1, nil)
	badVersion[0] = 0x55
	garbage := [][]byte{{0}, {0xff}, v4short, v6short, badVersion, bytes.Repeat([]byte{0x70}, 100)}
	for i, g := range garbage {
		send(t, s, g)
		send(t, s, packet.Echo(local, remote, packet.EchoRequest4, 9, uint16(i), nil))
		in := receive(t, s, 5*time.Second, func(in packet.Info) bool { return in.IsEchoReply() })
		if in.Seq != uint16(i) {
			t.Errorf("reply seq %d, want %d", in.Seq, i)
		}
	}
	// The reply can overtake the writer's count of the request it answers.
	st := a.Stats()
	for deadline := time.Now().Add(time.Second); st.SentPackets < uint64(len(garbage)) && time.Now().Before(deadline); st = a.Stats() {
		time.Sleep(time.Millisecond)
	}
	if st.SendDiscardsInvalid != uint64(len(garbage)) || st.SentPackets != uint64(len(garbage)) {
		t.Errorf("stats %+v: want %d invalid discards and %d packets sent", st, len(garbage), len(garbage))
	}
	for _, size := range []int{0, -1, wintun.PacketSizeMax + 1} {
		if _, err := s.AllocateSendPacket(size); err == nil {
			t.Errorf("AllocateSendPacket(%d) accepted", size)
		}
	}
}

func TestSendRingFull(t *testing.T) {
	ns := netns.ForTest(t)
	_, s := nsAdapter(t, ns, "wtfull", wintun.RingCapacityMin)
	// Allocations that are never committed hold the ring: it fills, and says so at once.
	var held [][]byte
	for {
		p, err := s.AllocateSendPacket(1500)
		if err == wintun.ErrBufferOverflow {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		held = append(held, p)
	}
	if n := len(held); n != wintun.RingCapacityMin/1504 {
		t.Errorf("%d packets of 1500 bytes fit a %#x ring, want %d", n, wintun.RingCapacityMin, wintun.RingCapacityMin/1504)
	}
	v4 := packet.Echo(netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("10.9.9.8"), packet.EchoRequest4, 1, 1, make([]byte, 1472))
	for _, p := range held {
		copy(p, v4)
		s.SendPacket(p)
	}
	// The writer drains them to the kernel; then the ring has room again.
	deadline := time.Now().Add(5 * time.Second)
	for {
		p, err := s.AllocateSendPacket(60000)
		if err == nil {
			copy(p, v4)
			s.SendPacket(p)
			break
		}
		if err != wintun.ErrBufferOverflow || time.Now().After(deadline) {
			t.Fatalf("ring did not drain: %v", err)
		}
		time.Sleep(time.Millisecond)
	}
}

func TestCarrierFollowsSessions(t *testing.T) {
	ns := netns.ForTest(t)
	carrier := func() bool {
		var up bool
		if err := ns.Do(func() error {
			l, err := netlink.LinkByName("wtcar")
			if err == nil {
				up = l.Attrs().RawFlags&unix.IFF_LOWER_UP != 0
			}
			return err
		}); err != nil {
			t.Fatal(err)
		}
		return up
	}
	var a *wintun.Adapter
	if err := ns.Do(func() (err error) { a, err = wintun.CreateAdapter("wtcar", "Test", nil); return }); err != nil {
		t.Fatal(err)
	}
	defer ns.Do(func() error { return a.Close() })
	if carrier() {
		t.Error("carrier on with no session")
	}
	var s1, s2 *wintun.Session
	if err := ns.Do(func() (err error) {
		if s1, err = a.StartSession(wintun.RingCapacityMin); err == nil {
			s2, err = a.StartSession(wintun.RingCapacityMin)
		}
		return
	}); err != nil {
		t.Fatal(err)
	}
	if !carrier() {
		t.Error("carrier off with two sessions")
	}
	s1.End()
	if !carrier() {
		t.Error("carrier off with one session left")
	}
	s2.End()
	if carrier() {
		t.Error("carrier on after the last session ended")
	}

	// Another process's session: a queue attached to the device without this
	// library, as a second process would attach it. This process's last session
	// ending (End called from outside the adapter's namespace) leaves the carrier on.
	var s3 *wintun.Session
	var other int
	if err := ns.Do(func() (err error) {
		if s3, err = a.StartSession(wintun.RingCapacityMin); err != nil {
			return err
		}
		other, err = unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			return err
		}
		ifr, err := unix.NewIfreq("wtcar")
		if err != nil {
			return err
		}
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI | unix.IFF_MULTI_QUEUE | unix.IFF_VNET_HDR)
		return unix.IoctlIfreq(other, unix.TUNSETIFF, ifr)
	}); err != nil {
		t.Fatal(err)
	}
	defer unix.Close(other)
	s3.End()
	if !carrier() {
		t.Error("carrier off while another process's queue is attached")
	}
}

func TestOpenAdapterSecondHandle(t *testing.T) {
	ns := netns.ForTest(t)
	guid, _ := wintun.ParseGUID("0ba5eba1-1234-5678-9abc-def012345678")
	var a, b *wintun.Adapter
	var s *wintun.Session
	if err := ns.Do(func() (err error) {
		if a, err = wintun.CreateAdapter("wtopen", "Second Handle", &guid); err != nil {
			return err
		}
		if err = a.AddAddress(netip.MustParsePrefix("10.203.0.1/24")); err != nil {
			return err
		}
		if b, err = wintun.OpenAdapter("wtopen"); err != nil {
			return err
		}
		s, err = b.StartSession(wintun.RingCapacityMin)
		return err
	}); err != nil {
		t.Fatal(err)
	}
	if b.GUID() != guid || b.TunnelType() != "Second Handle" || b.Index() != a.Index() || b.LUID() != a.LUID() || b.Name() != "wtopen" {
		t.Errorf("opened handle: guid %v type %q index %d; created: guid %v index %d", b.GUID(), b.TunnelType(), b.Index(), guid, a.Index())
	}
	if want := uint64(53)<<48 | uint64(a.Index())<<24; a.LUID() != want {
		t.Errorf("LUID %#x, want %#x", a.LUID(), want)
	}
	local, remote := netip.MustParseAddr("10.203.0.2"), netip.MustParseAddr("10.203.0.1")
	send(t, s, packet.Echo(local, remote, packet.EchoRequest4, 3, 3, nil))
	receive(t, s, 5*time.Second, func(in packet.Info) bool { return in.IsEchoReply() })
	if err := ns.Do(func() error { return b.Close() }); err != nil {
		t.Fatal(err)
	}
	if _, err := s.ReceivePacket(); !errors.Is(err, io.EOF) {
		t.Errorf("session of a closed handle: %v", err)
	}
	exists := func() bool {
		var err error
		ns.Do(func() error { _, err = netlink.LinkByName("wtopen"); return nil })
		return err == nil
	}
	if !exists() {
		t.Fatal("closing the opened handle removed the adapter")
	}
	if err := ns.Do(func() error { return a.Close() }); err != nil {
		t.Fatal(err)
	}
	if exists() {
		t.Fatal("closing the creating handle left the adapter")
	}
}

func TestCreateAdapterErrors(t *testing.T) {
	ns := netns.ForTest(t)
	ns.Do(func() error {
		for _, name := range []string{"", "sixteen_bytes_16", "a/b", "a b", "x%d"} {
			if _, err := wintun.CreateAdapter(name, "Test", nil); err == nil || errors.Is(err, fs.ErrExist) {
				t.Errorf("CreateAdapter(%q) = %v, want a validation error", name, err)
			}
		}
		if _, err := wintun.CreateAdapter("wtok", "", nil); err == nil {
			t.Error("empty tunnel type accepted")
		}
		a, err := wintun.CreateAdapter("wtdup", "Test", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		for _, name := range []string{"wtdup", "lo"} {
			if _, err := wintun.CreateAdapter(name, "Test", nil); !errors.Is(err, fs.ErrExist) {
				t.Errorf("CreateAdapter(%q) over an existing interface = %v, want fs.ErrExist", name, err)
			}
		}
		for _, c := range []uint32{0, wintun.RingCapacityMin - 1, wintun.RingCapacityMin + 4, wintun.RingCapacityMax * 2} {
			if _, err := a.StartSession(c); err == nil {
				t.Errorf("StartSession(%#x) accepted", c)
			}
		}
		return nil
	})
}

func TestForeignInterfacesUntouched(t *testing.T) {
	ns := netns.ForTest(t)
	ns.Do(func() error {
		veth := &netlink.Veth{LinkAttrs: netlink.LinkAttrs{Name: "wtforeign"}, PeerName: "wtforeign1"}
		if err := netlink.LinkAdd(veth); err != nil {
			t.Error(err)
			return err
		}
		// A tun device made by someone else, even with a similar alias.
		fd, err := unix.Open("/dev/net/tun", unix.O_RDWR|unix.O_CLOEXEC, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer unix.Close(fd)
		ifr, _ := unix.NewIfreq("wtother")
		ifr.SetUint16(unix.IFF_TUN | unix.IFF_NO_PI)
		if err := unix.IoctlIfreq(fd, unix.TUNSETIFF, ifr); err != nil {
			t.Fatal(err)
		}
		unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 1)
		l, _ := netlink.LinkByName("wtother")
		netlink.LinkSetAlias(l, "wintun:not-a-guid:Test")
		for _, name := range []string{"wtforeign", "wtother", "lo"} {
			if _, err := wintun.OpenAdapter(name); err == nil {
				t.Errorf("OpenAdapter(%q) accepted an interface this library did not create", name)
			}
		}
		if _, err := wintun.OpenAdapter("wtmissing"); !errors.Is(err, fs.ErrNotExist) {
			t.Errorf("OpenAdapter of a missing adapter: %v, want fs.ErrNotExist", err)
		}
		// A persistent adapter of ours that nobody uses is removed; foreign ones stay.
		p, err := wintun.CreateAdapter("wtpersist", "Test", nil, wintun.WithPersist())
		if err != nil {
			t.Fatal(err)
		}
		p.Close()
		held, err := wintun.CreateAdapter("wtheld", "Test", nil)
		if err != nil {
			t.Fatal(err)
		}
		defer held.Close()
		err = wintun.Uninstall()
		if !errors.Is(err, syscall.EBUSY) || !strings.Contains(err.Error(), "wtheld") {
			t.Errorf("Uninstall = %v, want EBUSY naming wtheld", err)
		}
		for name, want := range map[string]bool{"wtforeign": true, "wtother": true, "lo": true, "wtpersist": false, "wtheld": true} {
			if _, err := netlink.LinkByName(name); (err == nil) != want {
				t.Errorf("after Uninstall, %s exists: %v, want %v", name, err == nil, want)
			}
		}
		unix.IoctlSetInt(fd, unix.TUNSETPERSIST, 0)
		return nil
	})
}

func TestAdapterConfiguration(t *testing.T) {
	ns := netns.ForTest(t)
	ns.Do(func() error {
		a, err := wintun.CreateAdapter("wtconf", "Test", nil, wintun.WithMTU(1280))
		if err != nil {
			t.Fatal(err)
		}
		defer a.Close()
		if mtu, err := a.MTU(); err != nil || mtu != 1280 {
			t.Errorf("MTU = %d, %v; want 1280", mtu, err)
		}
		if err := a.SetMTU(9000); err != nil {
			t.Fatal(err)
		}
		if mtu, _ := a.MTU(); mtu != 9000 {
			t.Errorf("MTU = %d after SetMTU(9000)", mtu)
		}
		if err := a.SetMTU(70000); err == nil {
			t.Error("SetMTU(70000) accepted")
		}
		want := []netip.Prefix{netip.MustParsePrefix("10.204.0.1/24"), netip.MustParsePrefix("fd00:204::1/64")}
		for _, p := range want {
			if err := a.AddAddress(p); err != nil {
				t.Fatal(err)
			}
		}
		if err := a.AddAddress(want[0]); !errors.Is(err, fs.ErrExist) {
			t.Errorf("adding an address twice: %v, want fs.ErrExist", err)
		}
		got, err := a.Addresses()
		if err != nil {
			t.Fatal(err)
		}
		for _, p := range want {
			if !slices.Contains(got, p) {
				t.Errorf("Addresses() = %v, missing %v", got, p)
			}
		}
		if err := a.RemoveAddress(want[0]); err != nil {
			t.Fatal(err)
		}
		if got, _ := a.Addresses(); slices.Contains(got, want[0]) {
			t.Errorf("%v still there after RemoveAddress", want[0])
		}
		route := netip.MustParsePrefix("10.99.0.0/16")
		if err := a.AddRoute(route); err != nil {
			t.Fatal(err)
		}
		routes, _ := netlink.RouteGet(net.IPv4(10, 99, 1, 1))
		if len(routes) != 1 || routes[0].LinkIndex != a.Index() {
			t.Errorf("route to 10.99.1.1 = %v, want via index %d", routes, a.Index())
		}
		if err := a.RemoveRoute(route); err != nil {
			t.Fatal(err)
		}
		// An IPv4-mapped prefix names IPv4 addresses: ::ffff:10.98.0.0/112 is
		// 10.98.0.0/16; one shorter than /96 is no IPv4 prefix and is refused.
		if err := a.AddAddress(netip.MustParsePrefix("::ffff:10.205.0.1/120")); err != nil {
			t.Errorf("AddAddress of a mapped prefix: %v", err)
		} else if got, _ := a.Addresses(); !slices.Contains(got, netip.MustParsePrefix("10.205.0.1/24")) {
			t.Errorf("Addresses() = %v after adding ::ffff:10.205.0.1/120, want 10.205.0.1/24", got)
		}
		if err := a.AddRoute(netip.MustParsePrefix("::ffff:10.98.0.0/112")); err != nil {
			t.Fatal(err)
		}
		for _, c := range []struct {
			ip  net.IP
			via bool
		}{{net.IPv4(10, 98, 1, 1), true}, {net.IPv4(10, 97, 1, 1), false}} {
			routes, _ := netlink.RouteGet(c.ip)
			if via := len(routes) == 1 && routes[0].LinkIndex == a.Index(); via != c.via {
				t.Errorf("after AddRoute(::ffff:10.98.0.0/112), route to %v = %v; through the adapter: %v, want %v", c.ip, routes, via, c.via)
			}
		}
		if err := a.RemoveRoute(netip.MustParsePrefix("::ffff:10.98.0.0/112")); err != nil {
			t.Error(err)
		}
		for _, p := range []string{"::ffff:10.0.0.0/80", "::ffff:10.0.0.1/64"} {
			if err := a.AddRoute(netip.MustParsePrefix(p)); err == nil {
				t.Errorf("AddRoute(%s) accepted", p)
			}
			if err := a.AddAddress(netip.MustParsePrefix(p)); err == nil {
				t.Errorf("AddAddress(%s) accepted", p)
			}
		}
		if v, err := wintun.RunningVersion(); err != nil || v>>16 == 0 {
			t.Errorf("RunningVersion = %#x, %v", v, err)
		}
		return nil
	})
}

// TestNoMissedWakeUp alternates idle periods and single packets: every request and its
// reply must cross the rings well within a second, in both directions.
func TestNoMissedWakeUp(t *testing.T) {
	ns := netns.ForTest(t)
	_, s := nsAdapter(t, ns, "wtwake", wintun.RingCapacityMin, "10.206.0.1/24")
	local, remote := netip.MustParseAddr("10.206.0.2"), netip.MustParseAddr("10.206.0.1")
	rounds := 500
	if testing.Short() {
		rounds = 100
	}
	var worst time.Duration
	for i := 0; i < rounds; i++ {
		time.Sleep(time.Duration(i%5) * 500 * time.Microsecond)
		start := time.Now()
		send(t, s, packet.Echo(local, remote, packet.EchoRequest4, 77, uint16(i), nil))
		receive(t, s, time.Second, func(in packet.Info) bool { return in.IsEchoReply() && in.Seq == uint16(i) })
		worst = max(worst, time.Since(start))
	}
	t.Logf("%d idle-then-one-packet rounds, slowest round trip %v", rounds, worst)
}

// TestConcurrentCallsAndEnd keeps every session call busy in 8 goroutines each while
// traffic flows, then ends the session: all of them must return, without a race.
func TestConcurrentCallsAndEnd(t *testing.T) {
	checkGoroutines(t)
	ns := netns.ForTest(t)
	_, s := nsAdapter(t, ns, "wtconc", 0x100000, "10.207.0.1/24")
	local, remote := netip.MustParseAddr("10.207.0.2"), netip.MustParseAddr("10.207.0.1")
	var wg sync.WaitGroup
	var replies atomic.Int64
	for g := 0; g < 8; g++ {
		wg.Add(3)
		go func() { // receivers
			defer wg.Done()
			for {
				p, err := s.ReceivePacket()
				switch {
				case err == nil:
					if in, _ := packet.Parse(p); in.IsEchoReply() {
						replies.Add(1)
					}
					s.ReleaseReceivePacket(p)
				case err == wintun.ErrNoMoreItems:
					if _, ok := <-s.ReadWaitEvent(); !ok {
						return
					}
				case errors.Is(err, io.EOF):
					return
				default:
					t.Errorf("ReceivePacket: %v", err)
					return
				}
			}
		}()
		go func(id int) { // senders
			defer wg.Done()
			for seq := 0; ; seq++ {
				req := packet.Echo(local, remote, packet.EchoRequest4, uint16(id), uint16(seq), make([]byte, seq%200))
				p, err := s.AllocateSendPacket(len(req))
				switch {
				case err == nil:
					copy(p, req)
					s.SendPacket(p)
				case err == wintun.ErrBufferOverflow:
					time.Sleep(100 * time.Microsecond)
				case errors.Is(err, io.EOF):
					return
				default:
					t.Errorf("AllocateSendPacket: %v", err)
					return
				}
			}
		}(g)
		go func() { // waiters only
			defer wg.Done()
			for range s.ReadWaitEvent() {
			}
		}()
	}
	time.Sleep(300 * time.Millisecond)
	s.End()
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-time.After(time.Second):
		t.Fatal("session calls still running a second after End")
	}
	if replies.Load() == 0 {
		t.Error("no echo reply crossed the session while the calls ran")
	}
	t.Logf("%d echo replies received by 8 concurrent readers", replies.Load())
}

// TestAdapterInAnotherNamespace moves an adapter with a running session into another
// namespace, uses it there, then destroys that namespace.
func TestAdapterInAnotherNamespace(t *testing.T) {
	checkGoroutines(t)
	home := netns.ForTest(t)
	inside, err := netns.New()
	if err != nil {
		t.Fatal(err)
	}
	defer inside.Close()
	var a *wintun.Adapter
	var s *wintun.Session
	if err := home.Do(func() (err error) {
		if a, err = wintun.CreateAdapter("wtmove", "Test", nil); err != nil {
			return err
		}
		if s, err = a.StartSession(wintun.RingCapacityMin); err != nil {
			return err
		}
		return netlink.LinkSetNsFd(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Index: a.Index()}}, inside.FD())
	}); err != nil {
		t.Fatal(err)
	}
	defer home.Do(func() error { return a.Close() })
	if err := inside.Do(func() error {
		b, err := wintun.OpenAdapter("wtmove")
		if err != nil {
			return err
		}
		if b.GUID() != a.GUID() {
			return fmt.Errorf("opened GUID %v, created %v", b.GUID(), a.GUID())
		}
		// A move takes the device down, as for any interface.
		if err := netlink.LinkSetUp(&netlink.Tuntap{LinkAttrs: netlink.LinkAttrs{Index: b.Index()}}); err != nil {
			return err
		}
		return b.AddAddress(netip.MustParsePrefix("10.208.0.1/24"))
	}); err != nil {
		t.Fatal(err)
	}
	local, remote := netip.MustParseAddr("10.208.0.2"), netip.MustParseAddr("10.208.0.1")
	send(t, s, packet.Echo(local, remote, packet.EchoRequest4, 5, 5, nil))
	receive(t, s, 5*time.Second, func(in packet.Info) bool { return in.IsEchoReply() })

	// The namespace goes away, and the adapter with it (the kernel destroys it
	// asynchronously).
	inside.Close()
	waitEOF(t, s, 5*time.Second)
	if _, err := s.ReceivePacket(); !errors.Is(err, wintun.ErrAdapterGone) {
		t.Errorf("cause %v, want ErrAdapterGone", err)
	}
}

type captured struct {
	mu   sync.Mutex
	dirs []wintun.Direction
	pkts [][]byte
}

func (c *captured) CapturePacket(dir wintun.Direction, ts time.Time, p []byte) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.dirs = append(c.dirs, dir)
	c.pkts = append(c.pkts, bytes.Clone(p))
}

func TestCapture(t *testing.T) {
	ns := netns.ForTest(t)
	var c captured
	var a *wintun.Adapter
	var s *wintun.Session
	if err := ns.Do(func() (err error) {
		if a, err = wintun.CreateAdapter("wtcap", "Test", nil); err != nil {
			return err
		}
		if err = a.AddAddress(netip.MustParsePrefix("10.209.0.1/24")); err != nil {
			return err
		}
		s, err = a.StartSession(wintun.RingCapacityMin, wintun.WithCapture(&c))
		return err
	}); err != nil {
		t.Fatal(err)
	}
	defer ns.Do(func() error { return a.Close() })
	req := packet.Echo(netip.MustParseAddr("10.209.0.2"), netip.MustParseAddr("10.209.0.1"), packet.EchoRequest4, 1, 1, nil)
	send(t, s, req)
	receive(t, s, 5*time.Second, func(in packet.Info) bool { return in.IsEchoReply() })
	s.End()
	c.mu.Lock()
	defer c.mu.Unlock()
	var sent, replies int
	for i, p := range c.pkts {
		in, _ := packet.Parse(p)
		if c.dirs[i] == wintun.Sent && bytes.Equal(p, req) {
			sent++
		}
		if c.dirs[i] == wintun.Received && in.IsEchoReply() {
			replies++
		}
	}
	if sent != 1 || replies != 1 {
		t.Errorf("captured %d sent requests and %d received replies, want 1 and 1", sent, replies)
	}
}

// forwardBatch is forward with the batch calls.
func forwardBatch(from, to *wintun.Session, inspect func([]byte)) {
	in, out := make([][]byte, 64), make([][]byte, 64)
	sizes := make([]int, 64)
	for {
		n, err := from.ReceivePackets(in)
		if err == wintun.ErrNoMoreItems {
			if _, ok := <-from.ReadWaitEvent(); !ok {
				return
			}
			continue
		}
		if err != nil {
			return
		}
		for i := 0; i < n; i++ {
			sizes[i] = len(in[i])
			inspect(in[i])
		}
		for done := 0; done < n; {
			m, err := to.AllocateSendPackets(sizes[done:n], out)
			for i := 0; i < m; i++ {
				copy(out[i], in[done+i])
			}
			to.SendPackets(out[:m])
			done += m
			if err == wintun.ErrBufferOverflow {
				time.Sleep(50 * time.Microsecond)
			} else if err != nil {
				return
			}
		}
		from.ReleaseReceivePackets(in[:n])
	}
}
