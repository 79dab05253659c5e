package wintun_test

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"os"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"
	"unsafe"

	"go.wintun.dev/wintun"
	"go.wintun.dev/wintun/internal/netns"
	"go.wintun.dev/wintun/internal/packet"

	"golang.org/x/sys/unix"
)

// Kernel-verified tests of the offload paths: the kernel's own checksum counters
// decide whether what a session splits or coalesces is what the kernel would have
// accepted.

// counters returns the kernel's protocol counters of ns from /proc/thread-self/net/file
// (snmp, netstat or snmp6), named "Group:Name" (snmp, netstat) or "Name" (snmp6).
func counters(t *testing.T, ns *netns.NS, file string) map[string]int64 {
	t.Helper()
	m, err := readCounters(ns, file)
	if err != nil {
		t.Fatal(err)
	}
	return m
}

// readCounters is counters for any goroutine.
func readCounters(ns *netns.NS, file string) (map[string]int64, error) {
	var b []byte
	if err := ns.Do(func() (err error) {
		// thread-self: /proc/self/net would show the namespace of the main thread.
		b, err = os.ReadFile("/proc/thread-self/net/" + file)
		return err
	}); err != nil {
		return nil, err
	}
	m := make(map[string]int64)
	sc := bufio.NewScanner(bytes.NewReader(b))
	var names []string
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && !strings.HasSuffix(f[0], ":") { // snmp6: name value
			m[f[0]], _ = strconv.ParseInt(f[1], 10, 64)
			continue
		}
		if len(f) < 2 {
			continue
		}
		if names == nil || names[0] != f[0] { // a header line, then its values
			names = f
			continue
		}
		for i := 1; i < len(f) && i < len(names); i++ {
			m[strings.TrimSuffix(f[0], ":")+":"+names[i]], _ = strconv.ParseInt(f[i], 10, 64)
		}
		names = nil
	}
	return m, nil
}

// offloadPair sets up two namespaces, each with an adapter (10.234.0.1, fd00:234::1
// in A; 10.234.0.2, fd00:234::2 and fd00:234::3 in B) and a plain session, which
// splits the kernel's super-packets, and forwards between the sessions. It counts the
// packets forwarded from A with IPv4 options or IPv6 extension headers.
func offloadPair(t *testing.T, extPackets *atomic.Int64) (nsA, nsB *netns.NS, a *wintun.Adapter) {
	t.Helper()
	nsA, nsB = netns.ForTest(t), netns.ForTest(t)
	// B is a segment routing endpoint for fd00:234::3.
	if err := nsB.Do(func() error {
		for _, f := range []string{"all", "default"} {
			if err := os.WriteFile("/proc/sys/net/ipv6/conf/"+f+"/seg6_enabled", []byte("1"), 0); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	a, sa := nsAdapter(t, nsA, "wtoff", 0x400000, "10.234.0.1/24", "fd00:234::1/64")
	_, sb := nsAdapter(t, nsB, "wtoff", 0x400000, "10.234.0.2/24", "fd00:234::2/64", "fd00:234::3/64")
	var wg sync.WaitGroup
	wg.Add(2)
	count := func(p []byte) {
		switch {
		case len(p) >= 20 && p[0]>>4 == 4 && p[0]&0xf > 5,
			len(p) >= 40 && p[0]>>4 == 6 && p[6] != unix.IPPROTO_TCP && p[6] != unix.IPPROTO_UDP && p[6] != unix.IPPROTO_ICMPV6:
			extPackets.Add(1)
		}
	}
	go func() { defer wg.Done(); forwardBatch(sa, sb, count) }()
	go func() { defer wg.Done(); forwardBatch(sb, sa, func([]byte) {}) }()
	t.Cleanup(func() { sa.End(); sb.End(); wg.Wait() })
	return nsA, nsB, a
}

// padNOption is an IPv6 destination options header of 8 bytes holding one PadN
// option (Linux drops more than 7 bytes of padding), for IPV6_DSTOPTS; the kernel
// fills in its next header field.
var padNOption = []byte{0, 0, 1, 4, 0, 0, 0, 0}

// segmentRouting is a segment routing header (type 4) for IPV6_RTHDR: to
// fd00:234::2 by way of fd00:234::3.
func segmentRouting() []byte {
	h := []byte{0, 4, 4, 1, 1, 0, 0, 0}
	for _, a := range []string{"fd00:234::2", "fd00:234::3"} {
		h = append(h, net.ParseIP(a).To16()...)
	}
	return h
}

// TestExtensionHeadersThroughForwarder sends TCP and segmented UDP with IPv6
// extension headers and IPv4 options, set on the sending socket, through two
// sessions: the kernel hands the session super-packets whose L4 header follows the
// extra headers, and whose pseudo-header may name another destination than the IP
// header (a routing header); every segment the session makes must carry a checksum
// the receiving kernel accepts.
func TestExtensionHeadersThroughForwarder(t *testing.T) {
	var extPackets atomic.Int64
	nsA, nsB, a := offloadPair(t, &extPackets)
	// check fails the subtest unless the packets carried the extra headers and, if
	// supers, the kernel handed over super-packets.
	check := func(t *testing.T, supers bool, run func()) {
		n, exts := a.Stats().ReceivedSuperPackets, extPackets.Load()
		run()
		if supers && a.Stats().ReceivedSuperPackets == n && os.Getenv("WINTUN_OFFLOAD") != "0" {
			t.Error("the kernel handed over no super-packet: offloads are not in use")
		}
		if extPackets.Load() == exts {
			t.Error("no packet with IPv4 options or IPv6 extension headers crossed the forwarder")
		}
	}
	for _, c := range []struct {
		name, addr string
		level, opt int
		value      []byte
	}{
		{"IPv6 destination options", "[fd00:234::2]:7401", unix.IPPROTO_IPV6, unix.IPV6_DSTOPTS, padNOption},
		{"IPv6 segment routing", "[fd00:234::2]:7402", unix.IPPROTO_IPV6, unix.IPV6_RTHDR, segmentRouting()},
		{"IPv4 options", "10.234.0.2:7403", unix.IPPROTO_IP, unix.IP_OPTIONS, []byte{1, 1, 1, 0}},
	} {
		t.Run(c.name, func(t *testing.T) {
			check(t, true, func() {
				setopt := func(fd int) error { return unix.SetsockoptString(fd, c.level, c.opt, string(c.value)) }
				transferWith(t, nsA, nsB, c.addr, 4<<20, setopt)
			})
		})
	}
	// Linux (6.18) segments UDP with extension headers itself rather than hand the
	// device a super-packet; what reaches the session are datagrams with a partial
	// checksum to complete after the extension headers.
	t.Run("IPv6 destination options, UDP segmentation", func(t *testing.T) {
		check(t, false, func() { udpSegmented(t, nsA, nsB) })
	})
	t.Logf("stats of A: %+v", a.Stats())
}

// udpSegmented sends one buffer of 20 datagrams from A with UDP_SEGMENT and
// IPV6_DSTOPTS, then one plain datagram, and checks that B's socket gets all 21.
func udpSegmented(t *testing.T, nsA, nsB *netns.NS) {
	const count, size = 20, 1000
	rc := udpSocket(t, nsB, "[fd00:234::2]:7404", "")
	sc := udpSocket(t, nsA, "[fd00:234::1]:7405", "[fd00:234::2]:7404")
	raw, err := sc.SyscallConn()
	if err != nil {
		t.Fatal(err)
	}
	var serr error
	if err := raw.Control(func(fd uintptr) {
		serr = unix.SetsockoptString(int(fd), unix.IPPROTO_IPV6, unix.IPV6_DSTOPTS, string(padNOption))
	}); err != nil || serr != nil {
		t.Fatal(err, serr)
	}
	before := counters(t, nsB, "snmp6")
	buf := make([]byte, count*size)
	for i := range buf {
		buf[i] = byte(i / size)
	}
	oob := udpSegment(size)
	if _, _, err := sc.WriteMsgUDP(buf, oob, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := sc.Write([]byte("last")); err != nil {
		t.Fatal(err)
	}
	got := make([]byte, 2*size)
	delivered := 0
	for {
		rc.SetReadDeadline(time.Now().Add(10 * time.Second))
		n, err := rc.Read(got)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", delivered, err)
		}
		if string(got[:n]) == "last" {
			break
		}
		if n != size || !bytes.Equal(got[:n], buf[int(got[0])*size:][:size]) {
			t.Errorf("a datagram of %d bytes that was not sent", n)
		}
		delivered++
	}
	after := counters(t, nsB, "snmp6")
	if delivered != count || after["Udp6InCsumErrors"] != before["Udp6InCsumErrors"] {
		t.Errorf("%d of %d segmented datagrams delivered, %d UDP checksum errors", delivered, count,
			after["Udp6InCsumErrors"]-before["Udp6InCsumErrors"])
	}
}

// transferWith sends size bytes over TCP from client to a server listening on addr in
// server, with setopt applied to the client's socket before it connects, and fails t
// unless they arrive intact (netns.TransferTCP). A checksum error counted by the
// server's kernel ends the transfer at once: a segment with a bad checksum is dropped
// and resent forever, which would stall the transfer until its deadline.
func transferWith(t *testing.T, client, server *netns.NS, addr string, size int64, setopt func(fd int) error) {
	t.Helper()
	base := int64(-1)
	netns.TransferTCPWith(t, client, server, addr, size, netns.TransferOptions{
		ClientSocket: setopt,
		Watch: func() error {
			m, err := readCounters(server, "snmp")
			if err != nil {
				return nil
			}
			if base < 0 {
				base = m["Tcp:InCsumErrors"]
			}
			if n := m["Tcp:InCsumErrors"] - base; n > 0 {
				return fmt.Errorf("the receiving kernel counted %d TCP checksum errors", n)
			}
			return nil
		},
	})
}

// udpSegment is the control message that makes one send of a UDP socket a run of
// datagrams of size bytes (UDP_SEGMENT).
func udpSegment(size uint16) []byte {
	b := make([]byte, unix.CmsgSpace(2))
	h := (*unix.Cmsghdr)(unsafe.Pointer(&b[0]))
	h.Level, h.Type = unix.SOL_UDP, unix.UDP_SEGMENT
	h.SetLen(unix.CmsgLen(2))
	binary.NativeEndian.PutUint16(b[unix.CmsgLen(0):], size)
	return b
}

// corruptCase is a bundle of packets of one flow, written at once, some of them
// corrupt, and what the kernel must make of them with or without coalescing.
type corruptCase struct {
	name      string
	v6, tcp   bool
	change    func(i int, p []byte) // alters packet i after its checksums are set
	delivered int                   // UDP datagrams the socket gets
	counter   string                // a kernel counter, and how much it must grow
	grows     int64
	coalesces bool // a valid run: with coalescing on, it is written as a super-packet
}

// TestCorruptPacketsCoalescingOnAndOff writes bundles of packets of one flow, some
// with corrupt checksums, into a session with coalescing on (as the environment
// allows) and off: the kernel must drop the same packets, count the same checksum
// errors and deliver the same datagrams either way, as it does with packets written
// one by one. A super-packet's partial checksum is trusted by the kernel, so a corrupt
// packet that joined one would be delivered.
func TestCorruptPacketsCoalescingOnAndOff(t *testing.T) {
	const n = 40
	badL4 := func(_ int, p []byte) { p[len(p)-1] ^= 0x40 }
	badIPv4 := func(_ int, p []byte) { p[10] ^= 0x01 }
	cases := []corruptCase{
		{name: "UDP, valid", delivered: n, coalesces: true},
		{name: "UDP, bad checksums", change: badL4, counter: "Udp:InCsumErrors", grows: n},
		{name: "UDP over IPv6, bad checksums", v6: true, change: badL4, counter: "Udp6InCsumErrors", grows: n},
		{name: "UDP, bad IPv4 header checksums", change: badIPv4, counter: "IpExt:InCsumErrors", grows: n},
		{name: "UDP, every other checksum bad", change: func(i int, p []byte) {
			if i%2 == 1 {
				badL4(i, p)
			}
		}, delivered: n / 2, counter: "Udp:InCsumErrors", grows: n / 2},
		{name: "UDP, the first checksum bad", change: func(i int, p []byte) {
			if i == 0 {
				badL4(i, p)
			}
		}, delivered: n - 1, counter: "Udp:InCsumErrors", grows: 1},
		{name: "UDP, no checksum (zero)", change: func(_ int, p []byte) { p[26], p[27] = 0, 0 }, delivered: n},
		{name: "TCP, valid", tcp: true, counter: "Tcp:InCsumErrors", coalesces: true},
		{name: "TCP, bad checksums", tcp: true, change: badL4, counter: "Tcp:InCsumErrors", grows: n},
		{name: "TCP over IPv6, bad checksums", tcp: true, v6: true, change: badL4, counter: "Tcp:InCsumErrors", grows: n},
		{name: "TCP, bad IPv4 header checksums", tcp: true, change: badIPv4, counter: "IpExt:InCsumErrors", grows: n},
	}
	for _, mode := range []struct {
		name string
		opts []wintun.SessionOption
	}{
		{"coalescing", nil},
		{"no coalescing", []wintun.SessionOption{wintun.WithCoalescing(false, false)}},
	} {
		t.Run(mode.name, func(t *testing.T) {
			ns := netns.ForTest(t)
			a, s := nsAdapterWith(t, ns, "wtbad", 0x100000, mode.opts, "10.235.0.1/24", "fd00:235::1/64")
			rc4 := udpSocket(t, ns, "10.235.0.1:7501", "")
			rc6 := udpSocket(t, ns, "[fd00:235::1]:7501", "")
			for k, c := range cases {
				t.Run(c.name, func(t *testing.T) {
					rc := rc4
					if c.v6 {
						rc = rc6
					}
					supers := a.Stats().SentSuperPackets
					before := allCounters(t, ns)
					writeBundle(t, s, c, k, n)
					delivered := 0
					if c.tcp {
						sentinelTCP(t, s, k)
					} else {
						delivered = sentinelUDP(t, s, rc, k, c.v6)
					}
					var grown int64
					if c.counter != "" {
						// Every packet is counted by the time the sentinel is answered: the
						// kernel processes a tun write before the write returns. The
						// counters are read again for a while all the same, to fail on a
						// count that is wrong rather than late.
						for deadline := time.Now().Add(time.Second); ; time.Sleep(10 * time.Millisecond) {
							grown = allCounters(t, ns)[c.counter] - before[c.counter]
							if grown >= c.grows || time.Now().After(deadline) {
								break
							}
						}
					}
					if delivered != c.delivered {
						t.Errorf("%d of %d datagrams delivered, want %d", delivered, n, c.delivered)
					}
					if grown != c.grows {
						t.Errorf("%s grew by %d, want %d", c.counter, grown, c.grows)
					}
					env := "WINTUN_COALESCE_UDP"
					if c.tcp {
						env = "WINTUN_COALESCE_TCP"
					}
					coalescing := mode.opts == nil && os.Getenv("WINTUN_OFFLOAD") != "0" && os.Getenv(env) != "0"
					if c.coalesces && coalescing && a.Stats().SentSuperPackets == supers {
						t.Errorf("a valid run was not coalesced: the test would not exercise coalescing; stats %+v", a.Stats())
					}
				})
			}
		})
	}
}

// allCounters returns the counters of snmp, snmp6 and netstat in ns.
func allCounters(t *testing.T, ns *netns.NS) map[string]int64 {
	t.Helper()
	m := counters(t, ns, "snmp")
	for _, f := range []string{"snmp6", "netstat"} {
		for k, v := range counters(t, ns, f) {
			m[k] = v
		}
	}
	return m
}

// writeBundle commits the n packets of case c (number k) in one bundle: UDP datagrams
// of 1000 bytes to port 7501, or TCP segments of 1000 bytes to the closed port 7502,
// from the session's side of the adapter (10.235.0.2, fd00:235::2), with DF set and
// IPv4 IDs counting up, as a sender's kernel makes them.
func writeBundle(t *testing.T, s *wintun.Session, c corruptCase, k, n int) {
	t.Helper()
	src, dst := netip.MustParseAddr("10.235.0.2"), netip.MustParseAddr("10.235.0.1")
	if c.v6 {
		src, dst = netip.MustParseAddr("fd00:235::2"), netip.MustParseAddr("fd00:235::1")
	}
	pkts := make([][]byte, n)
	sizes := make([]int, n)
	for i := range pkts {
		data := make([]byte, 1000)
		data[0], data[1] = byte(k), byte(i)
		var p []byte
		if c.tcp {
			h := make([]byte, 20, 20+len(data))
			binary.BigEndian.PutUint16(h[0:], 40000+uint16(k))
			binary.BigEndian.PutUint16(h[2:], 7502)
			binary.BigEndian.PutUint32(h[4:], uint32(1+i*len(data)))
			binary.BigEndian.PutUint32(h[8:], 1)
			h[12], h[13] = 5<<4, 0x10 // ACK
			binary.BigEndian.PutUint16(h[14:], 1000)
			p = packet.IP(src, dst, packet.ProtoTCP, append(h, data...))
		} else {
			u := make([]byte, 8, 8+len(data))
			binary.BigEndian.PutUint16(u[0:], 40000+uint16(k))
			binary.BigEndian.PutUint16(u[2:], 7501)
			binary.BigEndian.PutUint16(u[4:], uint16(8+len(data)))
			p = packet.IP(src, dst, packet.ProtoUDP, append(u, data...))
		}
		if src.Is4() {
			p[6] = 0x40 // DF
			binary.BigEndian.PutUint16(p[4:], uint16(100+i))
			binary.BigEndian.PutUint16(p[10:], 0)
			binary.BigEndian.PutUint16(p[10:], packet.Checksum(p[:20], 0))
		}
		if c.change != nil {
			c.change(i, p)
		}
		pkts[i], sizes[i] = p, len(p)
	}
	out := make([][]byte, n)
	if m, err := s.AllocateSendPackets(sizes, out); m != n || err != nil {
		t.Fatalf("AllocateSendPackets = %d, %v", m, err)
	}
	for i := range out {
		copy(out[i], pkts[i])
	}
	s.SendPackets(out)
}

// sentinelUDP sends a valid datagram of another flow after the bundle of case k and
// returns how many of the bundle's datagrams rc receives before it.
func sentinelUDP(t *testing.T, s *wintun.Session, rc *net.UDPConn, k int, v6 bool) int {
	t.Helper()
	src, dst := netip.MustParseAddr("10.235.0.2"), netip.MustParseAddr("10.235.0.1")
	if v6 {
		src, dst = netip.MustParseAddr("fd00:235::2"), netip.MustParseAddr("fd00:235::1")
	}
	u := []byte{0, 0, 0x1d, 0x4d, 0, 16, 0, 0, 's', 'e', 'n', 't', 'i', 'n', 'e', 'l'} // to port 7501
	binary.BigEndian.PutUint16(u[0:], 41000+uint16(k))
	send(t, s, packet.IP(src, dst, packet.ProtoUDP, u))
	delivered := 0
	buf := make([]byte, 2000)
	for {
		rc.SetReadDeadline(time.Now().Add(10 * time.Second))
		m, err := rc.Read(buf)
		if err != nil {
			t.Fatalf("after %d datagrams: %v", delivered, err)
		}
		if string(buf[:m]) == "sentinel" {
			return delivered
		}
		if m == 1000 && buf[0] == byte(k) {
			delivered++
		}
	}
}

// sentinelTCP sends a SYN to the closed port 7502 after the bundle of case k and waits
// for the kernel's RST: the kernel has then processed every packet written before.
func sentinelTCP(t *testing.T, s *wintun.Session, k int) {
	t.Helper()
	src, dst := netip.MustParseAddr("10.235.0.2"), netip.MustParseAddr("10.235.0.1")
	port := 41000 + uint16(k)
	h := make([]byte, 20)
	binary.BigEndian.PutUint16(h[0:], port)
	binary.BigEndian.PutUint16(h[2:], 7502)
	binary.BigEndian.PutUint32(h[4:], 77)
	h[12], h[13] = 5<<4, 0x02 // SYN
	binary.BigEndian.PutUint16(h[14:], 1000)
	send(t, s, packet.IP(src, dst, packet.ProtoTCP, h))
	receive(t, s, 10*time.Second, func(in packet.Info) bool {
		return in.Proto == packet.ProtoTCP && len(in.Payload) >= 20 &&
			binary.BigEndian.Uint16(in.Payload[2:]) == port && in.Payload[13]&0x04 != 0
	})
}
