package wgtun_test

import (
	"bytes"
	"errors"
	"io"
	"net/netip"
	"testing"
	"time"

	"github.com/vishvananda/netlink"
	"golang.zx2c4.com/wireguard/tun"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"
	"go.wintun.dev/wintun/wgtun"
)

// newDevice creates adapter name with 10.201.0.1/24 in ns and a Device on it; both
// are closed when the test ends.
func newDevice(t *testing.T, ns *netns.NS, name string, opts ...wgtun.Option) (*wintun.Adapter, *wgtun.Device) {
	t.Helper()
	var a *wintun.Adapter
	var d *wgtun.Device
	err := ns.Do(func() error {
		var err error
		if a, err = wintun.CreateAdapter(name, "Test", nil); err != nil {
			return err
		}
		if err := a.AddAddress(netip.MustParsePrefix("10.201.0.1/24")); err != nil {
			return err
		}
		d, err = wgtun.New(a, opts...)
		return err
	})
	t.Cleanup(func() {
		if d != nil {
			d.Close()
		}
		if a != nil {
			ns.Do(func() error { return a.Close() })
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	return a, d
}

// nextEvent returns the next event of d, failing the test after 5 s.
func nextEvent(t *testing.T, d *wgtun.Device) tun.Event {
	t.Helper()
	select {
	case e, ok := <-d.Events():
		if !ok {
			t.Fatal("Events closed")
		}
		return e
	case <-time.After(5 * time.Second):
		t.Fatal("no event within 5 s")
	}
	return 0
}

func TestEvents(t *testing.T) {
	checkGoroutines(t)
	ns := netns.ForTest(t)
	a, d := newDevice(t, ns, "wgev")
	if e := nextEvent(t, d); e != tun.EventUp {
		t.Fatalf("first event %v, want EventUp", e)
	}
	if name, _ := d.Name(); name != "wgev" || d.BatchSize() != wgtun.DefaultBatchSize || d.File() != nil {
		t.Errorf("Name %q, BatchSize %d, File %v", name, d.BatchSize(), d.File())
	}
	if err := ns.Do(func() error { return a.SetMTU(1300) }); err != nil {
		t.Fatal(err)
	}
	if e := nextEvent(t, d); e != tun.EventMTUUpdate {
		t.Fatalf("event %v after SetMTU, want EventMTUUpdate", e)
	}
	if mtu, err := d.MTU(); mtu != 1300 || err != nil {
		t.Errorf("MTU() = %d, %v; want 1300", mtu, err)
	}
	setUp := func(up bool) {
		err := ns.Do(func() error {
			l, err := netlink.LinkByName("wgev")
			if err != nil {
				return err
			}
			if up {
				return netlink.LinkSetUp(l)
			}
			return netlink.LinkSetDown(l)
		})
		if err != nil {
			t.Fatal(err)
		}
	}
	setUp(false)
	if e := nextEvent(t, d); e != tun.EventDown {
		t.Fatalf("event %v after link down, want EventDown", e)
	}
	setUp(true)
	if e := nextEvent(t, d); e != tun.EventUp {
		t.Fatalf("event %v after link up, want EventUp", e)
	}
	d.Close()
	for range d.Events() { // must be closed, or this never ends
	}
}

// TestReadWriteBatches writes echo requests in one batch at an offset and reads the
// kernel's replies in batches at an offset; bad packets are dropped and counted.
func TestReadWriteBatches(t *testing.T) {
	checkGoroutines(t)
	ns := netns.ForTest(t)
	_, d := newDevice(t, ns, "wgrw", wgtun.WithBatchSize(8))
	const offset = 16
	local, remote := netip.MustParseAddr("10.201.0.2"), netip.MustParseAddr("10.201.0.1")
	var bufs [][]byte
	for seq := uint16(1); seq <= 5; seq++ {
		p := packet.Echo(local, remote, packet.EchoRequest4, 0x4242, seq, bytes.Repeat([]byte{byte(seq)}, 100))
		bufs = append(bufs, append(make([]byte, offset), p...))
	}
	bufs = append(bufs, make([]byte, offset)) // nothing after the offset
	n, err := d.Write(bufs, offset)
	if n != 5 || !errors.Is(err, wgtun.ErrDropped) {
		t.Fatalf("Write = %d, %v; want 5 and ErrDropped", n, err)
	}
	if st := d.Stats(); st.WriteDropsInvalid != 1 {
		t.Errorf("WriteDropsInvalid = %d, want 1", st.WriteDropsInvalid)
	}

	rbufs := make([][]byte, 8)
	for i := range rbufs {
		rbufs[i] = make([]byte, 2000)
	}
	sizes := make([]int, 8)
	seen := map[uint16]bool{}
	deadline := time.Now().Add(10 * time.Second)
	for len(seen) < 5 && time.Now().Before(deadline) {
		n, err := d.Read(rbufs, sizes, offset)
		if err != nil {
			t.Fatal(err)
		}
		for i := 0; i < n; i++ {
			in, err := packet.Parse(rbufs[i][offset : offset+sizes[i]])
			if err == nil && in.IsEchoReply() && in.ID == 0x4242 && in.Dst == local {
				seen[in.Seq] = true
			}
		}
	}
	if len(seen) != 5 {
		t.Fatalf("replies %v, want seq 1 to 5", seen)
	}

	// A reply larger than the caller's buffer is dropped and counted; the next fits.
	big := packet.Echo(local, remote, packet.EchoRequest4, 0x4343, 1, make([]byte, 1000))
	small := packet.Echo(local, remote, packet.EchoRequest4, 0x4343, 2, nil)
	if n, err := d.Write([][]byte{big, small}, 0); n != 2 || err != nil {
		t.Fatalf("Write = %d, %v", n, err)
	}
	tiny := [][]byte{make([]byte, offset+200)}
	for {
		n, err := d.Read(tiny, sizes, offset)
		if err != nil {
			t.Fatal(err)
		}
		in, err := packet.Parse(tiny[0][offset : offset+sizes[0]])
		if n == 1 && err == nil && in.IsEchoReply() && in.ID == 0x4343 {
			if in.Seq != 2 {
				t.Fatalf("got reply %d, want only the small one", in.Seq)
			}
			break
		}
	}
	if st := d.Stats(); st.ReadDropsTooBig < 1 {
		t.Errorf("ReadDropsTooBig = %d, want at least 1", st.ReadDropsTooBig)
	}
}

// TestAdapterDeleted checks that deleting the link ends a pending Read with an io.EOF
// error (so that wireguard-go closes its device) and reports EventDown.
func TestAdapterDeleted(t *testing.T) {
	checkGoroutines(t)
	ns := netns.ForTest(t)
	_, d := newDevice(t, ns, "wgdel")
	if e := nextEvent(t, d); e != tun.EventUp {
		t.Fatalf("first event %v, want EventUp", e)
	}
	errc := make(chan error, 1)
	go func() {
		bufs, sizes := [][]byte{make([]byte, 2000)}, make([]int, 1)
		for {
			if _, err := d.Read(bufs, sizes, 0); err != nil {
				errc <- err
				return
			}
		}
	}()
	if err := ns.Do(func() error {
		l, err := netlink.LinkByName("wgdel")
		if err == nil {
			err = netlink.LinkDel(l)
		}
		return err
	}); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-errc:
		if !errors.Is(err, io.EOF) {
			t.Errorf("Read after the link was deleted: %v, want an io.EOF error", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Read still blocked 10 s after the link was deleted")
	}
	if e := nextEvent(t, d); e != tun.EventDown {
		t.Errorf("event %v after deletion, want EventDown", e)
	}
}

// TestWithSession checks that a Device on the caller's session leaves it running
// after Close.
func TestWithSession(t *testing.T) {
	checkGoroutines(t)
	ns := netns.ForTest(t)
	var a *wintun.Adapter
	var s *wintun.Session
	var d *wgtun.Device
	err := ns.Do(func() error {
		var err error
		if a, err = wintun.CreateAdapter("wgsess", "Test", nil); err != nil {
			return err
		}
		if s, err = a.StartSession(wintun.RingCapacityMin); err != nil {
			return err
		}
		d, err = wgtun.New(a, wgtun.WithSession(s))
		return err
	})
	t.Cleanup(func() {
		if a != nil {
			ns.Do(func() error { return a.Close() }) // ends s too
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	if d.Session() != s || d.Adapter() != a {
		t.Error("Session or Adapter is not the one given")
	}
	d.Close()
	if _, err := s.ReceivePacket(); err != nil && err != wintun.ErrNoMoreItems {
		t.Errorf("session after Device.Close: %v, want it still running", err)
	}
}

// TestWriteDropsAtOnce writes bundles far larger than a 128 KiB send ring with a
// write wait of zero (the default on Windows): what the ring cannot take is dropped
// and counted, and Write reports the whole bundle as written, without an error that
// wireguard-go would log for every bundle.
func TestWriteDropsAtOnce(t *testing.T) {
	ns := netns.ForTest(t)
	_, d := newDevice(t, ns, "wgfull", wgtun.WithRingCapacity(wintun.RingCapacityMin), wgtun.WithWriteWait(0))
	local, remote := netip.MustParseAddr("10.201.0.2"), netip.MustParseAddr("10.201.0.1")
	bufs := make([][]byte, 1000)
	for i := range bufs {
		bufs[i] = packet.IP(local, remote, packet.ProtoUDP, append([]byte{0x9c, 0x40, 0, 9, 0x05, 0x78, 0, 0}, make([]byte, 1392)...))
	}
	for try := 0; try < 20 && d.Stats().WriteDropsRingFull == 0; try++ {
		if n, err := d.Write(bufs, 0); n != len(bufs) || err != nil {
			t.Fatalf("Write = %d, %v; want %d and no error", n, err, len(bufs))
		}
	}
	if d.Stats().WriteDropsRingFull == 0 {
		t.Fatal("the send ring never filled: nothing tested")
	}
	t.Logf("stats %+v", d.Stats())
}

// TestWriteWaitsForRoom writes bundles far larger than a 128 KiB send ring with a
// write wait long enough for the kernel side to drain it: Write fills the ring, waits
// for the room the kernel side makes as it writes the packets out, and sends every
// packet without dropping any.
func TestWriteWaitsForRoom(t *testing.T) {
	ns := netns.ForTest(t)
	_, d := newDevice(t, ns, "wgwait", wgtun.WithRingCapacity(wintun.RingCapacityMin), wgtun.WithWriteWait(time.Minute))
	local, remote := netip.MustParseAddr("10.201.0.2"), netip.MustParseAddr("10.201.0.1")
	bufs := make([][]byte, 1000)
	for i := range bufs {
		bufs[i] = packet.IP(local, remote, packet.ProtoUDP, append([]byte{0x9c, 0x40, 0, 9, 0x05, 0x78, 0, 0}, make([]byte, 1392)...))
	}
	for range 3 {
		if n, err := d.Write(bufs, 0); n != len(bufs) || err != nil {
			t.Fatalf("Write = %d, %v; want %d and no error", n, err, len(bufs))
		}
	}
	if s := d.Stats(); s.WriteDropsRingFull != 0 || s.WriteDropsInvalid != 0 {
		t.Errorf("stats %+v, want no drops", s)
	}
}
