package offload

import (
	"bytes"
	"encoding/binary"
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

func verify(t *testing.T, seg []byte) {
	t.Helper()
	in, err := packet.Parse(seg)
	if err != nil {
		t.Fatal(err)
	}
	l4 := len(seg) - len(in.Payload)
	if in.Version == 4 && Checksum(seg[:l4], 0) != 0 {
		t.Errorf("bad IPv4 header checksum")
	}
	if Checksum(seg[l4:], pseudoHeaderSum(seg, l4, len(seg)-l4)) != 0 {
		t.Errorf("bad %d checksum in segment of %d bytes", in.Proto, len(seg))
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
		typ := uint8(GSOTCPv4)
		if src.Is6() {
			l4, typ = 40, GSOTCPv6
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
	binary.BigEndian.PutUint16(partial[36:], ^Checksum(nil, pseudoHeaderSum(full, 20, len(full)-20)))
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

func TestTCPRunStops(t *testing.T) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	mk := func(seq uint32, flags byte, size int) []byte {
		return packet.IP(src, dst, packet.ProtoTCP, tcpSegment(seq, flags, make([]byte, size)))
	}
	for name, pkts := range map[string][][]byte{
		"gap in sequence": {mk(0, tcpACK, 100), mk(101, tcpACK, 100)},
		"larger second":   {mk(0, tcpACK, 100), mk(100, tcpACK, 200)},
		"FIN":             {mk(0, tcpACK, 100), mk(100, tcpACK|tcpFIN, 100)},
		"PSH on first":    {mk(0, tcpACK|tcpPSH, 100), mk(100, tcpACK, 100)},
		"pure ACK":        {mk(0, tcpACK, 0), mk(0, tcpACK, 0)},
		"one packet":      {mk(0, tcpACK, 100)},
		"not TCP":         {packet.IP(src, dst, packet.ProtoUDP, make([]byte, 108)), mk(100, tcpACK, 100)},
	} {
		if n := TCPRun(pkts); n != 1 {
			t.Errorf("%s: TCPRun = %d, want 1", name, n)
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
			dgrams = append(dgrams, udpDatagram(src, dst, 5000, bytes.Repeat([]byte{byte(i + 1)}, size)))
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
			if src.Is4() { // Split numbers IDs from the first; these were all 0
				binary.BigEndian.PutUint16(back[i][4:], 0)
				back[i][10], back[i][11] = 0, 0
				binary.BigEndian.PutUint16(back[i][10:], Checksum(back[i][:20], 0))
			}
			if !bytes.Equal(back[i], dgrams[i]) {
				t.Errorf("datagram %d changed by coalescing and splitting", i)
			}
		}
	}
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if n := UDPRun([][]byte{udpDatagram(src, dst, 1, make([]byte, 100)), udpDatagram(src, dst, 1, make([]byte, 200))}); n != 1 {
		t.Errorf("UDPRun accepted a larger second datagram: %d", n)
	}
}
