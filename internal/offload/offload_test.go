package offload

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"net/netip"
	"testing"

	"go.wintun.dev/wintun/internal/packet"
)

func tcpSegment(seq uint32, flags byte, data []byte) []byte {
	h := make([]byte, 20, 20+len(data))
	binary.BigEndian.PutUint16(h[0:], 40000)
	binary.BigEndian.PutUint16(h[2:], 443)
	binary.BigEndian.PutUint32(h[4:], seq)
	h[12] = 5 << 4
	h[13] = flags
	binary.BigEndian.PutUint16(h[14:], 65535)
	return append(h, data...)
}

// verify checks an emitted packet without options or extension headers.
func verify(t *testing.T, seg []byte) {
	t.Helper()
	in, err := packet.Parse(seg)
	if err != nil {
		t.Fatal(err)
	}
	if err := checkSegment(seg, len(seg)-len(in.Payload), in.Proto, in.Src, in.Dst); err != nil {
		t.Error(err)
	}
}

func TestSplitTCP(t *testing.T) {
	for _, addrs := range [][2]string{{"10.0.0.1", "10.0.0.2"}, {"fd00::1", "fd00::2"}} {
		src, dst := netip.MustParseAddr(addrs[0]), netip.MustParseAddr(addrs[1])
		data := make([]byte, 5000)
		for i := range data {
			data[i] = byte(i * 7)
		}
		super := packet.IP(src, dst, packet.ProtoTCP, tcpSegment(1000, 0x80|0x08|0x10|0x01, data)) // CWR|PSH|ACK|FIN
		l4 := 20
		if src.Is6() {
			l4 = 40
		}
		withPartial(super, l4, protoTCP, src, dst)
		typ := uint8(GSOTCPv4)
		if src.Is6() {
			typ = GSOTCPv6
		}
		h := Header{Flags: FlagNeedsCsum, GSOType: typ, GSOSize: 1400, CsumStart: uint16(l4), CsumOffset: 16}
		if n, max, err := Segments(super, h); n != 4 || max != l4+20+1400 || err != nil {
			t.Fatalf("Segments = %d, %d, %v", n, max, err)
		}
		var got []byte
		var segs [][]byte
		if err := Split(super, h, func(n int) []byte { b := make([]byte, n); segs = append(segs, b); return b }); err != nil {
			t.Fatal(err)
		}
		if len(segs) != 4 {
			t.Fatalf("%d segments, want 4", len(segs))
		}
		for i, seg := range segs {
			verify(t, seg)
			in, _ := packet.Parse(seg)
			tcp := in.Payload
			if seq := binary.BigEndian.Uint32(tcp[4:]); seq != 1000+uint32(i*1400) {
				t.Errorf("segment %d: seq %d", i, seq)
			}
			wantFlags := byte(0x10)
			if i == 0 {
				wantFlags |= 0x80
			}
			if i == 3 {
				wantFlags |= 0x08 | 0x01
			}
			if tcp[13] != wantFlags {
				t.Errorf("segment %d: flags %#x, want %#x", i, tcp[13], wantFlags)
			}
			if src.Is4() && binary.BigEndian.Uint16(seg[4:]) != uint16(i) {
				t.Errorf("segment %d: IPv4 ID %d", i, binary.BigEndian.Uint16(seg[4:]))
			}
			got = append(got, tcp[20:]...)
		}
		if !bytes.Equal(got, data) {
			t.Error("segments do not add up to the super-packet's payload")
		}
	}
}

func TestSplitUDP(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	data := bytes.Repeat([]byte("0123456789"), 300)
	udp := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(udp[0:], 5000)
	binary.BigEndian.PutUint16(udp[2:], 6000)
	super := packet.IP(src, dst, packet.ProtoUDP, append(udp, data...))
	withPartial(super, 20, protoUDP, src, dst)
	h := Header{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, GSOSize: 1000, CsumStart: 20, CsumOffset: 6}
	var segs [][]byte
	if err := Split(super, h, func(n int) []byte { b := make([]byte, n); segs = append(segs, b); return b }); err != nil {
		t.Fatal(err)
	}
	if len(segs) != 3 {
		t.Fatalf("%d segments, want 3", len(segs))
	}
	for _, seg := range segs {
		verify(t, seg)
		in, _ := packet.Parse(seg)
		if in.SrcPort != 5000 || in.DstPort != 6000 || int(binary.BigEndian.Uint16(in.Payload[4:])) != len(in.Payload) {
			t.Errorf("segment %v: UDP length %d for %d bytes", in, binary.BigEndian.Uint16(in.Payload[4:]), len(in.Payload))
		}
	}
}

func TestCompletePartialChecksum(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	full := packet.IP(src, dst, packet.ProtoTCP, tcpSegment(1, 0x10, []byte("hello, world")))
	partial := bytes.Clone(full)
	// As the kernel leaves it: the pseudo-header sum, not complemented.
	withPartial(partial, 20, protoTCP, src, dst)
	var out []byte
	err := Split(partial, Header{Flags: FlagNeedsCsum, CsumStart: 20, CsumOffset: 16}, func(n int) []byte { out = make([]byte, n); return out })
	if err != nil || !bytes.Equal(out, full) {
		t.Fatalf("completed checksum %x, want %x (%v)", out[36:38], full[36:38], err)
	}
}

func TestSplitRejectsMalformed(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	super := packet.IP(src, dst, packet.ProtoTCP, tcpSegment(1, 0x10, make([]byte, 3000)))
	emit := func(n int) []byte { return make([]byte, n) }
	for _, h := range []Header{
		{GSOType: GSOTCPv4, GSOSize: 0, CsumStart: 20},
		{GSOType: GSOTCPv4, GSOSize: 1000, CsumStart: 24},
		{GSOType: 9, GSOSize: 1000, CsumStart: 20},
		{Flags: FlagNeedsCsum, CsumStart: 5000, CsumOffset: 16},
		{Flags: FlagNeedsCsum, GSOType: GSOTCPv4, GSOSize: 1000, CsumStart: 20, CsumOffset: 6}, // not where TCP's checksum is
		{Flags: FlagNeedsCsum, GSOType: GSOUDPL4, GSOSize: 1000, CsumStart: 20, CsumOffset: 16},
	} {
		if err := Split(super, h, emit); err == nil {
			t.Errorf("Split accepted %+v", h)
		}
	}
	if err := Split(super[:30], Header{GSOType: GSOTCPv4, GSOSize: 1000, CsumStart: 20}, emit); err == nil {
		t.Error("Split accepted a truncated super-packet")
	}
}

func BenchmarkSplitTCP(b *testing.B) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	super := packet.IP(src, dst, packet.ProtoTCP, tcpSegment(1, 0x10, make([]byte, 64000)))
	h := Header{GSOType: GSOTCPv4, GSOSize: 1448, CsumStart: 20, CsumOffset: 16}
	buf := make([]byte, 2000)
	b.SetBytes(int64(len(super)))
	for b.Loop() {
		Split(super, h, func(n int) []byte { return buf[:n] })
	}
}

// TestCoalesceRoundTrip coalesces segments and splits the result again: the segments
// must come back as they were, checksums included.
func TestCoalesceRoundTrip(t *testing.T) {
	for _, addrs := range [][2]string{{"10.0.0.1", "10.0.0.2"}, {"fd00::1", "fd00::2"}} {
		src, dst := netip.MustParseAddr(addrs[0]), netip.MustParseAddr(addrs[1])
		var segs [][]byte
		for i := 0; i < 5; i++ {
			size, flags := 1000, byte(tcpACK)
			if i == 4 {
				size, flags = 300, tcpACK|tcpPSH
			}
			seg := packet.IP(src, dst, packet.ProtoTCP, tcpSegment(7+uint32(i*1000), flags, bytes.Repeat([]byte{byte(i)}, size)))
			if src.Is4() {
				binary.BigEndian.PutUint16(seg[4:], uint16(i))
				seg[10], seg[11] = 0, 0
				binary.BigEndian.PutUint16(seg[10:], Checksum(seg[:20], 0))
			}
			segs = append(segs, seg)
		}
		// A segment of another flow after them is not part of the run.
		other := packet.IP(src, dst, packet.ProtoTCP, tcpSegment(1, tcpACK, make([]byte, 10)))
		other[len(other)-len(make([]byte, 10))-20] ^= 1 // another source port
		if n := TCPRun(append(segs, other)); n != 5 {
			t.Fatalf("TCPRun = %d, want 5", n)
		}
		hdr := make([]byte, HeaderLen)
		buf := make([]byte, MaxCoalesced)
		n := CoalesceTCP(segs, hdr, buf)
		h := ParseHeader(hdr)
		if h.GSOSize != 1000 || h.Flags != FlagNeedsCsum {
			t.Fatalf("header %+v", h)
		}
		var back [][]byte
		if err := Split(buf[:n], h, func(n int) []byte { b := make([]byte, n); back = append(back, b); return b }); err != nil {
			t.Fatal(err)
		}
		if len(back) != 5 {
			t.Fatalf("split into %d, want 5", len(back))
		}
		for i := range back {
			if src.Is4() { // Split numbers IDs from the first, as the segments were
				binary.BigEndian.PutUint16(back[i][4:], uint16(i))
				back[i][10], back[i][11] = 0, 0
				binary.BigEndian.PutUint16(back[i][10:], Checksum(back[i][:20], 0))
			}
			if !bytes.Equal(back[i], segs[i]) {
				t.Errorf("segment %d changed by coalescing and splitting:\n% x\n% x", i, back[i][:60], segs[i][:60])
			}
		}
	}
}

func udpDatagram(src, dst netip.Addr, sport uint16, data []byte) []byte {
	u := make([]byte, 8, 8+len(data))
	binary.BigEndian.PutUint16(u[0:], sport)
	binary.BigEndian.PutUint16(u[2:], 9999)
	binary.BigEndian.PutUint16(u[4:], uint16(8+len(data)))
	return packet.IP(src, dst, packet.ProtoUDP, append(u, data...))
}

func TestCoalesceUDPRoundTrip(t *testing.T) {
	for _, addrs := range [][2]string{{"10.0.0.1", "10.0.0.2"}, {"fd00::1", "fd00::2"}} {
		src, dst := netip.MustParseAddr(addrs[0]), netip.MustParseAddr(addrs[1])
		var dgrams [][]byte
		for i := 0; i < 4; i++ {
			size := 1200
			if i == 3 {
				size = 77
			}
			d := udpDatagram(src, dst, 5000, bytes.Repeat([]byte{byte(i + 1)}, size))
			if src.Is4() { // IDs counting up, as coalescing requires
				binary.BigEndian.PutUint16(d[4:], uint16(7+i))
				binary.BigEndian.PutUint16(d[10:], 0)
				binary.BigEndian.PutUint16(d[10:], Checksum(d[:20], 0))
			}
			dgrams = append(dgrams, d)
		}
		other := udpDatagram(src, dst, 5001, make([]byte, 10))
		if n := UDPRun(append(dgrams, other)); n != 4 {
			t.Fatalf("UDPRun = %d, want 4", n)
		}
		hdr, buf := make([]byte, HeaderLen), make([]byte, MaxCoalesced)
		n := CoalesceUDP(dgrams, hdr, buf)
		var back [][]byte
		if err := Split(buf[:n], ParseHeader(hdr), func(n int) []byte { b := make([]byte, n); back = append(back, b); return b }); err != nil {
			t.Fatal(err)
		}
		if len(back) != 4 {
			t.Fatalf("split into %d, want 4", len(back))
		}
		for i := range back {
			if !bytes.Equal(back[i], dgrams[i]) {
				t.Errorf("datagram %d changed by coalescing and splitting", i)
			}
		}
	}
}

// benchSegments returns count TCP segments of one flow, as Linux's TCP sends them: DF
// set, IDs counting up, mss bytes of payload each.
func benchSegments(count, mss int) [][]byte {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	var segs [][]byte
	for i := 0; i < count; i++ {
		seg := packet.IP(src, dst, packet.ProtoTCP, tcpSegment(uint32(1+i*mss), tcpACK, make([]byte, mss)))
		seg[6] = 0x40
		binary.BigEndian.PutUint16(seg[4:], uint16(i))
		seg[10], seg[11] = 0, 0
		binary.BigEndian.PutUint16(seg[10:], Checksum(seg[:20], 0))
		segs = append(segs, seg)
	}
	return segs
}

func BenchmarkCoalesceTCP(b *testing.B) {
	segs := benchSegments(44, 1448)
	hdr, buf := make([]byte, HeaderLen), make([]byte, MaxCoalesced)
	b.SetBytes(int64(44 * len(segs[0])))
	for b.Loop() {
		if k := TCPRun(segs); k != len(segs) {
			b.Fatalf("TCPRun = %d", k)
		}
		CoalesceTCP(segs, hdr, buf)
	}
}

// TestSplitExtensionHeaders splits super-packets that carry IPv4 options or IPv6
// extension headers, as Linux hands them over when a socket sets IP_OPTIONS,
// IPV6_HOPOPTS, IPV6_DSTOPTS or IPV6_RTHDR: every segment must keep the headers and
// verify against the destination the sender checksummed for.
func TestSplitExtensionHeaders(t *testing.T) {
	src4, dst4 := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	hop4, far4 := netip.MustParseAddr("10.9.9.9"), netip.MustParseAddr("10.0.7.7")
	src6, dst6 := netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	hop6, far6 := netip.MustParseAddr("fd00:9::9"), netip.MustParseAddr("fd00:7::7")
	lsrr, lsrrFinal := sourceRoute(hop4, far4)
	rh0, rh0Final := routing(0, hop6, far6)
	rh2, rh2Final := routing(2, far6)
	srh, srhFinal := routing(4, far6, hop6)
	type row struct {
		name     string
		src, dst netip.Addr
		final    netip.Addr // the pseudo-header's destination
		exts     []ext
	}
	rows := []row{
		{"IPv4", src4, dst4, dst4, nil},
		{"IPv4 NOP options", src4, dst4, dst4, []ext{nops(8)}},
		{"IPv4 loose source route", src4, hop4, lsrrFinal, []ext{lsrr}},
		{"IPv4 40 bytes of options", src4, dst4, dst4, []ext{nops(40)}},
		{"IPv6", src6, dst6, dst6, nil},
		{"IPv6 hop-by-hop", src6, dst6, dst6, []ext{hopByHop(8)}},
		{"IPv6 destination options", src6, dst6, dst6, []ext{dstOpts(8)}},
		{"IPv6 long destination options", src6, dst6, dst6, []ext{dstOpts(64)}},
		{"IPv6 routing type 0", src6, hop6, rh0Final, []ext{rh0}},
		{"IPv6 routing type 2", src6, dst6, rh2Final, []ext{rh2}},
		{"IPv6 segment routing", src6, hop6, srhFinal, []ext{srh}},
		{"IPv6 hop-by-hop, routing, destination options", src6, hop6, rh0Final, []ext{hopByHop(16), rh0, dstOpts(8)}},
		{"IPv6 two destination options", src6, dst6, dst6, []ext{dstOpts(8), dstOpts(24)}},
	}
	data := make([]byte, 7000)
	for i := range data {
		data[i] = byte(i*13 + i>>8)
	}
	for _, r := range rows {
		for _, proto := range []byte{protoTCP, protoUDP} {
			for _, size := range []int{len(data), 1201, 1200} {
				name := fmt.Sprintf("%s/%d/%d", r.name, proto, size)
				super, h := superPacket(r.src, r.dst, r.final, r.exts, proto, data[:size], 1200)
				l4 := int(h.CsumStart)
				n, _, err := Segments(super, h)
				if err != nil {
					t.Errorf("%s: Segments: %v", name, err)
					continue
				}
				var segs [][]byte
				err = Split(bytes.Clone(super), h, func(n int) []byte { b := make([]byte, n); segs = append(segs, b); return b })
				if err != nil || len(segs) != n || n != (size+1199)/1200 {
					t.Errorf("%s: %d segments of %d (%v)", name, len(segs), n, err)
					continue
				}
				var got []byte
				hl := l4 + 8
				if proto == protoTCP {
					hl = l4 + 20
				}
				for i, seg := range segs {
					if err := checkSegment(seg, l4, proto, r.src, r.final); err != nil {
						t.Errorf("%s: segment %d: %v", name, i, err)
					}
					if !bytes.Equal(seg[20:l4], super[20:l4]) || seg[6] != super[6] && r.src.Is6() {
						t.Errorf("%s: segment %d: options or extension headers changed", name, i)
					}
					got = append(got, seg[hl:]...)
				}
				if !bytes.Equal(got, data[:size]) {
					t.Errorf("%s: the segments do not add up to the payload", name)
				}
			}
		}
	}
}

// TestSplitWithoutPartialChecksum splits a super-packet whose header lacks NEEDS_CSUM:
// its checksum field holds no pseudo-header sum, so Split computes one from the IP
// header, as the kernel's own segmentation does.
func TestSplitWithoutPartialChecksum(t *testing.T) {
	for _, addrs := range [][2]string{{"10.0.0.1", "10.0.0.2"}, {"fd00::1", "fd00::2"}} {
		src, dst := netip.MustParseAddr(addrs[0]), netip.MustParseAddr(addrs[1])
		for _, proto := range []byte{protoTCP, protoUDP} {
			super, h := superPacket(src, dst, dst, nil, proto, make([]byte, 3000), 1000)
			h.Flags = 0
			binary.BigEndian.PutUint16(super[int(h.CsumStart)+int(h.CsumOffset):], 0x1234)
			var segs [][]byte
			if err := Split(super, h, func(n int) []byte { b := make([]byte, n); segs = append(segs, b); return b }); err != nil || len(segs) != 3 {
				t.Fatalf("%v %d: %d segments (%v)", src, proto, len(segs), err)
			}
			for i, seg := range segs {
				if err := checkSegment(seg, int(h.CsumStart), proto, src, dst); err != nil {
					t.Errorf("%v %d: segment %d: %v", src, proto, i, err)
				}
			}
		}
	}
}

// TestChecksum compares Checksum with internal/packet's plain one over every length and
// alignment up to 300 bytes and a few initial sums.
func TestChecksum(t *testing.T) {
	buf := make([]byte, 400)
	for i := range buf {
		buf[i] = byte(i*167 + i>>3)
	}
	buf[100], buf[101], buf[102] = 0xff, 0xff, 0xff
	for off := 0; off < 9; off++ {
		for n := 0; n <= 300; n++ {
			for _, sum := range []uint32{0, 1, 0xffff, 0x1fffe, 0x7fffffff} {
				b := buf[off : off+n]
				if got, want := Checksum(b, uint64(sum)), packet.Checksum(b, sum); got != want {
					t.Fatalf("Checksum of %d bytes at %d from %#x = %#04x, want %#04x", n, off, sum, got, want)
				}
			}
		}
	}
	ones := bytes.Repeat([]byte{0xff}, 70000)
	if got, want := Checksum(ones, 0xffffffff), packet.Checksum(ones, 0); got != want && got^want != 0xffff {
		t.Fatalf("Checksum of all ones = %#04x, want %#04x", got, want)
	}
}

// BenchmarkChecksum sums a packet of the usual MTU, as TCPRun's verification does,
// and the largest one.
func BenchmarkChecksum(b *testing.B) {
	for _, n := range []int{1500, 65535} {
		b.Run(fmt.Sprint(n), func(b *testing.B) {
			buf := make([]byte, n)
			for i := range buf {
				buf[i] = byte(i * 7)
			}
			b.SetBytes(int64(n))
			for b.Loop() {
				Checksum(buf, 0)
			}
		})
	}
}

// TestSplitChecksumsExact checks that every checksum Split writes is the one a full
// recomputation over the finished segment gives, bit for bit, though Split derives them
// from the super-packet's headers: with IPv4 options, IPv6 extension headers, TCP
// options, all TCP flags, IDs and sequence numbers that wrap, odd sizes, with and
// without a partial checksum. Then it adjusts payload and ID so that checksums come
// out zero, where TCP and IPv4 write 0 and UDP all ones.
func TestSplitChecksumsExact(t *testing.T) {
	data := make([]byte, 4001)
	for i := range data {
		data[i] = byte(i*29 + i>>7)
	}
	type shape struct {
		v6           bool
		proto        byte
		exts, tcpOpt bool
		flags        byte
		partial      bool
		size, mss    int
	}
	var shapes []shape
	for _, v6 := range []bool{false, true} {
		for _, proto := range []byte{protoTCP, protoUDP} {
			for _, exts := range []bool{false, true} {
				for _, partial := range []bool{false, true} {
					for _, sz := range [][2]int{{4001, 1000}, {2998, 999}, {1449, 1448}, {2896, 1448}} {
						s := shape{v6, proto, exts, false, tcpACK, partial, sz[0], sz[1]}
						shapes = append(shapes, s)
						if proto == protoTCP {
							shapes = append(shapes, shape{v6, proto, exts, true, 0xff, partial, sz[0], sz[1]},
								shape{v6, proto, exts, true, tcpACK | tcpPSH | tcpFIN | tcpCWR, partial, sz[0], sz[1]})
						}
					}
				}
			}
		}
	}
	for _, s := range shapes {
		name := fmt.Sprintf("%+v", s)
		src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
		var exts []ext
		if s.v6 {
			src, dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
			if s.exts {
				exts = []ext{hopByHop(8), dstOpts(16)}
			}
		} else if s.exts {
			exts = []ext{nops(12)}
		}
		var l4h []byte
		if s.proto == protoTCP {
			l4h = make([]byte, 20)
			if s.tcpOpt {
				l4h = bytes.Repeat([]byte{1}, 40) // NOPs
				l4h[39] = 0
			}
			binary.BigEndian.PutUint16(l4h[0:], 40000)
			binary.BigEndian.PutUint16(l4h[2:], 443)
			binary.BigEndian.PutUint32(l4h[4:], 0xffffffff-2500) // wraps within the run
			l4h[12] = byte(len(l4h)/4) << 4
			l4h[13] = s.flags
			binary.BigEndian.PutUint16(l4h[14:], 501)
		} else {
			l4h = make([]byte, 8)
			binary.BigEndian.PutUint16(l4h[0:], 5000)
			binary.BigEndian.PutUint16(l4h[2:], 6000)
			binary.BigEndian.PutUint16(l4h[4:], uint16(8+s.size))
		}
		super, l4 := ipPacket(src, dst, 0xfffe, s.proto, exts, append(l4h, data[:s.size]...))
		h := Header{GSOSize: uint16(s.mss), CsumStart: uint16(l4), CsumOffset: uint16(csumOffsetOf(s.proto))}
		switch {
		case s.proto == protoUDP:
			h.GSOType = GSOUDPL4
		case s.v6:
			h.GSOType = GSOTCPv6
		default:
			h.GSOType = GSOTCPv4
		}
		if s.partial {
			h.Flags = FlagNeedsCsum
			withPartial(super, l4, s.proto, src, dst)
		}
		split := func() [][]byte {
			var segs [][]byte
			err := Split(bytes.Clone(super), h, func(n int) []byte { b := make([]byte, n); segs = append(segs, b); return b })
			if err != nil || len(segs) != (s.size+s.mss-1)/s.mss {
				t.Fatalf("%s: %d segments (%v)", name, len(segs), err)
			}
			for i, seg := range segs {
				if err := checkSegment(seg, l4, s.proto, src, dst); err != nil {
					t.Errorf("%s: segment %d: %v", name, i, err)
				}
				if !s.v6 {
					hdr := bytes.Clone(seg[:l4])
					hdr[10], hdr[11] = 0, 0
					if got, want := binary.BigEndian.Uint16(seg[10:]), packet.Checksum(hdr, 0); got != want {
						t.Errorf("%s: segment %d: IPv4 header checksum %#04x, want %#04x", name, i, got, want)
					}
				}
				at := l4 + csumOffsetOf(s.proto)
				l := bytes.Clone(seg[l4:])
				l[at-l4], l[at-l4+1] = 0, 0
				want := packet.Checksum(l, pseudo(src, dst, s.proto, len(l)))
				if want == 0 && s.proto == protoUDP {
					want = 0xffff
				}
				if got := binary.BigEndian.Uint16(seg[at:]); got != want {
					t.Errorf("%s: segment %d: L4 checksum %#04x, want %#04x", name, i, got, want)
				}
			}
			return segs
		}
		segs := split()
		// Adding a checksum to a word its segment covers makes that checksum zero.
		addTo := func(b []byte, c uint16) {
			x := uint32(binary.BigEndian.Uint16(b)) + uint32(c)
			binary.BigEndian.PutUint16(b, uint16(x&0xffff+x>>16))
		}
		hdrLen := l4 + len(l4h)
		addTo(super[hdrLen:], binary.BigEndian.Uint16(segs[0][l4+csumOffsetOf(s.proto):]))
		if !s.v6 {
			addTo(super[4:], binary.BigEndian.Uint16(segs[0][10:]))
		}
		segs = split()
		want := uint16(0) // TCP's zero stays
		if s.proto == protoUDP {
			want = 0xffff // UDP's zero would mean none
		}
		if c := binary.BigEndian.Uint16(segs[0][l4+csumOffsetOf(s.proto):]); c != want {
			t.Errorf("%s: L4 checksum %#04x, want %#04x", name, c, want)
		}
		if !s.v6 && binary.BigEndian.Uint16(segs[0][10:]) != 0 {
			t.Errorf("%s: IPv4 header checksum %#04x, want 0", name, binary.BigEndian.Uint16(segs[0][10:]))
		}
	}
}

// TestSplitSegmentOver64K splits an IPv4 super-packet into one segment longer than an
// IPv4 total length can say (the pump drops such packets before they get here, but
// Split must still write a header checksum that matches the header it writes).
func TestSplitSegmentOver64K(t *testing.T) {
	for _, c := range []struct {
		typ, proto byte
		csum       uint16
	}{{GSOUDPL4, protoUDP, 6}, {GSOTCPv4, protoTCP, 16}} {
		pkt := make([]byte, 20+0xffff)
		pkt[0], pkt[9] = 0x45, c.proto
		if c.proto == protoTCP {
			pkt[32] = 5 << 4
		}
		h := Header{Flags: FlagNeedsCsum, GSOType: c.typ, CsumStart: 20, CsumOffset: c.csum, GSOSize: 0xffff}
		var segs [][]byte
		if err := Split(pkt, h, func(size int) []byte {
			segs = append(segs, make([]byte, size))
			return segs[len(segs)-1]
		}); err != nil {
			t.Fatal(err)
		}
		for _, seg := range segs {
			if got := Checksum(seg[:20], 0); got != 0 {
				t.Errorf("protocol %d: a %d-byte segment's IPv4 header does not verify (%#04x)", c.proto, len(seg), got)
			}
		}
	}
}
