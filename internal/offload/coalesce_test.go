package offload

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"
)

// flowPackets returns count packets of one flow, as a sender's kernel makes them: DF
// set and IPv4 IDs counting up from 100; TCP segments (with a timestamp option) of
// size bytes of payload and consecutive sequence numbers, or UDP datagrams of size
// bytes.
func flowPackets(v6 bool, proto byte, count, size int) [][]byte {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if v6 {
		src, dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	}
	var pkts [][]byte
	for i := 0; i < count; i++ {
		data := make([]byte, size)
		for j := range data {
			data[j] = byte(i*31 + j)
		}
		var l4 []byte
		if proto == protoTCP {
			l4 = make([]byte, 32, 32+size)
			binary.BigEndian.PutUint16(l4[0:], 40000)
			binary.BigEndian.PutUint16(l4[2:], 443)
			binary.BigEndian.PutUint32(l4[4:], 7000+uint32(i*size))
			binary.BigEndian.PutUint32(l4[8:], 12345)
			l4[12] = 8 << 4
			l4[13] = tcpACK
			binary.BigEndian.PutUint16(l4[14:], 501)
			copy(l4[20:], []byte{1, 1, 8, 10, 0, 0, 0, 9, 0, 0, 0, 3}) // NOP NOP timestamp
			l4 = append(l4, data...)
		} else {
			l4 = l4Header(protoUDP, 0, 0, data)
		}
		p, off := ipPacket(src, dst, 100+uint16(i), proto, nil, l4)
		withChecksum(p, off, proto, src, dst)
		pkts = append(pkts, p)
	}
	return pkts
}

// refresh recomputes the IPv4 header checksum and the L4 checksum of p (no options or
// extension headers), after a test changed its headers.
func refresh(p []byte) {
	src, dst := ipAddrs(p)
	l4, proto := 40, p[6]
	if p[0]>>4 == 4 {
		l4, proto = 20, p[9]
		p[10], p[11] = 0, 0
		binary.BigEndian.PutUint16(p[10:], Checksum(p[:20], 0))
	}
	withChecksum(p, l4, proto, src, dst)
}

// ipAddrs returns the source and destination addresses of an IPv4 or IPv6 packet.
func ipAddrs(p []byte) (src, dst netip.Addr) {
	if p[0]>>4 == 4 {
		return netip.AddrFrom4([4]byte(p[12:16])), netip.AddrFrom4([4]byte(p[16:20]))
	}
	return netip.AddrFrom16([16]byte(p[8:24])), netip.AddrFrom16([16]byte(p[24:40]))
}

// ipHdr returns the length of p's IP header (20 or 40: these tests use none other).
func ipHdr(p []byte) int {
	if p[0]>>4 == 4 {
		return 20
	}
	return 40
}

// coalesceRule is a row of TestCoalesceRules: change alters a run of 4 packets of one
// flow (each of which would join without it); then, unless corrupt, their checksums
// are made right again, so that only the change decides. want is the run's length.
type coalesceRule struct {
	name    string
	v4, v6  bool // the families the row applies to
	corrupt bool
	change  func(pkts [][]byte)
	want    int
}

func each(f func(p []byte)) func([][]byte) {
	return func(pkts [][]byte) {
		for _, p := range pkts {
			f(p)
		}
	}
}

func at(i int, f func(p []byte)) func([][]byte) { return func(pkts [][]byte) { f(pkts[i]) } }

// Changes to packets.
var (
	badL4     = func(p []byte) { p[len(p)-1] ^= 0x40 } // a payload bit flipped in transit
	badIPv4   = func(p []byte) { p[10] ^= 0x01 }
	setID     = func(id uint16) func(p []byte) { return func(p []byte) { binary.BigEndian.PutUint16(p[4:], id) } }
	clearDF   = func(p []byte) { p[6] &^= 0x40 }
	setIPByte = func(i int, v byte) func(p []byte) { return func(p []byte) { p[i] = v } }
	setL4Byte = func(i int, v byte) func(p []byte) { return func(p []byte) { p[ipHdr(p)+i] = v } }
	// Over IPv4 a zero UDP checksum stands for none: valid, but GRO merges no such
	// datagram. Over IPv6 it is invalid.
	noUDPChecksum = func(p []byte) { p[ipHdr(p)+6], p[ipHdr(p)+7] = 0, 0 }
)

// commonRules apply to TCP and UDP.
var commonRules = []coalesceRule{
	{name: "a run", v4: true, v6: true, change: func([][]byte) {}, want: 4},
	{name: "bad L4 checksum on the first", v4: true, v6: true, corrupt: true, change: at(0, badL4), want: 1},
	{name: "bad L4 checksum on the second", v4: true, v6: true, corrupt: true, change: at(1, badL4), want: 1},
	{name: "bad L4 checksum on the third", v4: true, v6: true, corrupt: true, change: at(2, badL4), want: 2},
	{name: "bad L4 checksums on all", v4: true, v6: true, corrupt: true, change: each(badL4), want: 1},
	{name: "bad IPv4 header checksum on the first", v4: true, corrupt: true, change: at(0, badIPv4), want: 1},
	{name: "bad IPv4 header checksum on the second", v4: true, corrupt: true, change: at(1, badIPv4), want: 1},
	{name: "bad IPv4 header checksum on the last", v4: true, corrupt: true, change: at(3, badIPv4), want: 3},
	{name: "IPv4 reserved bit on the first", v4: true, change: at(0, setIPByte(6, 0xc0)), want: 1},
	{name: "IPv4 reserved bit on the second", v4: true, change: at(1, setIPByte(6, 0xc0)), want: 1},
	{name: "IPv4 reserved bit on all", v4: true, change: each(setIPByte(6, 0xc0)), want: 1},
	{name: "IPv4 more fragments", v4: true, change: at(1, setIPByte(6, 0x60)), want: 1},
	{name: "IPv4 fragment offset", v4: true, change: at(1, setIPByte(7, 0x01)), want: 1},
	{name: "IPv4 TOS differs", v4: true, change: at(1, setIPByte(1, 0x10)), want: 1},
	{name: "IPv4 ECN CE on the second", v4: true, change: at(1, setIPByte(1, 0x03)), want: 1},
	{name: "IPv4 TTL differs", v4: true, change: at(2, setIPByte(8, 63)), want: 2},
	{name: "IPv4 DF differs", v4: true, change: at(1, clearDF), want: 1},
	{name: "IPv4 DF clear on all, IDs counting up", v4: true, change: each(clearDF), want: 4},
	{name: "IPv4 DF set, one fixed ID", v4: true, change: each(setID(9)), want: 4},
	{name: "IPv4 DF clear, one fixed ID", v4: true, change: func(pkts [][]byte) { each(clearDF)(pkts); each(setID(9))(pkts) }, want: 1},
	{name: "IPv4 DF set, fixed ID then counting", v4: true, change: at(1, setID(100)), want: 2},
	{name: "IPv4 ID skips one", v4: true, change: at(2, setID(103)), want: 2},
	{name: "IPv4 ID counting down", v4: true, change: func(pkts [][]byte) {
		for i, p := range pkts {
			setID(uint16(100 - i))(p)
		}
	}, want: 1},
	{name: "IPv4 ID wraps", v4: true, change: func(pkts [][]byte) {
		for i, p := range pkts {
			setID(uint16(0xfffe + i))(p)
		}
	}, want: 4},
	{name: "IPv4 header with options", v4: true, change: at(1, setIPByte(0, 0x46)), want: 1},
	{name: "IPv4 total length short of the packet", v4: true, change: at(1, func(p []byte) { p[3]-- }), want: 1},
	{name: "another IPv4 source", v4: true, change: at(1, setIPByte(15, 9)), want: 1},
	{name: "another IPv4 destination", v4: true, change: at(1, setIPByte(19, 9)), want: 1},
	{name: "IPv6 flow label differs", v6: true, change: at(1, setIPByte(3, 1)), want: 1},
	{name: "IPv6 flow label on all", v6: true, change: each(setIPByte(3, 7)), want: 4},
	{name: "IPv6 traffic class differs", v6: true, change: at(1, setIPByte(1, 0x10)), want: 1},
	{name: "IPv6 ECN CE on the second", v6: true, change: at(1, setIPByte(1, 0x30)), want: 1},
	{name: "IPv6 hop limit differs", v6: true, change: at(3, setIPByte(7, 1)), want: 3},
	{name: "another IPv6 source", v6: true, change: at(1, setIPByte(23, 9)), want: 1},
	{name: "another IPv6 destination", v6: true, change: at(1, setIPByte(39, 9)), want: 1},
	{name: "IPv6 payload length short of the packet", v6: true, change: at(1, func(p []byte) { p[5]-- }), want: 1},
	{name: "another source port", v4: true, v6: true, change: at(1, setL4Byte(1, 1)), want: 1},
	{name: "another destination port", v4: true, v6: true, change: at(2, setL4Byte(3, 1)), want: 2},
}

// tcpRules apply to TCP only.
var tcpRules = []coalesceRule{
	{name: "AccECN AE bit on the second", v4: true, v6: true, change: at(1, setL4Byte(12, 8<<4|1)), want: 1},
	{name: "AccECN AE bit on the first", v4: true, v6: true, change: at(0, setL4Byte(12, 8<<4|1)), want: 1},
	{name: "AccECN AE bit on all", v4: true, v6: true, change: each(setL4Byte(12, 8<<4|1)), want: 4},
	{name: "reserved TCP bit on the third", v4: true, v6: true, change: at(2, setL4Byte(12, 8<<4|4)), want: 2},
	{name: "URG", v4: true, v6: true, change: at(1, setL4Byte(13, tcpACK|tcpURG)), want: 1},
	{name: "ECE", v4: true, v6: true, change: at(1, setL4Byte(13, tcpACK|tcpECE)), want: 1},
	{name: "CWR on the first", v4: true, v6: true, change: at(0, setL4Byte(13, tcpACK|tcpCWR)), want: 1},
	{name: "CWR on the second", v4: true, v6: true, change: at(1, setL4Byte(13, tcpACK|tcpCWR)), want: 1},
	{name: "FIN on the last", v4: true, v6: true, change: at(3, setL4Byte(13, tcpACK|tcpFIN)), want: 3},
	{name: "SYN", v4: true, v6: true, change: at(1, setL4Byte(13, tcpACK|tcpSYN)), want: 1},
	{name: "RST", v4: true, v6: true, change: at(1, setL4Byte(13, tcpACK|tcpRST)), want: 1},
	{name: "no ACK", v4: true, v6: true, change: each(setL4Byte(13, 0)), want: 1},
	{name: "PSH on the first", v4: true, v6: true, change: at(0, setL4Byte(13, tcpACK|tcpPSH)), want: 1},
	{name: "PSH on the second", v4: true, v6: true, change: at(1, setL4Byte(13, tcpACK|tcpPSH)), want: 2},
	{name: "PSH on the last", v4: true, v6: true, change: at(3, setL4Byte(13, tcpACK|tcpPSH)), want: 4},
	{name: "another acknowledgement", v4: true, v6: true, change: at(1, setL4Byte(11, 1)), want: 1},
	{name: "another window", v4: true, v6: true, change: at(1, setL4Byte(15, 1)), want: 1},
	{name: "an urgent pointer", v4: true, v6: true, change: at(1, setL4Byte(19, 1)), want: 1},
	{name: "another timestamp", v4: true, v6: true, change: at(2, setL4Byte(27, 1)), want: 2},
	{name: "gap in sequence", v4: true, v6: true, change: at(1, setL4Byte(7, 1)), want: 1},
	{name: "retransmission", v4: true, v6: true, change: func(pkts [][]byte) { copy(pkts[1][ipHdr(pkts[1]):], pkts[0][ipHdr(pkts[0]):]) }, want: 1},
}

// udpRules apply to UDP only.
var udpRules = []coalesceRule{
	{name: "no checksum (zero) on the first", v4: true, corrupt: true, change: at(0, noUDPChecksum), want: 1},
	{name: "no checksum (zero) on the second", v4: true, corrupt: true, change: at(1, noUDPChecksum), want: 1},
	{name: "zero checksum on all", v4: true, v6: true, corrupt: true, change: each(noUDPChecksum), want: 1},
	{name: "UDP length short of the packet", v4: true, v6: true, change: at(1, func(p []byte) { p[ipHdr(p)+5]-- }), want: 1},
}

// TestCoalesceRules checks each rule by which TCPRun and UDPRun end a run or refuse to
// start one: a packet whose checksums do not verify never joins a run, and packets
// join only where Linux's GRO would merge them.
func TestCoalesceRules(t *testing.T) {
	for _, proto := range []byte{protoTCP, protoUDP} {
		rules := append(append([]coalesceRule(nil), commonRules...), tcpRules...)
		run := TCPRun
		if proto == protoUDP {
			rules = append(append([]coalesceRule(nil), commonRules...), udpRules...)
			run = UDPRun
		}
		for _, r := range rules {
			for _, v6 := range []bool{false, true} {
				if v6 && !r.v6 || !v6 && !r.v4 {
					continue
				}
				pkts := flowPackets(v6, proto, 4, 1000)
				r.change(pkts)
				if !r.corrupt {
					for _, p := range pkts {
						refresh(p)
					}
				}
				name := fmt.Sprintf("%d/v6=%v/%s", proto, v6, r.name)
				orig := cloneAll(pkts)
				got := run(pkts)
				if got != r.want {
					t.Errorf("%s: run of %d, want %d", name, got, r.want)
				}
				if !equalAll(pkts, orig) {
					t.Errorf("%s: the run's packets changed", name)
				}
				if got > 1 {
					roundTrip(t, name, pkts[:got], proto)
				}
			}
		}
	}
}

// TestCoalesceSizes checks the rules on sizes: every packet of a run but the last has
// the first's payload size; the last may be shorter.
func TestCoalesceSizes(t *testing.T) {
	for _, proto := range []byte{protoTCP, protoUDP} {
		run := TCPRun
		if proto == protoUDP {
			run = UDPRun
		}
		for _, v6 := range []bool{false, true} {
			full := flowPackets(v6, proto, 4, 1000)
			short := flowPackets(v6, proto, 4, 600)
			long := flowPackets(v6, proto, 4, 1200)
			for _, c := range []struct {
				name string
				pkts [][]byte
				want int
			}{
				{"equal sizes", full, 4},
				{"a short last", [][]byte{full[0], full[1], full[2], short[3]}, 4},
				{"a short second ends the run", [][]byte{full[0], short[1], full[2], full[3]}, 2},
				{"a larger second", [][]byte{short[0], long[1]}, 1},
				{"one packet", full[:1], 1},
			} {
				if proto == protoTCP {
					fixSeq(c.pkts)
				}
				if got := run(c.pkts); got != c.want {
					t.Errorf("%d/v6=%v/%s: run of %d, want %d", proto, v6, c.name, got, c.want)
				}
			}
		}
	}
}

// TestCoalesceHeaderChains checks that packets with IPv4 options or IPv6 extension
// headers are written alone.
func TestCoalesceHeaderChains(t *testing.T) {
	for _, proto := range []byte{protoTCP, protoUDP} {
		for _, c := range []struct {
			src, dst string
			exts     []ext
		}{
			{"10.0.0.1", "10.0.0.2", []ext{nops(4)}},
			{"fd00::1", "fd00::2", []ext{dstOpts(8)}},
			{"fd00::1", "fd00::2", []ext{hopByHop(8)}},
		} {
			src, dst := netip.MustParseAddr(c.src), netip.MustParseAddr(c.dst)
			var pkts [][]byte
			for i := 0; i < 3; i++ {
				p, off := ipPacket(src, dst, uint16(i), proto, c.exts, l4Header(proto, uint32(1000*i), tcpACK, make([]byte, 1000)))
				withChecksum(p, off, proto, src, dst)
				pkts = append(pkts, p)
			}
			if n := TCPRun(pkts); n != 1 {
				t.Errorf("%d %v %v: TCPRun = %d", proto, src, c.exts[0].typ, n)
			}
			if n := UDPRun(pkts); n != 1 {
				t.Errorf("%d %v %v: UDPRun = %d", proto, src, c.exts[0].typ, n)
			}
		}
	}
}

// fixSeq numbers the TCP segments of pkts consecutively from the first's.
func fixSeq(pkts [][]byte) {
	l4 := ipHdr(pkts[0])
	seq := binary.BigEndian.Uint32(pkts[0][l4+4:])
	for _, p := range pkts {
		binary.BigEndian.PutUint32(p[l4+4:], seq)
		seq += uint32(len(p) - l4 - int(p[l4+12]>>4)*4)
		refresh(p)
	}
}

func cloneAll(pkts [][]byte) [][]byte {
	var c [][]byte
	for _, p := range pkts {
		c = append(c, bytes.Clone(p))
	}
	return c
}

func equalAll(a, b [][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if !bytes.Equal(a[i], b[i]) {
			return false
		}
	}
	return true
}

// roundTrip coalesces run, splits the super-packet again and checks that the packets
// come back as they were. The one difference allowed is the IPv4 ID of a run with a
// fixed ID, which segmentation numbers up from the first, as the kernel's does. The
// super-packet is built from CoalesceTCPHeaders or CoalesceUDPHeaders and the
// payloads, as a writev caller builds it, and must equal the one CoalesceTCP or
// CoalesceUDP copies together.
func roundTrip(t *testing.T, name string, run [][]byte, proto byte) {
	t.Helper()
	hdr, buf := make([]byte, HeaderLen), make([]byte, MaxCoalesced)
	var n int
	if proto == protoTCP {
		n = CoalesceTCP(run, hdr, buf)
	} else {
		n = CoalesceUDP(run, hdr, buf)
	}
	super, vnet := coalesceHeaders(t, run, proto)
	if !bytes.Equal(super, buf[:n]) || !bytes.Equal(vnet, hdr) {
		t.Fatalf("%s: headers and payloads differ from the copied super-packet:\n% x\n% x", name, super[:min(len(super), 100)], buf[:min(n, 100)])
	}
	var back [][]byte
	err := Split(super, ParseHeader(vnet), func(n int) []byte { b := make([]byte, n); back = append(back, b); return b })
	if err != nil || len(back) != len(run) {
		t.Errorf("%s: split into %d of %d (%v)", name, len(back), len(run), err)
		return
	}
	fixed := run[0][0]>>4 == 4 && binary.BigEndian.Uint16(run[0][4:]) == binary.BigEndian.Uint16(run[1][4:])
	for i := range back {
		if fixed {
			copy(back[i][4:6], run[i][4:6])
			back[i][10], back[i][11] = 0, 0
			binary.BigEndian.PutUint16(back[i][10:], Checksum(back[i][:20], 0))
		}
		if !bytes.Equal(back[i], run[i]) {
			t.Errorf("%s: packet %d changed by coalescing and splitting:\n% x\n% x", name, i, back[i][:60], run[i][:60])
		}
	}
}
