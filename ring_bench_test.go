package wintun

import "testing"

// Micro-benchmarks of the ring calls alone, without the kernel: what one packet costs
// the application.

func BenchmarkRingPerPacket(b *testing.B) {
	_, w, rd := newPair(0x400000)
	b.SetBytes(1400)
	for b.Loop() {
		p, _ := w.allocate(1400)
		w.commit(p)
		q, _ := rd.receive()
		rd.release(q)
	}
}

func BenchmarkRingBatch64(b *testing.B) {
	_, w, rd := newPair(0x400000)
	sizes := make([]int, 64)
	for i := range sizes {
		sizes[i] = 1400
	}
	out, in := make([][]byte, 64), make([][]byte, 64)
	b.SetBytes(64 * 1400)
	for b.Loop() {
		n, _ := w.allocateBatch(sizes, out)
		w.commitBatch(out[:n])
		m, _ := rd.receiveBatch(in)
		rd.releaseBatch(in[:m])
	}
}
