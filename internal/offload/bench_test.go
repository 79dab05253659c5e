package offload

import (
	"net/netip"
	"testing"
)

// BenchmarkSplit splits a 64 KiB TCPv4 super-packet, as Linux hands one over with a
// partial checksum, into segments of 1448 bytes placed one after another in a ring of
// wgtun's default capacity, the way the receive path lays them out: each behind a
// 4-byte size, 4-byte aligned, wrapping at the end. The segments then land in memory
// that is not hot in the cache, as in the ring.
func BenchmarkSplit(b *testing.B) {
	src, dst := netip.MustParseAddr("10.0.0.1"), netip.MustParseAddr("10.0.0.2")
	payload := make([]byte, 65535-20-20)
	for i := range payload {
		payload[i] = byte(i * 7)
	}
	super, h := superPacket(src, dst, dst, nil, protoTCP, payload, 1448)
	ring := make([]byte, 0x800000)
	off := 0
	emit := func(n int) []byte {
		if off+4+n > len(ring) {
			off = 0
		}
		seg := ring[off+4 : off+4+n]
		off += (4 + n + 3) &^ 3
		return seg
	}
	b.SetBytes(int64(len(super)))
	for b.Loop() {
		if err := Split(super, h, emit); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkTCPRun verifies and matches a run of 44 segments of 1448 bytes, what a 64
// KiB super-packet splits into: the checksums of every segment are verified.
func BenchmarkTCPRun(b *testing.B) {
	segs := benchSegments(44, 1448)
	b.SetBytes(int64(len(segs) * len(segs[0])))
	for b.Loop() {
		if k := TCPRun(segs); k != len(segs) {
			b.Fatalf("TCPRun = %d", k)
		}
	}
}
