package offload

import (
	"bytes"
	"math/bits"
	"math/rand/v2"
	"testing"

	"go.wintun.dev/wintun/internal/packet"
)

// TestCopyChecksum compares copyChecksum with copy and Checksum for every length up to
// 200 and random longer ones, at all eight alignments of source and destination, with
// and without the vector loop.
func TestCopyChecksum(t *testing.T) {
	src, lengths := sumInputs(1, 1000, 100, 200, 1448)
	withAndWithoutAVX2(func(v bool) {
		for _, n := range lengths {
			for align := range 8 {
				s := src[align : align+n]
				for _, start := range []int{0, 1000 - align} {
					if start+n <= len(src)-align {
						s = src[start+align : start+align+n]
					}
					dst := make([]byte, n+16)
					got := copyChecksum(dst[8-align:], s)
					if !bytes.Equal(dst[8-align:8-align+n], s) {
						t.Fatalf("vector %v, %d bytes at alignment %d: copy differs", v, n, align)
					}
					if dst[7-align] != 0 || dst[8-align+n] != 0 {
						t.Fatalf("vector %v, %d bytes at alignment %d: wrote outside dst", v, n, align)
					}
					for _, sum := range []uint64{0, 1, 0xffff, 0x1fffe} {
						if c, want := Checksum(nil, sum+got), Checksum(s, sum); c != want {
							t.Fatalf("vector %v, %d bytes at alignment %d from %#x: %#04x, want %#04x", v, n, align, sum, c, want)
						}
					}
				}
			}
		}
	})
}

// TestChecksumVector compares Checksum with internal/packet's plain one for every
// length up to 300 and random longer ones, at all eight alignments, with and without
// the vector loop; with it, the vector loop is also checked alone from 64 bytes on,
// below the length from which Checksum takes it.
func TestChecksumVector(t *testing.T) {
	buf, lengths := sumInputs(3, 2000, 600, 300, 1500)
	withAndWithoutAVX2(func(v bool) {
		for _, n := range lengths {
			for align := range 8 {
				for _, start := range []int{align, 2000 + align} {
					if start+n > len(buf) {
						continue
					}
					b := buf[start : start+n]
					for _, sum := range []uint64{0, 1, 0xffff, 0x1fffe} {
						want := packet.Checksum(b, uint32(sum))
						if c := Checksum(b, sum); c != want {
							t.Fatalf("vector %v, %d bytes at %d from %#x: %#04x, want %#04x", v, n, start, sum, c, want)
						}
						if m := n &^ 63; v && m > 0 {
							// The vector sum is of little-endian words, Checksum's of big-endian ones.
							vsum := uint64(bits.ReverseBytes16(finish(sumAVX2(&b[0], m), 0, nil)))
							if c := Checksum(b[m:], sum+vsum); c != want {
								t.Fatalf("sumAVX2 of %d bytes at %d from %#x: %#04x, want %#04x", m, start, sum, c, want)
							}
						}
					}
				}
			}
		}
	})
}

// TestSumAt checks the byte swap Split gives a payload sum that starts at an
// odd offset of the L4 data: summed apart and swapped, it must equal the sum of the
// whole.
func TestSumAt(t *testing.T) {
	b := make([]byte, 301)
	for i := range b {
		b[i] = byte(i*37 + 11)
	}
	for cut := 0; cut <= len(b); cut++ {
		psum := sumAt(copyChecksum(make([]byte, len(b)-cut), b[cut:]), cut)
		if got, want := Checksum(b[:cut], psum), Checksum(b, 0); got != want {
			t.Fatalf("cut at %d: %#04x, want %#04x", cut, got, want)
		}
	}
}

// sumInputs returns 70000 random bytes with a run of 0xff bytes (long runs of ones
// carry in every word and lane) at ones for n bytes, and the lengths to test: every
// one up to short, 40 random ones, typical and the longest.
func sumInputs(seed uint64, ones, n, short, typical int) (buf []byte, lengths []int) {
	r := rand.New(rand.NewPCG(seed, seed+1))
	buf = make([]byte, 70000)
	for i := range buf {
		buf[i] = byte(r.Uint32())
	}
	for i := ones; i < ones+n; i++ {
		buf[i] = 0xff
	}
	for l := 0; l <= short; l++ {
		lengths = append(lengths, l)
	}
	for range 40 {
		lengths = append(lengths, r.IntN(65536))
	}
	return buf, append(lengths, typical, 65535)
}

// withAndWithoutAVX2 runs f with the vector loops off, then as the machine allows.
func withAndWithoutAVX2(f func(vector bool)) {
	vector := useAVX2
	defer func() { useAVX2 = vector }()
	for _, v := range []bool{false, vector} {
		useAVX2 = v
		f(v)
	}
}
