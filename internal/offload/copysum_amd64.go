package offload

import "golang.org/x/sys/cpu"

// useAVX2 selects copySumAVX2 for the bulk of copyChecksum and sumAVX2 for that of
// Checksum: Go has no vector instructions, and a scalar loop that copies and sums runs
// slower than memmove and Checksum one after the other, which would defeat the single
// pass.
var useAVX2 = cpu.X86.HasAVX2

//go:noescape
func copySumAVX2(dst, src *byte, n int) uint64

//go:noescape
func sumAVX2(b *byte, n int) uint64
