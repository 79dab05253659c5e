package offload

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"go.wintun.dev/wintun/internal/packet"
)

// FuzzSplit feeds arbitrary super-packets and headers to Split: it must never panic,
// never emit a packet larger than the input, and emit at most Segments' count. Then it
// builds a well-formed super-packet, as Linux hands one over, from the same input:
// pkt as payload, shape choosing IPv4 options or IPv6 extension headers (hop-by-hop,
// destination options, routing headers that move the checksummed destination), TCP or
// UDP; every segment Split makes of it must verify against an independent checksum.
func FuzzSplit(f *testing.F) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	tcp := packet.IP(src, dst, packet.ProtoTCP, tcpSegment(1, tcpACK, make([]byte, 3000)))
	f.Add(tcp, uint8(0), uint8(GSOTCPv4), uint16(1000), uint16(20), uint16(16), uint16(0))
	f.Add(tcp, uint8(FlagNeedsCsum), uint8(0), uint16(0), uint16(20), uint16(16), uint16(0x0c))
	udp := packet.IP(src, dst, packet.ProtoUDP, make([]byte, 2008))
	f.Add(udp, uint8(FlagNeedsCsum), uint8(GSOUDPL4), uint16(500), uint16(20), uint16(6), uint16(0x03))
	f.Add(udp, uint8(FlagNeedsCsum), uint8(GSOUDPL4), uint16(1200), uint16(20), uint16(6), uint16(0xf5))
	f.Add(tcp, uint8(FlagNeedsCsum), uint8(GSOTCPv6), uint16(1400), uint16(48), uint16(0x89), uint16(0x2f9))
	// Odd payloads and segments of both families and protocols, for Split's one-pass
	// copy and sum; shape's high bits place the segments at every alignment.
	odd := make([]byte, 4099)
	for i := range odd {
		odd[i] = byte(i*131 + 3)
	}
	f.Add(odd, uint8(FlagNeedsCsum), uint8(GSOTCPv4), uint16(1447), uint16(20), uint16(16), uint16(0x0000))
	f.Add(odd, uint8(FlagNeedsCsum), uint8(GSOTCPv6), uint16(1231), uint16(40), uint16(16), uint16(0x2001))
	f.Add(odd, uint8(FlagNeedsCsum), uint8(GSOUDPL4), uint16(999), uint16(20), uint16(6), uint16(0x4002))
	f.Add(odd, uint8(FlagNeedsCsum), uint8(GSOUDPL4), uint16(77), uint16(40), uint16(6), uint16(0x6003))
	f.Add(odd[:1501], uint8(FlagNeedsCsum), uint8(0), uint16(0), uint16(20), uint16(6), uint16(0x8007))
	f.Fuzz(func(t *testing.T, pkt []byte, flags, typ uint8, gsoSize, csumStart, csumOffset, shape uint16) {
		h := Header{Flags: flags, GSOType: typ, GSOSize: gsoSize, CsumStart: csumStart, CsumOffset: csumOffset}
		n, _, serr := Segments(pkt, h)
		emitted := 0
		var first []byte
		err := Split(bytes.Clone(pkt), h, func(size int) []byte {
			if size > len(pkt) || size <= 0 {
				t.Fatalf("segment of %d bytes from a %d-byte packet", size, len(pkt))
			}
			emitted++
			if first == nil {
				first = make([]byte, size)
				return first
			}
			return make([]byte, size)
		})
		if err == nil && serr == nil && emitted > n {
			t.Fatalf("Split emitted %d packets, Segments said %d", emitted, n)
		}
		// A packet that is not a super-packet comes out as CompleteChecksum leaves it,
		// though Split copies and sums it in one pass.
		if h.GSOType&^GSOECN == GSONone && h.Flags&FlagNeedsCsum != 0 {
			want := bytes.Clone(pkt)
			cerr := CompleteChecksum(want, h)
			if (cerr == nil) != (err == nil) || err == nil && !bytes.Equal(first, want) {
				t.Fatalf("Split of a packet with a partial checksum (%v) differs from CompleteChecksum's (%v)", err, cerr)
			}
		}
		if got, want := Checksum(pkt, uint64(csumStart)), packet.Checksum(pkt, uint32(csumStart)); got != want {
			t.Fatalf("Checksum = %#04x, internal/packet's = %#04x", got, want)
		}
		splitWellFormed(t, pkt, gsoSize, byte(csumOffset), shape)
	})
}

// splitWellFormed is FuzzSplit's second half.
func splitWellFormed(t *testing.T, payload []byte, mss uint16, tcpFlags byte, shape uint16) {
	v6, proto := shape&1 != 0, byte(protoTCP)
	if shape&2 != 0 {
		proto = protoUDP
	}
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	hop := netip.MustParseAddr("10.9.9.9")
	if v6 {
		src, dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
		hop = netip.MustParseAddr("fd00:9::9")
	}
	final, hdrDst := dst, dst
	var exts []ext
	if !v6 {
		switch shape >> 2 & 3 {
		case 1:
			exts = append(exts, nops(4*int(shape>>10&7+1)))
		case 2:
			var e ext
			e, final = sourceRoute(hop, dst)
			exts, hdrDst = append(exts, e), hop
		case 3:
			exts = append(exts, nops(40))
		}
	} else {
		if shape&4 != 0 {
			exts = append(exts, hopByHop(8*int(shape>>10&3+1)))
		}
		if shape&8 != 0 {
			exts = append(exts, dstOpts(8*int(shape>>12&3+1)))
		}
		if rt := shape >> 4 & 3; rt != 0 {
			var e ext
			switch rt {
			case 1:
				e, final = routing(0, hop, dst)
				hdrDst = hop
			case 2:
				e, final = routing(2, dst)
			case 3:
				e, final = routing(4, dst, hop)
				hdrDst = hop
			}
			exts = append(exts, e)
		}
		if shape&0x40 != 0 {
			exts = append(exts, dstOpts(8))
		}
	}
	if mss == 0 {
		mss = 1
	}
	hl := 20
	for _, e := range exts {
		hl += len(e.data)
	}
	if v6 {
		hl += 20
	}
	if proto == protoTCP {
		hl += 20
	} else {
		hl += 8
	}
	if len(payload) == 0 || hl+len(payload) > 0xffff || int(mss)+hl > 0xffff {
		return
	}
	super, h := superPacket(src, hdrDst, final, exts, proto, payload, int(mss))
	l4 := int(h.CsumStart)
	if proto == protoTCP {
		super[l4+13] = tcpFlags | tcpACK
		if tcpFlags&tcpCWR != 0 {
			h.GSOType |= GSOECN
		}
	}
	if shape&0x80 != 0 && final == hdrDst { // no partial sum: Split computes one
		h.Flags = 0
		binary.BigEndian.PutUint16(super[l4+csumOffsetOf(proto):], shape)
	}
	n, maxSize, err := Segments(super, h)
	if err != nil {
		t.Fatalf("Segments of a well-formed super-packet: %v", err)
	}
	var segs [][]byte
	align := int(shape >> 13) // the segments' alignment, as a ring's varies
	err = Split(bytes.Clone(super), h, func(size int) []byte {
		if size > maxSize {
			t.Fatalf("segment of %d bytes, Segments said at most %d", size, maxSize)
		}
		b := make([]byte, align+size)[align:]
		segs = append(segs, b)
		align = (align + size) % 8
		return b
	})
	if err != nil || len(segs) != n {
		t.Fatalf("Split of a well-formed super-packet: %d segments of %d (%v)", len(segs), n, err)
	}
	var got []byte
	hdrLen := l4 + 8
	if proto == protoTCP {
		hdrLen = l4 + 20
	}
	for i, seg := range segs {
		if err := checkSegment(seg, l4, proto, src, final); err != nil {
			t.Fatalf("segment %d of %d: %v", i, n, err)
		}
		if !bytes.Equal(seg[20:l4], super[20:l4]) {
			t.Fatalf("segment %d: options or extension headers changed", i)
		}
		if proto == protoTCP {
			if seq := binary.BigEndian.Uint32(seg[l4+4:]); seq != 1000+uint32(len(got)) {
				t.Fatalf("segment %d: seq %d, want %d", i, seq, 1000+len(got))
			}
			f, want := seg[l4+13], super[l4+13]
			if i < n-1 {
				want &^= tcpFIN | tcpPSH
			}
			if i > 0 {
				want &^= tcpCWR
			}
			if f != want {
				t.Fatalf("segment %d of %d: flags %#x, want %#x", i, n, f, want)
			}
		}
		got = append(got, seg[hdrLen:]...)
	}
	if !bytes.Equal(got, payload) {
		t.Fatal("the segments do not add up to the payload")
	}
}

// FuzzCoalesce builds a run of TCP segments or UDP datagrams of one flow from fuzzed
// fields, then changes bytes of their headers (or payload) as edits says, with or
// without making their checksums right again. Whatever run TCPRun or UDPRun accepts
// must hold only packets whose checksums verify, and CoalesceTCP or CoalesceUDP and
// Split must give those packets back unchanged: then the kernel's segmentation, which
// gives each segment the super-packet's headers, does too. CoalesceTCPHeaders or
// CoalesceUDPHeaders and the payloads must make the same super-packet (roundTrip).
func FuzzCoalesce(f *testing.F) {
	f.Add(uint32(1), uint16(1000), uint8(5), uint16(300), byte(tcpACK), uint8(0), []byte{})
	f.Add(uint32(0xfffffff0), uint16(1448), uint8(3), uint16(1448), byte(tcpACK|tcpPSH), uint8(1), []byte{})
	f.Add(uint32(7), uint16(1200), uint8(4), uint16(1200), byte(tcpACK), uint8(2), []byte{})
	f.Add(uint32(7), uint16(1200), uint8(4), uint16(100), byte(tcpACK), uint8(3), []byte{})
	f.Add(uint32(7), uint16(500), uint8(4), uint16(500), byte(tcpACK), uint8(0), []byte{1, 44, 8, 0})    // payload bit, checksum not redone
	f.Add(uint32(7), uint16(500), uint8(4), uint16(500), byte(tcpACK), uint8(0), []byte{1, 32, 1, 1})    // AccECN AE bit
	f.Add(uint32(7), uint16(500), uint8(4), uint16(500), byte(tcpACK), uint8(0), []byte{2, 6, 0x80, 1})  // IPv4 reserved bit
	f.Add(uint32(7), uint16(500), uint8(4), uint16(500), byte(tcpACK), uint8(2), []byte{1, 10, 1, 0})    // IPv4 header checksum
	f.Add(uint32(7), uint16(500), uint8(4), uint16(500), byte(tcpACK), uint8(3), []byte{1, 46, 0xff, 0}) // UDP checksum
	f.Fuzz(func(t *testing.T, seq uint32, mss uint16, count uint8, last uint16, lastFlags byte, shape uint8, edits []byte) {
		if mss == 0 || mss > 9000 || count < 2 || count > 40 {
			return
		}
		v6, proto := shape&1 != 0, byte(protoTCP)
		if shape&2 != 0 {
			proto = protoUDP
		}
		src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
		if v6 {
			src, dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
		}
		var pkts [][]byte
		for i := 0; i < int(count); i++ {
			size, flags := int(mss), byte(tcpACK)
			if i == int(count)-1 {
				size, flags = int(last)%9000, lastFlags
			}
			data := bytes.Repeat([]byte{byte(i)}, size)
			p, off := ipPacket(src, dst, uint16(shape)<<8+uint16(i), proto, nil, l4Header(proto, seq+uint32(i)*uint32(mss), flags, data))
			if shape&4 != 0 && !v6 {
				p[6] = 0 // DF clear
				binary.BigEndian.PutUint16(p[10:], 0)
				binary.BigEndian.PutUint16(p[10:], Checksum(p[:20], 0))
			}
			withChecksum(p, off, proto, src, dst)
			pkts = append(pkts, p)
		}
		ipLen := 20
		if v6 {
			ipLen = 40
		}
		hl := ipLen + 8
		if proto == protoTCP {
			hl = ipLen + 20
		}
		for ; len(edits) >= 4; edits = edits[4:] {
			p := pkts[int(edits[0])%len(pkts)]
			i := int(edits[1]) % min(len(p), hl+8)
			x := edits[2]
			if x == 0 {
				x = 1
			}
			p[i] ^= x
			if edits[3]&1 != 0 && p[0]>>4 == pkts[0][0]>>4 && ipHdr(p) < len(p)-csumOffsetOf(proto)-2 {
				refresh(p)
			}
		}
		run := TCPRun
		if proto == protoUDP {
			run = UDPRun
		}
		k := run(pkts)
		if k < 1 || k > len(pkts) {
			t.Fatalf("run of %d of %d", k, len(pkts))
		}
		if k == 1 {
			return
		}
		for i, p := range pkts[:k] {
			src, dst := ipAddrs(p)
			if err := checkSegment(p, ipLen, proto, src, dst); err != nil {
				t.Fatalf("packet %d of a run of %d: %v", i, k, err)
			}
		}
		roundTrip(t, "fuzzed run", pkts[:k], proto)
	})
}
