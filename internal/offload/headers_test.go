package offload

import (
	"bytes"
	"encoding/binary"
	"net/netip"
	"testing"
)

// coalesceHeaders builds the super-packet of run the way a writev caller does, from
// CoalesceTCPHeaders or CoalesceUDPHeaders and the packets' payloads where they lie,
// and returns it with its virtio_net_hdr. hdr bytes past the headers must stay as
// they were.
func coalesceHeaders(t *testing.T, run [][]byte, proto byte) (super, vnet []byte) {
	t.Helper()
	vnet = make([]byte, HeaderLen)
	hdr := bytes.Repeat([]byte{0xa5}, MaxCoalescedHeaders+1)
	var hl int
	if proto == protoTCP {
		hl = CoalesceTCPHeaders(run, vnet, hdr[:MaxCoalescedHeaders])
	} else {
		hl = CoalesceUDPHeaders(run, vnet, hdr[:MaxCoalescedHeaders])
	}
	if hl <= 0 || hl > MaxCoalescedHeaders {
		t.Fatalf("headers of %d bytes", hl)
	}
	for i, b := range hdr[hl:] {
		if b != 0xa5 {
			t.Fatalf("byte %d of hdr, past the %d bytes of headers, written", hl+i, hl)
		}
	}
	super = append([]byte(nil), hdr[:hl]...)
	for _, p := range run {
		super = append(super, p[hl:]...)
	}
	return super, vnet
}

// longTCP returns count TCP segments of one flow with the longest TCP header (60
// bytes, options of NOPs), size bytes of payload each.
func longTCP(v6 bool, count, size int) [][]byte {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	if v6 {
		src, dst = netip.MustParseAddr("fd00::1"), netip.MustParseAddr("fd00::2")
	}
	var pkts [][]byte
	for i := range count {
		l4 := make([]byte, 60, 60+size)
		binary.BigEndian.PutUint16(l4[0:], 40000)
		binary.BigEndian.PutUint16(l4[2:], 443)
		binary.BigEndian.PutUint32(l4[4:], uint32(i*size))
		l4[12] = 15 << 4
		l4[13] = tcpACK
		binary.BigEndian.PutUint16(l4[14:], 501)
		for j := 20; j < 60; j++ {
			l4[j] = 1
		}
		l4 = append(l4, bytes.Repeat([]byte{byte(i + 1)}, size)...)
		p, off := ipPacket(src, dst, uint16(i), protoTCP, nil, l4)
		withChecksum(p, off, protoTCP, src, dst)
		pkts = append(pkts, p)
	}
	return pkts
}

// TestCoalesceHeaders checks that the headers and payloads of a run, concatenated,
// are the super-packet CoalesceTCP or CoalesceUDP copies together, with the same
// virtio_net_hdr, and that splitting it gives the run back.
func TestCoalesceHeaders(t *testing.T) {
	for _, v6 := range []bool{false, true} {
		for _, proto := range []byte{protoTCP, protoUDP} {
			pushed := flowPackets(v6, proto, 5, 1000)
			if proto == protoTCP {
				l4 := ipHdr(pushed[4])
				pushed[4][l4+13] |= tcpPSH
				refresh(pushed[4])
			}
			short := flowPackets(v6, proto, 5, 1000)
			short[4] = flowPackets(v6, proto, 5, 333)[4]
			fixed := flowPackets(v6, proto, 4, 700)
			for _, p := range fixed {
				if !v6 {
					binary.BigEndian.PutUint16(p[4:], 100) // DF and one ID, as RFC 6864 allows
					refresh(p)
				}
			}
			odd := flowPackets(v6, proto, 3, 1447)
			cases := []struct {
				name string
				run  [][]byte
			}{
				{"two", flowPackets(v6, proto, 2, 1000)},
				{"equal sizes", flowPackets(v6, proto, 8, 1200)},
				{"a short last", short},
				{"a pushed last", pushed},
				{"one ID", fixed},
				{"odd sizes", odd},
				{"full", flowPackets(v6, proto, 65000/1448, 1400)},
			}
			if proto == protoTCP {
				cases = append(cases, struct {
					name string
					run  [][]byte
				}{"longest TCP header", longTCP(v6, 3, 500)})
			}
			for _, c := range cases {
				if proto == protoTCP {
					fixSeq(c.run)
				}
				name := c.name
				if v6 {
					name += "/v6"
				}
				if proto == protoUDP {
					name += "/udp"
				}
				run := TCPRun
				if proto == protoUDP {
					run = UDPRun
				}
				if k := run(c.run); k != len(c.run) {
					t.Fatalf("%s: run of %d of %d", name, k, len(c.run))
				}
				vnet, buf := make([]byte, HeaderLen), make([]byte, MaxCoalesced)
				var n int
				if proto == protoTCP {
					n = CoalesceTCP(c.run, vnet, buf)
				} else {
					n = CoalesceUDP(c.run, vnet, buf)
				}
				super, hv := coalesceHeaders(t, c.run, proto)
				if !bytes.Equal(super, buf[:n]) || !bytes.Equal(hv, vnet) {
					t.Errorf("%s: headers and payloads differ from the copied super-packet", name)
				}
				if hl := int(ParseHeader(hv).HdrLen); c.name == "longest TCP header" && v6 && hl != MaxCoalescedHeaders {
					t.Errorf("%s: headers of %d bytes, want %d", name, hl, MaxCoalescedHeaders)
				}
				roundTrip(t, name, c.run, proto)
			}
		}
	}
}

// BenchmarkCoalesceTCPHeaders is BenchmarkCoalesceTCP for a writev caller, which
// writes only the headers.
func BenchmarkCoalesceTCPHeaders(b *testing.B) {
	segs := benchSegments(44, 1448)
	vnet, hdr := make([]byte, HeaderLen), make([]byte, MaxCoalescedHeaders)
	b.SetBytes(int64(44 * len(segs[0])))
	for b.Loop() {
		if k := TCPRun(segs); k != len(segs) {
			b.Fatalf("TCPRun = %d", k)
		}
		CoalesceTCPHeaders(segs, vnet, hdr)
	}
}
