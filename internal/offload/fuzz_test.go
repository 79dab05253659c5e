package offload

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"

	"go.wintun.dev/wintun/internal/packet"
)

// FuzzSplit feeds arbitrary super-packets and headers to Split: it must never panic,
// never emit a packet larger than the input, and emit at most Segments' count.
func FuzzSplit(f *testing.F) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	tcp := packet.IP(src, dst, packet.ProtoTCP, tcpSegment(1, tcpACK, make([]byte, 3000)))
	f.Add(tcp, uint8(0), uint8(GSOTCPv4), uint16(1000), uint16(20), uint16(16))
	f.Add(tcp, uint8(FlagNeedsCsum), uint8(0), uint16(0), uint16(20), uint16(16))
	udp := packet.IP(src, dst, packet.ProtoUDP, make([]byte, 2008))
	f.Add(udp, uint8(FlagNeedsCsum), uint8(GSOUDPL4), uint16(500), uint16(20), uint16(6))
	f.Fuzz(func(t *testing.T, pkt []byte, flags, typ uint8, gsoSize, csumStart, csumOffset uint16) {
		h := Header{Flags: flags, GSOType: typ, GSOSize: gsoSize, CsumStart: csumStart, CsumOffset: csumOffset}
		n, _, serr := Segments(pkt, h)
		emitted := 0
		err := Split(bytes.Clone(pkt), h, func(size int) []byte {
			if size > len(pkt) || size <= 0 {
				t.Fatalf("segment of %d bytes from a %d-byte packet", size, len(pkt))
			}
			emitted++
			return make([]byte, size)
		})
		if err == nil && serr == nil && emitted > n {
			t.Fatalf("Split emitted %d packets, Segments said %d", emitted, n)
		}
	})
}

// FuzzCoalesce builds runs of TCP segments from fuzzed fields: whatever TCPRun
// accepts, CoalesceTCP and Split must turn back into the same payload.
func FuzzCoalesce(f *testing.F) {
	f.Add(uint32(1), uint16(1000), uint8(5), uint16(300), byte(tcpACK), false)
	f.Add(uint32(0xfffffff0), uint16(1448), uint8(3), uint16(1448), byte(tcpACK|tcpPSH), true)
	f.Fuzz(func(t *testing.T, seq uint32, mss uint16, count uint8, last uint16, lastFlags byte, v6 bool) {
		if mss == 0 || mss > 9000 || count < 2 || count > 40 {
			return
		}
		src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
		if v6 {
			src, dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
		}
		var segs [][]byte
		var payload []byte
		for i := 0; i < int(count); i++ {
			size, flags := int(mss), byte(tcpACK)
			if i == int(count)-1 {
				size, flags = int(last)%9000, lastFlags
			}
			data := bytes.Repeat([]byte{byte(i)}, size)
			segs = append(segs, packet.IP(src, dst, packet.ProtoTCP, tcpSegment(seq+uint32(i)*uint32(mss), flags, data)))
		}
		k := TCPRun(segs)
		if k < 1 || k > len(segs) {
			t.Fatalf("TCPRun = %d of %d", k, len(segs))
		}
		if k == 1 {
			return
		}
		hl := 40
		if v6 {
			hl = 60
		}
		for _, s := range segs[:k] {
			payload = append(payload, s[hl:]...)
		}
		hdr, buf := make([]byte, HeaderLen), make([]byte, MaxCoalesced)
		n := CoalesceTCP(segs[:k], hdr, buf)
		parts := 0
		err := Split(bytes.Clone(buf[:n]), ParseHeader(hdr), func(size int) []byte {
			parts++
			return make([]byte, size)
		})
		if err != nil {
			t.Fatalf("Split of a coalesced packet: %v", err)
		}
		if parts != k {
			t.Fatalf("coalesced %d segments, split into %d", k, parts)
		}
		ipLen := 20
		if v6 {
			ipLen = 40
		}
		if total := n - ipLen - 20; total != len(payload) {
			t.Fatalf("coalesced payload %d bytes, segments carried %d", total, len(payload))
		}
		if !bytes.Equal(buf[ipLen+20:n], payload) {
			t.Fatal("coalesced payload differs from the segments'")
		}
		if seq0 := binary.BigEndian.Uint32(buf[ipLen+4:]); seq0 != seq {
			t.Fatalf("coalesced seq %d, want %d", seq0, seq)
		}
	})
}
