package wintun_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/binary"
	"io"
	"math/rand/v2"
	"net"
	"net/netip"
	"sync"
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
	const total = 64 << 20
	var ln net.Listener
	if err := nsB.Do(func() (err error) { ln, err = net.Listen("tcp", "10.201.0.2:5001"); return }); err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	type result struct {
		n   int64
		sum []byte
		err error
	}
	got := make(chan result, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			got <- result{err: err}
			return
		}
		defer c.Close()
		c.SetDeadline(time.Now().Add(60 * time.Second))
		h := sha256.New()
		n, err := io.Copy(h, c)
		got <- result{n, h.Sum(nil), err}
	}()
	var c net.Conn
	if err := nsA.Do(func() (err error) { c, err = net.DialTimeout("tcp", "10.201.0.2:5001", 5*time.Second); return }); err != nil {
		t.Fatal(err)
	}
	c.SetDeadline(time.Now().Add(60 * time.Second))
	h := sha256.New()
	rnd := rand.New(rand.NewPCG(1, 2))
	buf := make([]byte, 1<<16)
	for sent := 0; sent < total; sent += len(buf) {
		for i := 0; i < len(buf); i += 8 {
			binary.LittleEndian.PutUint64(buf[i:], rnd.Uint64())
		}
		h.Write(buf)
		if _, err := c.Write(buf); err != nil {
			t.Fatalf("write after %d bytes: %v", sent, err)
		}
	}
	c.Close()
	r := <-got
	if r.err != nil || r.n != total || !bytes.Equal(r.sum, h.Sum(nil)) {
		t.Fatalf("server got %d bytes (want %d), checksum match %v, err %v", r.n, total, bytes.Equal(r.sum, h.Sum(nil)), r.err)
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
