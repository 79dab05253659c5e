#include "textflag.h"

// func copySumAVX2(dst, src *byte, n int) uint64
//
// Copies n bytes (a positive multiple of 64) from src to dst and returns the sum of
// them as little-endian 32-bit words, unfolded. Each 32-bit word is zero-extended
// into a 64-bit lane before it is added, so no carry is lost for any n below 2^34.
TEXT ·copySumAVX2(SB), NOSPLIT, $0-32
	MOVQ dst+0(FP), DI
	MOVQ src+8(FP), SI
	MOVQ n+16(FP), CX
	VPXOR Y15, Y15, Y15 // zero, to clear odd dwords with
	VPXOR Y8, Y8, Y8    // accumulators
	VPXOR Y9, Y9, Y9
	VPXOR Y10, Y10, Y10
	VPXOR Y11, Y11, Y11

loop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VMOVDQU Y0, (DI)
	VMOVDQU Y1, 32(DI)
	VPSRLQ $32, Y0, Y2            // high dwords of each quadword
	VPBLENDD $0xaa, Y15, Y0, Y3   // low dwords
	VPSRLQ $32, Y1, Y4
	VPBLENDD $0xaa, Y15, Y1, Y5
	VPADDQ Y2, Y8, Y8
	VPADDQ Y3, Y9, Y9
	VPADDQ Y4, Y10, Y10
	VPADDQ Y5, Y11, Y11
	ADDQ $64, SI
	ADDQ $64, DI
	SUBQ $64, CX
	JNZ  loop

	VPADDQ Y9, Y8, Y8
	VPADDQ Y11, Y10, Y10
	VPADDQ Y10, Y8, Y8
	VEXTRACTI128 $1, Y8, X1
	VPADDQ X1, X8, X8
	VPEXTRQ $1, X8, AX
	VMOVQ X8, BX
	ADDQ BX, AX
	VZEROUPPER
	MOVQ AX, ret+24(FP)
	RET

// func sumAVX2(b *byte, n int) uint64
//
// Returns the sum of the n bytes at b (a positive multiple of 64) as little-endian
// 32-bit words, unfolded, like copySumAVX2. Without stores to issue, the loop is
// bound by its additions, so it saves the blend: it adds whole quadwords and their
// high dwords apart, and recovers the low dwords' sum at the end as the difference,
// which is exact modulo 2^64 as long as that sum fits, for any n below 2^34.
TEXT ·sumAVX2(SB), NOSPLIT, $0-24
	MOVQ b+0(FP), SI
	MOVQ n+8(FP), CX
	VPXOR Y8, Y8, Y8    // whole quadwords, modulo 2^64
	VPXOR Y9, Y9, Y9    // high dwords
	VPXOR Y10, Y10, Y10
	VPXOR Y11, Y11, Y11

sumloop:
	VMOVDQU (SI), Y0
	VMOVDQU 32(SI), Y1
	VPSRLQ $32, Y0, Y2
	VPSRLQ $32, Y1, Y3
	VPADDQ Y0, Y8, Y8
	VPADDQ Y2, Y9, Y9
	VPADDQ Y1, Y10, Y10
	VPADDQ Y3, Y11, Y11
	ADDQ $64, SI
	SUBQ $64, CX
	JNZ  sumloop

	VPADDQ Y10, Y8, Y8
	VPADDQ Y11, Y9, Y9
	VPSLLQ $32, Y9, Y2
	VPSUBQ Y2, Y8, Y8 // low dwords
	VPADDQ Y9, Y8, Y8
	VEXTRACTI128 $1, Y8, X1
	VPADDQ X1, X8, X8
	VPEXTRQ $1, X8, AX
	VMOVQ X8, BX
	ADDQ BX, AX
	VZEROUPPER
	MOVQ AX, ret+16(FP)
	RET
